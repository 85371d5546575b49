"""Families and children through the REST API: recording them with a case, finding cases again (partial
names in any case, dates of birth, references), lists with filters, pages and totals, likely duplicates,
hand-overs keeping the family, the chronology, and who may see what."""
from __future__ import annotations

from sqlalchemy import select, text

from conftest import FIXTURES, everything
from service.models import db

PATHWAY = FIXTURES / "pathways"
HANDOVER = FIXTURES / "handover"
AMELIA = {"given_name": "Amelia", "family_name": "Price", "date_of_birth": "2015-03-09"}
BEN = {"given_name": "Ben", "family_name": "Price", "date_of_birth": "2017-06-01"}
ZOE = {"given_name": "Zoë", "family_name": "O'Brien-Smith", "date_of_birth": "2012-01-20", "nhs_number": "943 476 5919"}


def deployed(api):
    assert api.deploy(PATHWAY).status_code == 201
    assert api.deploy(HANDOVER).status_code == 201
    return api


def start(api, reference, child=None, as_="worker", process="test_review", data=None, **more):
    body = {"process": process, "reference": reference, "data": data or {"needs": 3}, **more}
    if child is not None:
        body["child"] = child
    response = api.post("/cases", json=body, as_=as_)
    assert response.status_code == 201, response.json
    return response.json


def found(api, as_="worker", **query):
    response = api.get("/cases", query_string=query, as_=as_)
    assert response.status_code == 200, response.json
    return response.json


def refs(listing):
    return sorted(c["reference"] for c in listing["cases"])


def test_a_case_names_its_child_and_family(api):
    deployed(api)
    case = start(api, "CN-1001", AMELIA)
    child = case["child"]
    assert (child["given_name"], child["family_name"], child["date_of_birth"]) == ("Amelia", "Price", "2015-03-09")
    assert case["reference"] == "CN-1001"  # the council's own case number
    family = api.get(f"/families/{case['family_id']}").json
    assert family["name"] == "Price family"
    assert [p["given_name"] for p in family["people"]] == ["Amelia"]
    assert [c["id"] for c in family["cases"]] == [case["id"]]
    person = api.get(f"/people/{child['id']}").json
    assert person["family_id"] == case["family_id"] and [c["reference"] for c in person["cases"]] == ["CN-1001"]
    # a sibling in the same family, then an existing child again
    sibling = start(api, "CN-1002", BEN, family_id=case["family_id"])
    again = start(api, "CN-1003", child_id=child["id"])
    assert sibling["family_id"] == again["family_id"] == case["family_id"]
    assert again["child"]["id"] == child["id"]
    assert [c["reference"] for c in api.get(f"/families/{case['family_id']}").json["cases"]] == [
        "CN-1001", "CN-1002", "CN-1003"]
    # a case without a child still starts (other systems, older callers)
    assert start(api, "CN-1004")["child"] is None


def test_a_search_matching_more_children_than_its_limit_reads_one_more_and_asks_for_more_of_the_name(
        api, monkeypatch):
    from sqlalchemy import event

    from service import families
    from service.models import Person

    deployed(api)
    monkeypatch.setattr(families, "SEARCH_LIMIT", 2)
    for n, given in enumerate(("Amelia", "Ben", "Cora")):
        start(api, f"CN-{n}", {"given_name": given, "family_name": "Price"})
    loaded = []
    listener = lambda target, context: loaded.append(target.id)  # noqa: E731
    event.listen(Person, "load", listener)
    try:
        for path in ("/cases", "/people", "/families"):
            loaded.clear()
            refused = api.get(path, query_string={"q": "price"})
            assert refused.status_code == 422, (path, refused.json)
            assert refused.json["errors"]["q"].startswith("More than 2 children match \u201cprice\u201d: enter more")
            assert loaded == []  # the ids of the limit and one more from the index; no child read or decrypted
    finally:
        event.remove(Person, "load", listener)
    sent = []
    with api.app.app_context():
        engine = db.engine
    listen = lambda conn, cursor, statement, *args: sent.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listen)
    try:
        assert refs(found(api, q="ben price")) == ["CN-1"]  # more of the name finds them
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    # "ben" is held by one child: its holders are the candidates, and the common triples of "price" are not read
    searches = [" ".join(s.split()) for s in sent if "search_tokens" in s]
    assert searches and not any("GROUP BY" in s for s in searches), searches
    monkeypatch.setattr(families, "SEARCH_LIMIT", 3)
    assert found(api, q="price")["total"] == 3


def test_a_search_reads_whole_only_the_children_it_shows(api):
    """A search reads the candidates' names alone to check them (two values decrypted, not every detail of
    each child); the list then reads its page's children, and the case list none but those its cases show."""
    from sqlalchemy import event

    from service.models import Person

    deployed(api)
    for n, given in enumerate(("Amelia", "Ben", "Cora")):
        start(api, f"CN-{n}", {"given_name": given, "family_name": "Price", "date_of_birth": "2015-03-09"})
    loaded = []
    listener = lambda target, context: loaded.append(target.id)  # noqa: E731
    event.listen(Person, "load", listener)
    try:
        for query in ({"q": "price"}, {"q": "9/3/2015"}, {"q": "pri", "date_of_birth": "2015-03-09"}):
            loaded.clear()
            page = api.get("/people", query_string={**query, "per_page": 1}).json
            assert page["total"] == 3 and [p["given_name"] for p in page["people"]] == ["Cora"], (query, page)
            assert len(loaded) == 1, query  # the page's child
        loaded.clear()
        assert api.get("/families", query_string={"q": "price", "per_page": 1}).json["total"] == 3
        assert len(loaded) == 1  # the page's family's child
    finally:
        event.remove(Person, "load", listener)


def test_a_long_name_is_found_by_any_part_of_it_through_trigrams_that_do_not_overlap(api):
    from service import families

    deployed(api)
    start(api, "CN-LONG", {"given_name": "Ben", "family_name": "Pricethwaite"})
    start(api, "CN-OTHER", {"given_name": "Ben", "family_name": "Thwaiteprice"})
    name = "pricethwaite"
    # four digests to look up, not ten: each is a read of every child holding it
    assert families._query_tokens(name) == {("tri", "pri"), ("tri", "cet"), ("tri", "hwa"), ("tri", "ite")}
    for size in range(3, len(name) + 1):
        for at in range(len(name) - size + 1):
            part = name[at:at + size]
            expected = ["CN-LONG", "CN-OTHER"] if part in "thwaiteprice" else ["CN-LONG"]
            assert refs(found(api, q=part)) == expected, part
    assert found(api, q="pricethwaitex")["total"] == 0 and found(api, q="pricewaite")["total"] == 0


def test_the_childs_details_are_checked(api):
    deployed(api)
    bad = api.post("/cases", json={"process": "test_review", "reference": "X", "data": {"needs": 1},
                                   "child": {"given_name": " ", "family_name": "Price", "date_of_birth": "2015-02-30",
                                             "nhs_number": "943 476 5918"}})
    assert bad.status_code == 422
    assert set(bad.json["errors"]) == {"child.given_name", "child.date_of_birth", "child.nhs_number"}
    assert found(api, q="price")["total"] == 0  # nothing was written
    assert api.post("/cases", json={"process": "test_review", "reference": "X", "data": {"needs": 1},
                                    "child_id": 999}).status_code == 404
    other = start(api, "CN-2", BEN)
    amelia = start(api, "CN-3", {**AMELIA, "family_name": "Jones"})
    wrong = api.post("/cases", json={"process": "test_review", "reference": "X", "data": {"needs": 1},
                                     "child_id": amelia["child"]["id"], "family_id": other["family_id"]})
    assert wrong.status_code == 422 and "child_id" in wrong.json["errors"]


def test_search_by_part_of_a_name_in_any_case_by_date_of_birth_and_by_reference(api):
    deployed(api)
    start(api, "CN-1001", AMELIA)
    start(api, "CN-1002", BEN)
    start(api, "SOM-77", ZOE)
    start(api, "REF-XYZ")
    assert refs(found(api, q="ric")) == ["CN-1001", "CN-1002"]  # the middle of "Price"
    assert refs(found(api, q="PRI")) == ["CN-1001", "CN-1002"]
    assert refs(found(api, q="amel pri")) == ["CN-1001"]
    assert refs(found(api, q="zoe")) == ["SOM-77"]  # accents ignored
    assert refs(found(api, q="o'brien")) == ["SOM-77"]
    assert refs(found(api, q="b")) == ["CN-1002", "SOM-77"]  # one letter: the start of a name
    assert found(api, q="pce")["total"] == 0  # letters of the name, not in that order
    assert found(api, q="ecirp")["total"] == 0
    start(api, "CN-ANNA", {"given_name": "Anna", "family_name": "Nanny"})
    assert found(api, q="annan")["total"] == 0  # every trigram is in her names, but not in this order
    assert refs(found(api, q="9/3/2015")) == ["CN-1001"]
    assert refs(found(api, q="2015-03-09")) == ["CN-1001"]
    assert refs(found(api, q="9 March 2015")) == ["CN-1001"]
    assert refs(found(api, q="9434765919")) == ["SOM-77"]
    assert refs(found(api, q="xyz")) == ["REF-XYZ"]
    assert refs(found(api, q="cn-100")) == ["CN-1001", "CN-1002"]
    assert refs(found(api, reference="ref-")) == ["REF-XYZ"]
    assert refs(found(api, reference="%")) == []  # a wildcard is a character like any other
    people = api.get("/people", query_string={"q": "price", "date_of_birth": "2017-06-01"}).json
    assert [p["given_name"] for p in people["people"]] == ["Ben"] and people["total"] == 1
    families = api.get("/families", query_string={"q": "zo"}).json
    assert families["total"] == 1 and families["families"][0]["people"][0]["family_name"] == "O'Brien-Smith"


def test_a_name_search_reads_the_index_once_however_long_the_name(api, app):
    """Each letter triple of a name is a value the person must hold. No statement joins a copy of the index table
    per triple, which PostgreSQL took longer to plan than to run: the triples' holders are counted, each up to the
    search's limit, as separate scalar subqueries; then the candidates are read in one pass over the index."""
    from sqlalchemy import event

    deployed(api)
    start(api, "CN-1", {"given_name": "Isolde", "family_name": "Pennywhistle", "date_of_birth": "2015-04-01"})
    start(api, "CN-2", {"given_name": "Penny", "family_name": "Whistler", "date_of_birth": "2015-04-01"})
    sent = []
    with app.app_context():
        engine = db.engine
    listen = lambda conn, cursor, statement, *args: sent.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listen)
    try:
        assert refs(found(api, q="pennywhistle")) == ["CN-1"]  # one word: not Penny Whistler
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    searches = [s for s in sent if "search_tokens" in s]
    assert searches and not any("JOIN search_tokens" in s for s in searches), searches
    read = [s for s in searches if s.count("FROM search_tokens") == 1]
    counted = [s for s in searches if s.count("FROM search_tokens") > 1]
    assert read and all(s.count("FROM search_tokens") == s.count("LIMIT") == 4 for s in counted), searches


def test_names_and_dates_are_encrypted_and_the_index_holds_no_name(api, app):
    deployed(api)
    start(api, "CN-1", AMELIA)
    with app.app_context(), everything():
        stored = " ".join(str(v) for row in db.session.execute(text("SELECT * FROM people")).all() for v in row)
        tokens = " ".join(r[0] for r in db.session.execute(text("SELECT digest FROM search_tokens")).all())
    assert "Amelia" not in stored and "Price" not in stored and "2015-03-09" not in stored
    assert "amelia" not in tokens and "pri" not in tokens


def test_lists_page_filter_and_count(api, frozen_clock):
    deployed(api)
    for n in range(5):
        start(api, f"CN-{n}", {"given_name": f"Child{n}", "family_name": "Evans", "date_of_birth": "2016-01-01"})
    start(api, "FIRST-1", AMELIA, process="test_first", data={"concern": "school"})
    first = found(api, q="evans", per_page=2, page=1)
    second = found(api, q="evans", per_page=2, page=3)
    assert first["total"] == second["total"] == 5
    assert len(first["cases"]) == 2 and len(second["cases"]) == 1
    assert found(api, process="test_first")["total"] == 1
    assert found(api, status="completed")["total"] == 0
    assert found(api, overdue=True)["total"] == 0
    frozen_clock.advance(days=3)
    assert found(api, overdue=True)["total"] == 6
    # mine: the cases I started, or where I hold or held a task
    assert found(api, as_="manager", mine=True)["total"] == 0
    assert found(api, as_="worker", mine=True)["total"] == 6
    task = api.get("/tasks", query_string={"case": found(api, reference="CN-0")["cases"][0]["id"]}).json[0]
    assert found(api, as_="admin", mine=True)["total"] == 0
    assert api.post(f"/tasks/{task['id']}/claim", json={}, as_="admin").status_code == 200
    assert refs(found(api, as_="admin", mine=True)) == ["CN-0"]
    # team: the pathways of my roles (the manager's role is not in test_first)
    assert found(api, as_="manager")["total"] == 5


def test_likely_duplicates_by_name_and_date_of_birth(api):
    deployed(api)
    start(api, "CN-1", AMELIA)
    start(api, "CN-2", ZOE)

    def duplicates(**child):
        response = api.post("/people/likely-duplicates", json=child)
        assert response.status_code == 200, response.json
        return [p["given_name"] for p in response.json["people"]]

    assert duplicates(given_name="amelia", family_name="Pryce", date_of_birth="2015-03-09") == ["Amelia"]
    assert duplicates(given_name="Millie", family_name="PRICE", date_of_birth="2015-03-09") == ["Amelia"]
    assert duplicates(given_name="Amelia", family_name="Price", date_of_birth="2015-03-10") == []
    assert duplicates(given_name="Amelia", family_name="Price") == ["Amelia"]  # no date: the same full name
    assert duplicates(given_name="Someone", family_name="Else", nhs_number="9434765919") == ["Zoë"]
    assert api.post("/people/likely-duplicates", json={"given_name": "A", "family_name": "B",
                                                       "nhs_number": "1234567890"}).status_code == 422


def test_a_hand_over_keeps_the_family_and_child_and_the_chronology_tells_it(api):
    deployed(api)
    case = start(api, "CN-9", AMELIA, process="test_first", data={"concern": "school"})
    task = case["tasks"][0]
    assert api.post(f"/tasks/{task['id']}/complete", json={"data": {}}).status_code == 200
    family = api.get(f"/families/{case['family_id']}", as_="admin").json
    assert [c["process"] for c in family["cases"]] == ["test_first", "test_second"]
    second = family["cases"][1]
    assert second["child"]["id"] == case["child"]["id"] and second["started_from_case_id"] == case["id"]
    assert second["reference"] == "CN-9"
    entries = api.get(f"/families/{case['family_id']}/chronology", as_="admin").json
    kinds = [e["kind"] for e in entries]
    assert kinds[-1] == "case" and "handover" in kinds and "step" in kinds
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)  # newest first
    handovers = api.get(f"/families/{case['family_id']}/chronology?kind=handover", as_="admin").json
    assert {e["title"] for e in handovers} == {"Handed over to test_second",
                                               f"Second support started, handed over from case {case['id']}"}
    only_first = api.get(f"/families/{case['family_id']}/chronology?case={case['id']}", as_="admin").json
    assert {e["case_id"] for e in only_first} == {case["id"]}
    assert api.get(f"/families/{case['family_id']}/chronology?since=2001-01-01&until=2001-01-02",
                   as_="admin").json == []
    # each person sees the cases of their own pathways only, in the family and its chronology
    as_worker = api.get(f"/families/{case['family_id']}", as_="worker").json
    assert [c["process"] for c in as_worker["cases"]] == ["test_first"]
    as_manager = api.get(f"/families/{case['family_id']}/chronology", as_="manager").json
    assert {e["case_id"] for e in as_manager} == {second["id"]}


def test_notes_show_in_the_family_chronology(api):
    deployed(api)
    case = start(api, "CN-10", AMELIA, process="test_first", data={"concern": "school"})
    note = api.post(f"/cases/{case['id']}/notes", json={"kind": "visit", "happened_on": "2026-11-02",
                                                        "who": "Mother", "text": "Home visit: all well."})
    assert note.status_code == 201, note.json
    notes = api.get(f"/families/{case['family_id']}/chronology?kind=note", as_="admin").json
    assert [(e["kind"], e["text"]) for e in notes] == [("note", "Home visit: all well.")]


def test_a_decision_shows_in_the_chronology_with_its_reason(api):
    deployed(api)
    case = start(api, "CN-5", AMELIA)
    task = case["tasks"][0]
    assert api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": True}}).status_code == 200
    decisions = api.get(f"/families/{case['family_id']}/chronology?kind=decision").json
    assert len(decisions) == 1
    assert "rule" in decisions[0]["text"] and "because" in decisions[0]["text"]


def test_people_are_for_case_workers_not_analysts(api):
    deployed(api)
    case = start(api, "CN-1", AMELIA)
    assert api.get("/people", as_="analyst").status_code == 403
    assert api.get(f"/families/{case['family_id']}", as_="analyst").status_code == 403
    assert api.get(f"/families/{case['family_id']}", as_="front").status_code == 200
    assert api.get("/families/999").status_code == 404
    created = api.post("/families", json={"name": "The Morgans", "children": [BEN]})
    assert created.status_code == 201 and created.json["people"][0]["given_name"] == "Ben"
    assert api.post("/families", json={"children": [{"given_name": "X"}]}).status_code == 422


def test_search_keeps_working_through_a_key_rotation(api, app):
    from cryptography.fernet import Fernet

    from service import create_app, encryption
    from conftest import Api

    deployed(api)
    start(api, "CN-1", AMELIA)
    old = app.config.get("DATA_ENCRYPTION_KEYS") or encryption.configured_keys(app)[0]
    new = Fernet.generate_key().decode()

    def with_keys(keys):
        return create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"], "TIMERS_ENABLED": False,
                           "TESTING": True, "SECRET_KEY": "test", "DATA_ENCRYPTION_KEYS": keys})

    both = with_keys(f"{new},{old}")
    # before rotating: the index is under the old key, and a service with both keys still finds the child
    assert refs(Api(both, api.tokens).get("/cases", query_string={"q": "amel"}).json) == ["CN-1"]
    result = both.test_cli_runner().invoke(args=["data", "rotate-key"])
    assert result.exit_code == 0 and "search index: 1 people indexed again" in result.output
    only_new = Api(with_keys(new), api.tokens)
    assert refs(only_new.get("/cases", query_string={"q": "amel"}).json) == ["CN-1"]
    assert refs(only_new.get("/cases", query_string={"q": "2015-03-09"}).json) == ["CN-1"]


def test_people_are_indexed_again_a_committed_batch_at_a_time(api, app, monkeypatch):
    """After a rotation every child of every council is indexed again: a batch at a time, each committed, none
    passed over."""
    from sqlalchemy import event

    from service import families
    from service.models import SearchToken

    deployed(api)
    start(api, "CN-1", AMELIA)
    start(api, "CN-2", BEN)
    monkeypatch.setattr(families, "REINDEX_BATCH", 1)
    with app.app_context(), everything():
        db.session.execute(text("DELETE FROM search_tokens"))
        db.session.commit()
        commits = []
        event.listen(db.session(), "after_commit", lambda session: commits.append(1))
        assert families.reindex(db.session) == 2
        assert len(commits) >= 2
        assert len({token.person_id for token in db.session.scalars(select(SearchToken))}) == 2
    assert refs(api.get("/cases", query_string={"q": "amel"}).json) == ["CN-1"]


def test_erasing_a_childs_last_case_erases_the_child(api, app, frozen_clock):
    from conftest import in_council
    from service import retention
    from service.models import Case, Family, Person, SearchToken

    deployed(api)
    first = start(api, "CN-1", AMELIA)
    second = start(api, "CN-2", BEN, family_id=first["family_id"])
    with app.app_context():
        council = in_council(db.session)
        for case_id in (first["id"], second["id"]):
            case = db.session.get(Case, case_id)
            retention.erase(db.session, case, retention.Rule(1, "council"), council)
            db.session.flush()
            if case_id == first["id"]:  # Ben's case still names the family
                assert db.session.get(Person, first["child"]["id"]) is None
                assert db.session.get(Family, first["family_id"]) is not None
        db.session.commit()
    with app.app_context(), everything():
        assert db.session.query(Person).count() == 0 and db.session.query(Family).count() == 0
        assert db.session.query(SearchToken).count() == 0
    assert found(api, q="price")["total"] == 0


def test_a_message_reaches_the_familys_open_case_of_any_pathway_and_number(api):
    """A contact on a child reaches whatever case the family has open, though its case number differs."""
    assert api.deploy(FIXTURES / "family_message").status_code == 201
    plan = start(api, "PLAN-1", AMELIA, process="test_plan", data={})
    contact = start(api, "CONTACT-7", process="test_contact", data={}, family_id=plan["family_id"])
    elsewhere = start(api, "PLAN-2", BEN, process="test_plan", data={})  # another family: told nothing
    done = api.post(f"/tasks/{contact['tasks'][0]['id']}/complete", json={"data": {}})
    assert done.status_code == 200, done.json
    told = api.get(f"/cases/{plan['id']}").json
    assert sorted(t["name"] for t in told["tasks"]) == ["Task_ReadContact", "Task_ReviewPlan"]
    assert [t["name"] for t in api.get(f"/cases/{elsewhere['id']}").json["tasks"]] == ["Task_ReviewPlan"]


def _five_families(api) -> list[int]:
    """Five families of one child each, oldest first: their ids."""
    ids = []
    for n in range(5):
        created = api.post("/families", json={"children": [{"given_name": f"Child{n}", "family_name": "Price",
                                                             "date_of_birth": f"201{n}-01-01"}]})
        assert created.status_code == 201, created.json
        ids.append(created.json["id"])
    return ids


def test_everyone_is_listed_a_page_at_a_time_and_counted_up_to_the_cap(api, monkeypatch):
    """Without a search the council's children and families are read a page at a time, newest first: a council
    has as many children as cases, and the list of everyone read (and decrypted) each of them to show fifty. The
    count stops at the lists' cap, one over it meaning "more than that"."""
    from sqlalchemy import event

    from service import paging
    from service.models import Family, Person

    families = _five_families(api)
    loaded = []
    listen = lambda target, context: loaded.append(target)  # noqa: E731
    event.listen(Person, "load", listen)
    event.listen(Family, "load", listen)
    try:
        people = api.get("/people", query_string={"page": 2, "per_page": 2}).json
        assert [p["given_name"] for p in people["people"]] == ["Child2", "Child1"] and people["total"] == 5
        assert len([row for row in loaded if isinstance(row, Person)]) == 2, loaded  # the page's, no more
        loaded.clear()
        listed = api.get("/families", query_string={"page": 3, "per_page": 2}).json
        assert [f["id"] for f in listed["families"]] == families[:1] and listed["total"] == 5
        assert len([row for row in loaded if isinstance(row, Family)]) == 1, loaded
    finally:
        event.remove(Person, "load", listen)
        event.remove(Family, "load", listen)
    sent = []
    count = lambda conn, cursor, statement, *args: sent.append(statement)  # noqa: E731
    with api.app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        statements = []
        for per_page in (1, 5):  # each family's children: read with the page's in one statement, not one by one
            sent.clear()
            assert len(api.get("/families", query_string={"per_page": per_page}).json["families"]) == per_page
            statements.append(len(sent))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements[0] == statements[1], statements
    monkeypatch.setattr(paging, "COUNT_CAP", 3)
    assert api.get("/people").json["total"] == 4  # more than 3
    assert api.get("/families").json["total"] == 4
    assert api.get("/people", query_string={"q": "price"}).json["total"] == 5  # a search's matches: all counted
