"""Lists cost their page, not the table (issue 16).

Every list request (the inbox and the team's tasks over the API and as pages, the case lists and search,
the workload, notifications) runs the same number of SQL statements whether the user has 3 tasks or 30
(no query per listed row); and on PostgreSQL, as the service's role under row-level security, every
statement of those requests that reads ``tasks`` or ``cases`` can be served by an index (``EXPLAIN`` with
``enable_seqscan`` off shows no sequential scan of either table, and no ``LIKE`` filter walking a whole
index), and a search by part of a reference is an index range of ``reference_suffixes``. Timings are not tested here: ``bench/scale.py`` measures them.
"""
from __future__ import annotations

import pytest
from sqlalchemy import event

from conftest import FIXTURES, Browser, page_text, save_user
from service.models import db

PATHWAY = FIXTURES / "pathways"

API_LISTS = [("dana", "/tasks"), ("worker", "/tasks"), ("manager", "/tasks?overdue=true"),
             ("dana", "/cases"), ("dana", "/cases?mine=true"), ("dana", "/cases?q=FAM"),
             ("dana", "/cases?reference=FAM-1"), ("manager", "/workload"), ("manager", "/workload/workers/dana"),
             ("manager", "/workload/waiting?role=social_worker"), ("dana", "/notifications")]
PAGES = [("dana", "/"), ("worker", "/"), ("manager", "/manager"), ("manager", "/workload"),
         ("manager", "/workload/workers/dana"), ("manager", "/workload/waiting?role=social_worker"), ("dana", "/cases/mine"),
         ("dana", "/cases?q=FAM"), ("manager", "/cases/team")]


def _open_cases(api, first: int, last: int) -> None:
    """Cases first..last-1 started by Dana, whose first task Dana takes."""
    for n in range(first, last):
        started = api.post("/cases", json={"process": "test_review", "reference": f"FAM-{n}", "data": {"needs": 3}},
                           as_="dana")
        assert started.status_code == 201, started.json
        claimed = api.post(f"/tasks/{started.json['tasks'][0]['id']}/claim", json={}, as_="dana")
        assert claimed.status_code == 200, claimed.json
        # and one task for the social workers' pool, nobody's yet
        other = api.post("/cases", json={"process": "test_review", "reference": f"POOL-{n}", "data": {"needs": 3}},
                         as_="front")
        assert other.status_code == 201, other.json


class Statements:
    """Counts (and keeps) the SQL statements sent while a request runs."""

    def __init__(self, app):
        with app.app_context():
            self.engine = db.engine
        self.seen: list[tuple[str, object]] = []

    def __enter__(self):
        self.seen = []
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._count)

    def _count(self, conn, cursor, statement, parameters, context, executemany):
        self.seen.append((statement, parameters))


def _users(api) -> None:
    with api.app.app_context():
        save_user(db.session, "dana", ["social_worker"], token="token-dana", password="password-dana")
        db.session.commit()
    api.tokens["dana"] = "token-dana"


def _browsers(api) -> dict[str, Browser]:
    browsers = {}
    for name in ("dana", "worker", "manager"):
        browsers[name] = Browser(api.app)
        browsers[name].sign_in(name, f"password-{name}")
    return browsers


def _measure(api, browsers) -> dict[str, int]:
    counted = Statements(api.app)
    found = {}
    for who, path in API_LISTS:
        assert api.get(path, as_=who).status_code == 200, path  # warm: parsed pathways, the token's last use
        with counted:
            assert api.get(path, as_=who).status_code == 200, path
        found[f"api {who} {path}"] = len(counted.seen)
    for who, path in PAGES:
        assert browsers[who].get(path).status_code == 200, path
        with counted:
            assert browsers[who].get(path).status_code == 200, path
        found[f"page {who} {path}"] = len(counted.seen)
    return found


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_list_request_costs_the_same_statements_for_3_tasks_as_for_30(api):
    api.deploy(PATHWAY)
    _users(api)
    browsers = _browsers(api)
    _open_cases(api, 0, 3)
    few = _measure(api, browsers)
    _open_cases(api, 3, 30)
    many = _measure(api, browsers)
    assert many == few
    assert max(few.values()) <= 25, few  # a handful: who is asking, the page, what it shows


def test_list_statements_are_served_by_indexes(api, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("EXPLAIN plans are PostgreSQL's")
    api.deploy(PATHWAY)
    _users(api)
    browsers = _browsers(api)
    _open_cases(api, 0, 4)
    plans: list[tuple[str, str, str]] = []
    current = [""]

    def explain(conn, cursor, statement, parameters, context, executemany):
        text = statement.lstrip().upper()
        if executemany or not text.startswith(("SELECT", "WITH")):
            return
        words = " " + " ".join(statement.lower().split())  # SQLAlchemy starts FROM and JOIN on new lines
        if not any(f" {table}" in words for table in ("from tasks", "join tasks", "from cases", "join cases")):
            return
        with cursor.connection.cursor() as own:
            own.execute("SET enable_seqscan = off")
            own.execute("EXPLAIN " + statement, parameters)
            plan = "\n".join(row[0] for row in own.fetchall())
            own.execute("SET enable_seqscan = on")
        plans.append((current[0], statement, plan))

    with api.app.app_context():
        engine = db.engine
    event.listen(engine, "after_cursor_execute", explain)
    try:
        for who, path in API_LISTS:
            current[0] = path
            assert api.get(path, as_=who).status_code == 200, path
        for who, path in PAGES:
            current[0] = path
            assert browsers[who].get(path).status_code == 200, path
    finally:
        event.remove(engine, "after_cursor_execute", explain)
    assert plans
    for _path, statement, plan in plans:
        assert "Seq Scan on tasks" not in plan and "Seq Scan on cases" not in plan, f"{statement}\n{plan}"
        assert "Index" in plan, f"{statement}\n{plan}"
        # With enable_seqscan off a filter the index cannot serve still "uses an index", walking all of it: a
        # LIKE (or lower()) is never leakproof, so under row-level security it is always such a walk.
        assert "~~" not in plan and "lower(" not in plan, f"{statement}\n{plan}"
    # The roles of each listed task come from the covering index alone (migration c3f7a1d9e2b5): row-level
    # security's council filter is checked on the index's columns, no read of the table per listed task.
    listed = [plan for _path, statement, plan in plans if "array_agg(task_roles.role" in statement]
    assert listed
    for plan in listed:
        assert "Index Only Scan using ix_task_roles_task_covering on task_roles" in plan, plan
    # A search by part of a reference is an index range of the reference suffixes (leakproof bytea
    # comparisons), not a read of every case.
    for path in ("/cases?reference=FAM-1", "/cases?q=FAM"):
        served = [plan for seen, _statement, plan in plans if seen == path and "on reference_suffixes" in plan]
        assert served, path
        for plan in served:
            assert "Index Cond: ((council_id = " in plan and "(suffix >= " in plan and "(suffix < " in plan, plan


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_analysts_count_rows_not_ids_and_a_versions_page_counts_its_cases_once(api):
    """The analysts' overview and a version's cases count the council's cases by version and status. Counting
    rows, not ids, PostgreSQL can read ``ix_cases_council_version_status`` alone (at a million cases 135 ms against
    590 ms reading each case: ``docs/performance.md``; a test's few rows, unvacuumed, do not settle its plan); a
    version's page takes its total from those counts, not from a second count."""
    api.deploy(PATHWAY)
    _users(api)
    _open_cases(api, 0, 3)
    version = next(v["id"] for v in api.get("/versions?key=test_review", as_="analyst").json)
    browser = Browser(api.app)
    browser.sign_in("analyst", "password-analyst")
    counted = Statements(api.app)
    pages = ("/analyst", f"/analyst/versions/{version}/cases", f"/analyst/versions/{version}/cases?status=active")
    counts = []
    for path in pages:
        with counted:
            page = browser.get(path)
        assert page.status_code == 200, path
        counts.append([" ".join(s.split()) for s, _ in counted.seen if "count(" in s and "FROM cases" in s])
    assert [len(found) for found in counts] == [1, 1, 1], counts  # one count a page
    for [statement] in counts:
        assert "count(*)" in statement and "count(cases.id)" not in statement, statement
    assert "6 cases, stopped on an error first" in page.get_data(as_text=True)  # the total from the counts
    assert browser.get(f"/analyst/versions/{version}/cases?page=" + "9" * 30).status_code == 200  # empty, no 500


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_sqlite_the_case_list_is_read_in_its_index_order_and_a_search_sorts_what_it_found(api):
    """SQLite has no statistics to choose by, so the statement decides: the whole case list is read from the
    lists' index in the lists' order (it sorted every case of the council for a page of 50: half a second at
    100,000 cases), and a search by reference or name, a family's cases and "my cases" find their few cases
    first and sort them (walking the council's whole list order looking for them was linear in its size)."""
    api.deploy(PATHWAY)
    _users(api)
    _open_cases(api, 0, 3)
    counted = Statements(api.app)
    pages = {}
    for path in ("/cases", "/cases?reference=FAM-1", "/cases?q=FAM", "/cases?mine=true"):
        with counted:
            assert api.get(path, as_="dana").status_code == 200, path
        [(statement, parameters)] = [(s, p) for s, p in counted.seen if " LIMIT " in s and "ORDER BY" in s]
        with api.app.app_context():
            connection = db.session.connection()
            pages[path] = "\n".join(row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                                 parameters))
            db.session.remove()
    assert "USING INDEX ix_cases_list_order" in pages["/cases"] and "TEMP B-TREE" not in pages["/cases"], pages
    for path in ("/cases?reference=FAM-1", "/cases?q=FAM", "/cases?mine=true"):
        assert "ix_cases_list_order" not in pages[path] and "USE TEMP B-TREE FOR ORDER BY" in pages[path], pages


def test_the_cases_behind_a_managers_count_are_read_in_the_lists_index_order_and_counted_to_the_cap(
        api, database_url, monkeypatch):
    """The manager view's counts link to their cases: the page is read in the lists' order (errors first, then the
    newest), which the lists' index serves (it was sorted by the time alone, which no index serves: every case it
    counted was sorted, 1.1 s at a million), and counted up to the lists' cap ("more than"), not every case.
    SQLite's plan shows the index for the whole list; PostgreSQL's, with sorting made dear, for a status too."""
    from service import paging

    api.deploy(PATHWAY)
    _users(api)
    _open_cases(api, 0, 3)
    manager = Browser(api.app)
    manager.sign_in("admin", "password-admin")
    counted = Statements(api.app)
    path = "/manager/cases" if database_url.startswith("sqlite") else "/manager/cases?status=active"
    with counted:
        page = manager.get(path)
    assert page.status_code == 200
    [(statement, parameters)] = [(s, p) for s, p in counted.seen if " LIMIT " in s and "ORDER BY" in s]
    [count] = [s for s, _ in counted.seen if "count(*)" in s]
    assert " LIMIT " in count, count  # to the cap
    with api.app.app_context():
        connection = db.session.connection()
        if database_url.startswith("sqlite"):
            plan = "\n".join(row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                           parameters))
            assert "USING INDEX ix_cases_list_order" in plan and "TEMP B-TREE" not in plan, plan
        else:
            cursor = connection.connection.driver_connection.cursor()
            cursor.execute("SET enable_sort = off")
            cursor.execute("EXPLAIN " + statement, parameters)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            cursor.execute("SET enable_sort = on")
            assert "using ix_cases_list_order on cases" in plan and "Sort" not in plan, plan
        db.session.remove()
    monkeypatch.setattr(paging, "COUNT_CAP", 4)
    monkeypatch.setattr("service.web.manager_pages.PER_PAGE", 2)
    capped = page_text(manager.get("/manager/cases?status=active"))
    assert "More than 4 cases" in capped and "Page 1" in capped and "Page 1 of" not in capped, capped
    assert manager.get("/manager/cases?page=" + "9" * 30).status_code == 200  # a page past any list: empty


def test_a_case_list_over_every_pathway_of_the_council_decides_nothing_case_by_case(api):
    """When a user's roles belong to every pathway of the council, every case of it is theirs to see: the list and
    its count carry no condition on a case's pathway or starter, so that PostgreSQL counts from an index alone (with
    the condition, its count of 10,001 cases read 341 pages of the table, from disk when they were not cached). A
    user of fewer pathways keeps it."""
    api.deploy(PATHWAY)
    _users(api)
    _open_cases(api, 0, 2)
    counted = Statements(api.app)
    for who, decided, total in (("dana", False, 4), (api.as_role("keyworker"), True, 0)):
        with counted:
            answer = api.get("/cases", as_=who)
        assert answer.status_code == 200 and answer.json["total"] == total, answer.json
        reading = [" ".join(s.lower().split()) for s, _ in counted.seen]
        reading = [s for s in reading if s.startswith("select") and " from cases" in s]
        assert len(reading) == 2, reading  # the page and its count
        assert all(("cases.started_by_id = " in s) == decided for s in reading), reading


def test_the_cases_a_case_handed_over_to_are_found_by_an_index(api, database_url):
    """A case's answers (and its page) list the cases it handed over to, found by ``started_from_case_id``:
    through an index (migration ``f6a2c8e4b1d9``), not by reading every case of the council. SQLite's plan shows
    it; PostgreSQL's planner chooses by its statistics, which a test's few rows do not settle, so there the index
    is checked as the planner finds it (valid, on that column, for every case handed over from another)."""
    api.deploy(PATHWAY)
    _users(api)
    started = api.post("/cases", json={"process": "test_review", "reference": "FAM-1", "data": {"needs": 3}},
                       as_="dana")
    assert started.status_code == 201, started.json
    counted = Statements(api.app)
    with counted:
        assert api.get(f"/cases/{started.json['id']}/answers", as_="dana").status_code == 200
    [(statement, parameters)] = [(s, p) for s, p in counted.seen if "cases.started_from_case_id = " in s]
    with api.app.app_context():
        connection = db.session.connection()
        if database_url.startswith("postgresql"):
            [(definition, valid)] = connection.exec_driver_sql(
                "SELECT pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'ix_cases_started_from'").all()
            assert valid and "ON public.cases USING btree (started_from_case_id)" in definition, definition
            assert "WHERE (started_from_case_id IS NOT NULL)" in definition, definition
        else:
            plan = "\n".join(row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                          parameters))
            assert "USING INDEX ix_cases_started_from (started_from_case_id=?)" in plan, plan
        db.session.remove()


def test_the_childrens_and_families_lists_are_read_in_an_index_order(api, database_url):
    """``GET /people`` and ``GET /families`` without a search read their page from an index in the list's order
    (migration ``c8e1a5d3f2b7``): no sort of every child or family of the council for a page of fifty. PostgreSQL's
    planner chooses by its statistics, which a test's few rows do not settle: there, with sequential and bitmap scans
    and sorts off, the plan must read an index in order without a sort (with no index in that order it sorts still).
    The people's order (newest id first) is also the primary key's, which a few rows of one council make as cheap
    for the planner, so there the council's index is checked by its definition: at a million children of many
    councils it is the one that reads only the council's.
    SQLite's index on a council's people holds them by id already (each entry ends with the row's id)."""
    api.deploy(PATHWAY)
    for n in range(3):
        created = api.post("/families", json={"children": [{"given_name": f"Child{n}", "family_name": "Price"}]})
        assert created.status_code == 201, created.json
    counted = Statements(api.app)
    postgresql = database_url.startswith("postgresql")
    people_index = "ix_people_council_newest" if postgresql else "ix_people_council_id"
    for path, table, index in (("/people", "people", people_index),
                               ("/families", "families", "ix_families_council_newest")):
        with counted:
            assert api.get(path).status_code == 200, path
        [(statement, parameters)] = [(s, p) for s, p in counted.seen
                                     if " LIMIT " in s and "ORDER BY" in s and f"FROM {table}" in s]
        with api.app.app_context():
            connection = db.session.connection()
            if postgresql:
                for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                    connection.exec_driver_sql(f"SET LOCAL {setting} = off")
                plan = "\n".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters))
                served_by = (index, "people_pkey") if table == "people" else (index,)
                assert any(f"using {name} on {table}" in plan for name in served_by) and "Sort" not in plan, plan
                [definition] = connection.exec_driver_sql(
                    "SELECT pg_get_indexdef(c.oid) FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
                    "WHERE c.relname = %(name)s AND i.indisvalid", {"name": index}).scalars()
                columns = "council_id, id DESC" if table == "people" else "council_id, created_at DESC, id DESC"
                assert f"ON public.{table} USING btree ({columns})" in definition, definition
            else:
                plan = "\n".join(row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                              parameters))
                assert f"USING INDEX {index}" in plan and "TEMP B-TREE" not in plan, plan
            db.session.remove()


def test_a_search_for_a_child_reads_the_index_entries_of_what_it_looks_for(api, database_url):
    """A search by a child's name (the case list's ``q``, the people's) reads the blind index's entries of the
    digests it looks for, through their index: SQLite, with no statistics to choose by, read every entry of the
    index in order of person to group them (25 a child), so each search cost the council's children."""
    if database_url.startswith("postgresql"):
        pytest.skip("SQLite's plan: PostgreSQL chooses by its statistics")
    api.deploy(PATHWAY)
    created = api.post("/families", json={"children": [{"given_name": "Isolde", "family_name": "Pennywhistle"}]})
    assert created.status_code == 201, created.json
    counted = Statements(api.app)
    for path in ("/people?q=pennywhistle", "/cases?q=pennywhistle"):
        with counted:
            assert api.get(path).status_code == 200, path
        searches = [(s, p) for s, p in counted.seen if "FROM search_tokens" in s]
        assert searches, path
        with api.app.app_context():
            connection = db.session.connection()
            for statement, parameters in searches:
                plan = "\n".join(row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                              parameters))
                assert "SEARCH search_tokens USING INDEX ix_search_tokens_council_kind_digest" in plan, plan
            db.session.remove()
