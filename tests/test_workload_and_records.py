"""Managers (the workload, reassigning one task or many, allocation) and a case's notes and documents, through
the REST API, on SQLite and PostgreSQL.

The pathway (tests/fixtures/allocation): a team manager allocates a social worker ("Social worker
allocated", an ``allocate_role`` field), who visits the family and then checks the documents (a checklist).
"""
from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy import event, func, select, text

from conftest import FIXTURES, everything, in_council, save_user
from service import cases as case_service
from service import paging, workload
from service.models import AccessEvent, Case, CaseDocument, CaseNote, OpenTask, User, db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 120 + b"This program cannot be run in DOS mode."


def docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def odt() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        archive.writestr("content.xml", "<office:document-content/>")
    return buffer.getvalue()


def plain_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.exe", EXE)
    return buffer.getvalue()


@pytest.fixture
def team(api):
    """The allocation pathway deployed; a second social worker; the manager holds team_manager."""
    assert api.deploy(FIXTURES / "allocation").status_code == 201
    api.as_role("social_worker")  # "user-social_worker"
    return api


def start(api, reference="ALLOC-1"):
    response = api.post("/cases", json={"process": "test_allocation", "reference": reference, "data": {}},
                        as_="manager")
    assert response.status_code == 201, response.json
    return response.json


def allocate(api, case, worker="worker"):
    task = case["tasks"][0]
    assert task["name"] == "Task_Allocate"
    return api.post(f"/tasks/{task['id']}/complete", json={"data": {"allocated_worker": worker}}, as_="manager")


def tasks_of(api, case_id):
    with api.app.app_context(), everything():
        return {t.name: (t.id, t.assignee) for t in db.session.scalars(
            select(OpenTask).where(OpenTask.case_id == case_id, OpenTask.closed_at.is_(None)))}


# -- allocation ----------------------------------------------------------------------------------

def test_an_allocation_names_a_user_with_the_role_and_their_next_task_is_theirs(team):
    case = start(team)
    form = team.get(f"/tasks/{case['tasks'][0]['id']}", as_="manager").json["form"]
    field = next(f for f in form["fields"] if f["key"] == "allocated_worker")
    assert [o["value"] for o in field["options"]] == ["user-social_worker", "worker"]  # the council's social workers
    refused = allocate(team, case, "front")  # a real user, without the role
    assert refused.status_code == 422 and "allocated_worker" in refused.json["errors"]
    assert allocate(team, case, "nobody-at-all").status_code == 422
    done = allocate(team, case, "worker")
    assert done.status_code == 200, done.json
    assert tasks_of(team, case["id"])["Task_Visit"][1] == "worker"
    assert [t["case_id"] for t in team.get("/tasks", as_="worker").json] == [case["id"]]
    assert team.get("/tasks", as_="user-social_worker").json == []  # not theirs: allocated to worker
    events = [(e["event"], e["actor"]) for e in team.get(f"/cases/{case['id']}/history", as_="manager").json]
    assert ("task_assigned", "system") in events


# -- managers open and give tasks ----------------------------------------------------------------

def test_a_manager_opens_a_team_members_task_and_gives_it_to_someone_with_its_role(team):
    case = start(team)
    allocate(team, case)
    visit, _ = tasks_of(team, case["id"])["Task_Visit"]
    assert team.get(f"/tasks/{visit}", as_="manager").status_code == 200  # a manager of the team opens it
    assert team.get(f"/tasks/{visit}", as_="user-social_worker").status_code == 403  # a colleague does not
    assert team.get(f"/tasks/{visit}", as_="front").status_code == 403
    # opening is not doing: the manager cannot complete the worker's task
    assert team.post(f"/tasks/{visit}/complete", json={"data": {}}, as_="manager").status_code == 403
    nobody = team.post(f"/tasks/{visit}/reassign", json={}, as_="manager")
    assert nobody.status_code == 422 and nobody.json["errors"]["assignee"] == "Choose who to give the task to"
    wrong = team.post(f"/tasks/{visit}/reassign", json={"assignee": "front"}, as_="manager")
    assert wrong.status_code == 422 and "does not have the role" in wrong.json["errors"]["assignee"]
    assert team.post(f"/tasks/{visit}/reassign", json={"assignee": "user-social_worker"},
                     as_="worker").status_code == 403  # not a manager
    given = team.post(f"/tasks/{visit}/reassign", json={"assignee": "user-social_worker"}, as_="manager")
    assert given.status_code == 200 and given.json["assignee"] == "user-social_worker"
    assert tasks_of(team, case["id"])["Task_Visit"][1] == "user-social_worker"


def test_bulk_reassign_gives_all_or_none(team):
    cases = [start(team, f"BULK-{n}") for n in range(3)]
    for case in cases:
        allocate(team, case)
    visits = [tasks_of(team, c["id"])["Task_Visit"][0] for c in cases]
    moved = team.post("/workload/reassign", json={"tasks": visits[:2], "assignee": "user-social_worker"}, as_="manager")
    assert moved.status_code == 200, moved.json
    assert [t["assignee"] for t in moved.json["tasks"]] == ["user-social_worker"] * 2
    # one task the person cannot do (the allocation is the team manager's): none of them moves
    other = start(team, "BULK-X")
    mixed = team.post("/workload/reassign", json={"tasks": [visits[2], other["tasks"][0]["id"]],
                                                  "assignee": "user-social_worker"}, as_="manager")
    assert mixed.status_code == 422 and "BULK-X" in mixed.json["message"]
    assert tasks_of(team, cases[2]["id"])["Task_Visit"][1] == "worker"
    assert team.post("/workload/reassign", json={"tasks": [], "assignee": "worker"}, as_="manager").status_code == 422
    assert team.post("/workload/reassign", json={"tasks": visits, "assignee": "worker"}, as_="worker").status_code == 403


def test_the_workload_by_worker_and_role_overdue_first(team, frozen_clock):
    late = start(team, "LATE")
    allocate(team, late)  # Visit due in 5 days
    frozen_clock.advance(days=6)
    fresh = start(team, "FRESH")
    allocate(team, fresh)
    start(team, "WAITING")  # the allocation task, for team_manager, not yet taken
    load = team.get("/workload", as_="manager")
    assert load.status_code == 200, load.json
    body = load.json
    assert body["total"] == 3 and body["overdue"] == 1
    worker = next(p for p in body["by_worker"] if p["key"] == "worker")
    assert worker["count"] == 2 and worker["overdue"] == 1
    assert [t["reference"] for t in worker["tasks"]] == ["LATE", "FRESH"]  # overdue first
    assert [(p["key"], p["count"]) for p in body["by_role"]] == [("team_manager", 1)]
    assert team.get("/workload", as_="worker").status_code == 403  # managers only


def test_the_workload_counts_only_the_cases_the_manager_may_see(team, frozen_clock):
    """A manager's workload is their pathways' tasks: one whose roles belong to none of the council's pathways
    (and who started no case) sees none, while the team's manager sees them all, each unassigned task under its
    first role."""
    for reference in ("SEEN-1", "SEEN-2"):
        allocate(team, start(team, reference))
    start(team, "SEEN-3")  # the allocation, for team_manager, nobody's yet
    outsider = team.as_role("area_manager")  # a manager by role, of no pathway here
    nothing = team.get("/workload", as_=outsider)
    assert nothing.status_code == 200, nothing.json
    assert (nothing.json["total"], nothing.json["by_worker"], nothing.json["by_role"]) == (0, [], [])
    assert team.get("/tasks?overdue=true", as_=outsider).json == []
    seen = team.get("/workload", as_="manager").json
    assert seen["total"] == 3
    assert [(p["key"], p["count"]) for p in seen["by_worker"]] == [("worker", 2)]
    assert [(p["key"], p["count"]) for p in seen["by_role"]] == [("team_manager", 1)]


def test_a_workload_over_every_pathway_of_the_council_decides_nothing_case_by_case(team):
    """When a manager's pathways are all the council's, every case is their team's: the counts read no case row
    for each task (at 1,000,000 open tasks that join alone took a second). A manager of fewer pathways still
    gets the cases' condition."""
    allocate(team, start(team))
    sent = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        sent.append(" ".join(statement.lower().split()))

    with team.app.app_context():
        engine = db.engine
    for who, decided in (("manager", False), (team.as_role("area_manager"), True)):
        sent.clear()
        event.listen(engine, "before_cursor_execute", seen)
        try:
            assert team.get("/workload", as_=who).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        reading = [s for s in sent if s.startswith("select") and "from tasks" in s]
        # the workers' page, the roles' piles, the piles' tasks (the outsider has none to list), the totals
        assert len(reading) == (3 if decided else 4), sent
        assert all(("from cases where cases.id = tasks.case_id" in s) == decided for s in reading), reading


def test_the_workload_pages_its_workers_by_name_and_lists_each_piles_most_urgent(team, frozen_clock, monkeypatch):
    """A page of the workload costs its page: the workers holding open tasks by name, a page at a time (the
    X-Next-Cursor header), each pile counting all its worker's open tasks and listing the most urgent."""
    monkeypatch.setattr(workload, "WORKERS_PAGE", 2)
    monkeypatch.setattr(workload, "PILE_TASKS", 2)
    with team.app.app_context():
        for name in ("alice", "bob"):
            save_user(db.session, name, ["social_worker"])
        db.session.commit()
    references = {}
    for n, who in enumerate(["worker", "alice", "worker", "bob", "worker"]):
        allocate(team, start(team, f"PAGED-{n}"), who)  # each visit due 5 days after its day
        references.setdefault(who, []).append(f"PAGED-{n}")
        frozen_clock.advance(days=1)
    first = team.get("/workload", as_="manager")
    assert first.status_code == 200, first.json
    assert [(p["key"], p["count"]) for p in first.json["by_worker"]] == [("alice", 1), ("bob", 1)]
    after = first.headers["X-Next-Cursor"]
    second = team.get(f"/workload?after={after}", as_="manager")
    assert second.status_code == 200, second.json
    assert "X-Next-Cursor" not in second.headers
    [worker] = second.json["by_worker"]
    assert (worker["key"], worker["count"]) == ("worker", 3)
    assert [t["reference"] for t in worker["tasks"]] == references["worker"][:2]  # the two due soonest
    assert second.json["total"] == first.json["total"] == 5  # the team's, on every page
    refused = team.get("/workload?after=not-a-cursor", as_="manager")
    assert refused.status_code == 422 and "after" in refused.json["errors"], refused.json


def test_a_workers_whole_pile_is_listed_a_page_at_a_time(team, frozen_clock, monkeypatch):
    """Beyond the most urgent tasks the workload lists, a manager reads a worker's whole pile (to give it away
    when they are off), most urgent first, a page at a time; nobody else's, and only a manager."""
    monkeypatch.setattr(workload, "PILE_TASKS", 2)
    monkeypatch.setattr(paging, "TASK_PAGE", 2)
    for n in range(3):
        allocate(team, start(team, f"PILE-{n}"))
        frozen_clock.advance(days=1)
    allocate(team, start(team, "SOMEONE-ELSES"), "user-social_worker")  # another worker's, and due sooner
    start(team, "NOBODYS")  # nobody's yet
    piles = team.get("/workload", as_="manager").json["by_worker"]
    pile = next(p for p in piles if p["key"] == "worker")
    assert (pile["count"], len(pile["tasks"])) == (3, 2)
    first = team.get("/workload/workers/worker", as_="manager")
    assert first.status_code == 200, first.json
    assert (first.json["count"], [t["reference"] for t in first.json["tasks"]]) == (3, ["PILE-0", "PILE-1"])
    second = team.get(f"/workload/workers/worker?after={first.headers['X-Next-Cursor']}", as_="manager")
    assert [t["reference"] for t in second.json["tasks"]] == ["PILE-2"] and "X-Next-Cursor" not in second.headers
    for nobody in ("front", "no-such-user"):  # no task of the team is theirs: alike
        missing = team.get(f"/workload/workers/{nobody}", as_="manager")
        assert missing.status_code == 404 and nobody in missing.json["message"], missing.json
    assert team.get("/workload/workers/worker", as_="worker").status_code == 403


def test_the_tasks_waiting_for_a_role_are_listed_a_page_at_a_time(team, frozen_clock, monkeypatch):
    """A manager allocating a queue reads every task nobody has taken that a role may take, most urgent first, a
    page at a time, counted as the roles' piles are (up to their cap: as many or more)."""
    monkeypatch.setattr(paging, "TASK_PAGE", 2)
    monkeypatch.setattr(workload, "WAITING_COUNTED", 2)
    for n in range(3):
        start(team, f"QUEUE-{n}")  # the allocation, for team_manager, nobody's yet; each a day later
        frozen_clock.advance(days=1)
    allocate(team, start(team, "TAKEN"))  # its visit is the worker's: not waiting
    first = team.get("/workload/waiting?role=team_manager", as_="manager")
    assert first.status_code == 200, first.json
    assert (first.json["count"], [t["reference"] for t in first.json["tasks"]]) == (2, ["QUEUE-0", "QUEUE-1"])
    second = team.get(f"/workload/waiting?role=team_manager&after={first.headers['X-Next-Cursor']}", as_="manager")
    assert [t["reference"] for t in second.json["tasks"]] == ["QUEUE-2"] and "X-Next-Cursor" not in second.headers
    nothing = team.get("/workload/waiting?role=social_worker", as_="manager").json
    assert (nothing["count"], nothing["tasks"]) == (0, [])
    assert team.get("/workload/waiting", as_="manager").status_code == 422
    assert team.get("/workload/waiting?role=team_manager", as_="worker").status_code == 403


def test_the_workloads_answer_is_what_its_schema_would_dump(team, frozen_clock):
    """The workload is answered without a second dump through its schema: the same JSON, its datetimes included
    (a due date, an errored case's time)."""
    from service.api.workload import WorkloadSchema, workload_json
    from service.policy import Actor
    from service.workload import errored_cases
    from service.workload import workload as workload_of

    late = start(team, "LATE")
    allocate(team, late)
    frozen_clock.advance(days=6)
    start(team, "WAITING")
    with team.app.app_context():
        with everything():
            stuck = db.session.get(Case, late["id"])
            stuck.status, stuck.error = "error", {"message": "a script failed"}
            council_id = stuck.council_id
            db.session.commit()
        manager = db.session.scalar(select(User).where(User.name == "manager"))
        actor = Actor("manager", ("team_manager",), manager.id, council_id)
        in_council(db.session)
        expected = WorkloadSchema().dump(workload_json(workload_of(db.session, actor), errored_cases(db.session, actor)))
        db.session.remove()
    answer = team.get("/workload", as_="manager")
    assert answer.status_code == 200 and answer.json == expected, (answer.json, expected)
    assert expected["errors"][0]["reference"] == "LATE" and expected["by_worker"][0]["tasks"][0]["due_at"]


def test_the_workload_counts_at_most_its_cap_and_says_so(team, monkeypatch):
    """The totals stop counting at the lists' cap (a count one over it means "more than that"), and the roles'
    piles of tasks nobody has taken count the most urgent few, saying when as many or more are waiting."""
    monkeypatch.setattr(paging, "COUNT_CAP", 2)
    monkeypatch.setattr(workload, "WAITING_COUNTED", 2)
    for n in range(3):
        start(team, f"WAITING-{n}")  # each an allocation for team_manager, nobody's yet
    body = team.get("/workload", as_="manager").json
    assert (body["total"], body["overdue"]) == (3, 0)  # the cap and one: more than 2
    assert [(p["key"], p["count"], len(p["tasks"])) for p in body["by_role"]] == [("team_manager", 2, 2)]
    assert body["by_role_capped"] is True
    monkeypatch.setattr(paging, "COUNT_CAP", 3)
    monkeypatch.setattr(workload, "WAITING_COUNTED", 3)
    body = team.get("/workload", as_="manager").json
    assert (body["total"], body["by_role"][0]["count"], body["by_role_capped"]) == (3, 3, True)
    monkeypatch.setattr(workload, "WAITING_COUNTED", 4)
    body = team.get("/workload", as_="manager").json
    assert (body["total"], body["by_role"][0]["count"], body["by_role_capped"]) == (3, 3, False)


# -- notes ---------------------------------------------------------------------------------------

def test_notes_are_added_listed_and_audited(team, frozen_clock):
    case = start(team)
    note = team.post(f"/cases/{case['id']}/notes", json={"kind": "visit", "happened_on": "2026-12-18",
                                                         "who": "Mother and child", "text": "Home visit: all well."})
    assert note.status_code == 201, note.json
    assert note.json["kind_label"] == "Visit" and note.json["created_by"] == "worker"
    bad = team.post(f"/cases/{case['id']}/notes", json={"kind": "gossip", "happened_on": "2027-05-01", "text": " "})
    assert bad.status_code == 422 and set(bad.json["errors"]) == {"kind", "happened_on", "text"}
    listed = team.get(f"/cases/{case['id']}/notes")
    assert [n["text"] for n in listed.json] == ["Home visit: all well."]
    assert team.get(f"/cases/{case['id']}/notes", as_=team.as_role("youth_worker")).status_code == 403
    assert team.post(f"/cases/{case['id']}/notes", json={"kind": "visit", "happened_on": "2026-12-18", "text": "x"},
                     as_=team.as_role("youth_worker")).status_code == 403
    assert "note_added" in [e["event"] for e in team.get(f"/cases/{case['id']}/history").json]
    with team.app.app_context(), everything():
        raw = db.session.execute(text("SELECT text FROM case_notes")).scalar()
    assert "Home visit" not in raw  # encrypted at rest


# -- documents -----------------------------------------------------------------------------------

def upload(api, case_id, content, filename="report.pdf", title="Report", as_="worker", **form):
    return api.post(f"/cases/{case_id}/documents", as_=as_, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(content), filename), "title": title, **form})


def stored(api) -> int:
    with api.app.app_context(), everything():
        return db.session.scalar(select(func.count()).select_from(CaseDocument))


@pytest.mark.parametrize("content, media_type", [(PDF, "application/pdf"), (PNG, "image/png"),
                                                 (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "image/jpeg"),
                                                 (b"GIF89a" + b"\x00" * 20, "image/gif"),
                                                 (docx(), "application/vnd.openxmlformats-officedocument."
                                                          "wordprocessingml.document"),
                                                 (odt(), "application/vnd.oasis.opendocument.text")])
def test_a_documents_type_is_read_from_its_content(content, media_type):
    from service.case_records import sniff

    assert sniff(content) == media_type
    assert sniff(EXE) is None and sniff(plain_zip()) is None and sniff(b"<html><script>") is None


def test_upload_and_download_a_document(team):
    case = start(team)
    done = upload(team, case["id"], PNG, filename="family photo.pdf", title="Genogram")
    assert done.status_code == 201, done.json
    assert done.json["media_type"] == "image/png"  # by content, not by the name's .pdf
    listed = team.get(f"/cases/{case['id']}/documents").json
    assert [d["title"] for d in listed] == ["Genogram"]
    got = team.get(done.json["download"].removeprefix("/api/v1"))
    assert got.status_code == 200 and got.data == PNG
    assert got.headers["Content-Type"] == "image/png"
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    # whoever may not see the case may not download it either
    assert team.get(done.json["download"].removeprefix("/api/v1"), as_=team.as_role("youth_worker")).status_code == 403
    events = [e["event"] for e in team.get(f"/cases/{case['id']}/history").json]
    assert "document_uploaded" in events and "document_downloaded" in events
    with team.app.app_context(), everything():
        assert db.session.scalar(select(func.count()).select_from(AccessEvent)
                                 .where(AccessEvent.purpose == "document")) == 1
        raw = db.session.execute(text("SELECT content FROM case_documents")).scalar()
    assert "PNG" not in raw and "IHDR" not in raw  # encrypted at rest


def test_a_file_of_the_wrong_type_or_too_large_is_refused_and_nothing_is_stored(team):
    case = start(team)
    exe = upload(team, case["id"], EXE, filename="minutes.pdf")
    assert exe.status_code == 415 and "its content says so" in exe.json["message"]
    assert upload(team, case["id"], plain_zip(), filename="minutes.docx").status_code == 415
    assert upload(team, case["id"], b"", filename="empty.pdf").status_code == 422
    assert upload(team, case["id"], PDF, title="").status_code == 422
    team.app.config["DOCUMENT_MAX_BYTES"] = 1024
    big = upload(team, case["id"], PDF + b"0" * 2048)
    assert big.status_code == 413 and "1 KB" in big.json["message"]
    assert stored(team) == 0
    assert "document_uploaded" not in [e["event"] for e in team.get(f"/cases/{case['id']}/history").json]
    assert upload(team, case["id"], PDF, as_=team.as_role("youth_worker")).status_code == 403


def test_an_upload_ticks_the_checklist_in_the_tasks_draft_not_the_cases_data(team):
    case = start(team)
    allocate(team, case)
    # uploaded before the checklist task opens: it opens ticked
    first = upload(team, case["id"], PDF, title="Genogram", checklist_item="documents_received:genogram")
    assert first.status_code == 201, first.json
    assert upload(team, case["id"], PDF, checklist_item="documents_received:nonsense").status_code == 422
    visit, _ = tasks_of(team, case["id"])["Task_Visit"]
    assert team.post(f"/tasks/{visit}/complete", json={"data": {}}).status_code == 200
    checklist, _ = tasks_of(team, case["id"])["Task_Documents"]
    with team.app.app_context(), everything():
        assert db.session.get(OpenTask, checklist).draft == {"documents_received": ["genogram"]}
    # uploaded while it is open: ticked at once, the rest kept
    assert upload(team, case["id"], PDF, title="Chronology",
                  checklist_item="documents_received:chronology").status_code == 201
    with team.app.app_context(), everything():
        assert db.session.get(OpenTask, checklist).draft == {"documents_received": ["genogram", "chronology"]}
    case_now = team.get(f"/cases/{case['id']}").json
    assert "documents_received" not in case_now["data"]  # the worker completes the task: the engine decides
    assert "checklist_ticked" in [e["event"] for e in team.get(f"/cases/{case['id']}/history").json]


def test_chronology_entries_of_notes_and_documents(team):
    from service.case_records import entries_for_cases

    case = start(team)
    team.post(f"/cases/{case['id']}/notes", json={"kind": "phone_call", "happened_on": "2026-11-02", "who": "School",
                                                  "text": "Called the school."})
    upload(team, case["id"], PDF, title="Plan")
    with team.app.app_context(), everything():
        entries = entries_for_cases(db.session, [case["id"]])
    assert [(e["source"], e["title"]) for e in entries] == [("document", "Document: Plan"),
                                                             ("note", "Phone call with School")]
    assert entries[0]["download"].startswith(f"/cases/{case['id']}/documents/")


def test_erasing_a_case_erases_its_notes_and_documents(team):
    from service import retention, tenancy
    from service.models import Case

    case = start(team)
    team.post(f"/cases/{case['id']}/notes", json={"kind": "visit", "happened_on": "2026-11-02", "text": "Seen."})
    assert upload(team, case["id"], PDF).status_code == 201
    with team.app.app_context():
        council = tenancy.council_by_key(db.session, "test")
        tenancy.act_for(db.session, council)
        retention.erase(db.session, db.session.get(Case, case["id"]), retention.Rule(1, "test"), council)
        db.session.commit()
    with team.app.app_context(), everything():
        assert db.session.scalars(select(CaseNote)).all() == [] and db.session.scalars(select(CaseDocument)).all() == []
