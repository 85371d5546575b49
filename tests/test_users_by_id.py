"""People are identified by id, not by name (issue 11): a new user given a deleted user's name is someone else.

Dana (a social worker) starts a case and takes its first task; Dana's account is deleted; a new account is
made with the name "dana" and a role of no pathway. The new Dana sees neither the task (not in the inbox,
not to be opened or completed) nor the case (not to be opened, not among "my cases"). With names in
``assignee`` and ``started_by`` (as before) every one of these assertions fails.
"""
from __future__ import annotations

from sqlalchemy import select

from conftest import FIXTURES, everything, save_user
from service.models import Case, OpenTask, User, db

PATHWAY = FIXTURES / "pathways"


def _user(api, name: str, roles: list[str]) -> None:
    with api.app.app_context():
        save_user(db.session, name, roles, token=f"token-{name}")
        db.session.commit()
    api.tokens[name] = f"token-{name}"


def test_a_new_user_with_a_deleted_users_name_inherits_nothing(api):
    api.deploy(PATHWAY)
    _user(api, "dana", ["social_worker"])
    case = api.post("/cases", json={"process": "test_review", "reference": "DANA-1", "data": {"needs": 3}},
                    as_="dana")
    assert case.status_code == 201, case.json
    case_id, task_id = case.json["id"], case.json["tasks"][0]["id"]
    claimed = api.post(f"/tasks/{task_id}/claim", json={}, as_="dana")
    assert claimed.status_code == 200, claimed.json
    assert claimed.json["assignee"] == "dana"  # people read names; the row holds the id
    assert [t["id"] for t in api.get("/tasks", as_="dana").json] == [task_id]
    assert [c["id"] for c in api.get("/cases?mine=true", as_="dana").json["cases"]] == [case_id]
    with api.app.app_context(), everything():
        old = db.session.scalars(select(User).where(User.name == "dana")).one()
        task = db.session.get(OpenTask, task_id)
        assert task.assignee_id == old.id and db.session.get(Case, case_id).started_by_id == old.id
        db.session.delete(old)
        db.session.commit()

    _user(api, "dana", ["visitor"])  # the same name, someone else, with a role of no pathway
    assert api.get("/tasks", as_="dana").json == []
    assert api.get(f"/tasks/{task_id}", as_="dana").status_code == 403
    assert api.post(f"/tasks/{task_id}/complete", json={"data": {}}, as_="dana").status_code == 403
    assert api.get(f"/cases/{case_id}", as_="dana").status_code == 403
    assert api.get("/cases?mine=true", as_="dana").json["cases"] == []
    with api.app.app_context(), everything():
        task = db.session.get(OpenTask, task_id)
        assert task.assignee_id is None  # back with the social workers, for one of them to take
        assert db.session.get(Case, case_id).started_by_id is None
    # The social workers see it again, unassigned.
    assert task_id in [t["id"] for t in api.get("/tasks", as_="worker").json]
    assert [t["assignee"] for t in api.get("/tasks", as_="worker").json if t["id"] == task_id] == [None]
