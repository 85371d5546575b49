"""The case's data holds every answer given, at once, even while a parallel branch runs on (issue 13 item 10).

The engine's snapshot reads the latest step's data and the open steps' data: an answer given in one branch of
a parallel split dropped out of it when the other branch moved on, so the case page, the tracker and the
next forms showed it stale until the branches met again.
"""
from __future__ import annotations

from datetime import timedelta

from service.cases import known_data

from conftest import FIXTURES


def _deploy(api, tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"{name}.bpmn").write_bytes((FIXTURES / "constructs" / f"{name}.bpmn").read_bytes())
    assert api.deploy(folder).status_code == 201


def test_an_answer_in_one_branch_stays_on_the_case_while_the_other_branch_moves_on(app, api, tmp_path, frozen_clock):
    from service import cases, tenancy
    from service.models import Case, Council, db

    _deploy(api, tmp_path, "terminate_end")
    case = api.post("/cases", json={"process": "terminate_end", "reference": "FAM-PAR", "data": {"family_name": "Price"}})
    assert case.status_code == 201, case.json
    case = case.json
    assess = next(t for t in case["tasks"] if t["name"] == "Task_Assess")
    done = api.post(f"/tasks/{assess['id']}/complete", json={"data": {"withdrawn": False, "assessment": "done"}})
    assert done.status_code == 200, done.json
    assert api.get(f"/cases/{case['id']}").json["data"]["assessment"] == "done"
    # the visit's reminder fires in the other branch: the engine's view is now that branch's data alone
    frozen_clock.move_to(frozen_clock.now() + timedelta(days=6))
    with app.app_context():
        tenancy.act_for(db.session, db.session.query(Council).filter_by(key="test").one())
        row = db.session.get(Case, case["id"])
        assert cases.fire_timers(db.session, row) == 1
        db.session.commit()
    data = api.get(f"/cases/{case['id']}").json["data"]
    assert data["assessment"] == "done" and data["withdrawn"] is False and data["family_name"] == "Price"
    visit = next(t for t in api.get(f"/cases/{case['id']}").json["tasks"] if t["name"] == "Task_Visit")
    assert api.post(f"/tasks/{visit['id']}/complete", json={"data": {"visited": True}}).status_code == 200
    data = api.get(f"/cases/{case['id']}").json["data"]
    assert data["assessment"] == "done" and data["visited"] is True


def test_the_engines_view_wins_and_the_steps_answers_fill_what_it_lacks():
    before = {"family_name": "Price", "assessment": "old", "meeting": "2027-01-04"}
    engine = {"family_name": "Price", "assessment": "rescored", "risk": 3}
    answers = {"assessment": "new", "meeting": "2027-02-01", "note": "seen"}
    assert known_data(before, engine, answers) == {"family_name": "Price", "assessment": "rescored", "risk": 3,
                                                   "meeting": "2027-02-01", "note": "seen"}
    assert known_data(None, {"a": 1}) == {"a": 1}
