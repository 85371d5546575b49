"""The pages for starting a referral, finding a case, "My cases", "Team cases" and a family, through Flask's
test client (the browser walk-through with axe-core is in test_browser_cases.py)."""
from __future__ import annotations

import re

import pytest

from conftest import FIXTURES, Api, Browser, in_council, page_text, password_hash, save_user
from service.models import db

PEOPLE = {"worker": ["social_worker"], "manager": ["team_manager"], "analyst": ["analyst"], "admin": ["admin"]}


@pytest.fixture
def site(sqlite_app, frozen_clock):
    with sqlite_app.app_context():
        in_council(db.session)
        for name, roles in PEOPLE.items():
            user, _ = save_user(db.session, name, roles, token=f"token-{name}", display_name=name.capitalize())
            user.password_hash = password_hash(f"pw-{name}")
        db.session.commit()
    api = Api(sqlite_app, {name: f"token-{name}" for name in PEOPLE})
    assert api.deploy(FIXTURES / "pathways").status_code == 201
    assert api.deploy(FIXTURES / "handover").status_code == 201
    api.clock = frozen_clock
    return api


def signed_in(site, name="worker"):
    browser = Browser(site.app)
    browser.sign_in(name)
    return browser


CHILD = {"given_name": "Amelia", "family_name": "Price", "date_of_birth-day": "9", "date_of_birth-month": "3",
         "date_of_birth-year": "2015", "nhs_number": "", "council_number": ""}


def hidden(response) -> dict[str, list[str]]:
    """The hidden fields of the page's last form (what the next step posts back)."""
    html = response.get_data(as_text=True)
    form = html[html.rindex("<form"):]
    found: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form):
        found.setdefault(name, []).append(value)
    return found


def post_step(browser, key, fields: dict):
    return browser.post(f"/start/{key}", fields)


def test_start_a_referral_from_the_pages(site):
    browser = signed_in(site)
    listing = page_text(browser.get("/start"))
    assert "First support" in listing and "Early help for a family." in listing
    assert "It hands over" not in listing  # the first sentence only
    assert "Second support" not in listing  # a team manager's pathway, not the worker's
    assert "Test review" in listing
    child_page = browser.get("/start/test_first")
    assert "Who is the referral about?" in page_text(child_page)

    missing = post_step(browser, "test_first", {"step": "child", "given_name": "", "family_name": "Price"})
    assert missing.status_code == 422 and "Enter the child's first name" in page_text(missing)
    assert 'href="#given_name"' in missing.get_data(as_text=True)

    form = post_step(browser, "test_first", {"step": "child", **CHILD})
    assert form.status_code == 200 and "About the referral" in page_text(form)
    carried = hidden(form)
    assert carried["given_name"] == ["Amelia"]
    no_answer = post_step(browser, "test_first", {**{k: v[0] for k, v in carried.items()}, "reference": ""})
    assert no_answer.status_code == 422
    assert "Enter the council's case number" in page_text(no_answer) and "What is the concern" in page_text(no_answer)

    check = post_step(browser, "test_first", {**{k: v[0] for k, v in carried.items()}, "reference": "CN-501",
                                              "concern": "Not in school since October"})
    text = page_text(check)
    assert "Check your answers before starting the referral" in text
    assert "Amelia Price" in text and "9 March 2015" in text and "A new family" in text
    assert "What is the concern" in text and "Not in school since October" in text and "CN-501" in text
    done = post_step(browser, "test_first", {**{k: v[0] for k, v in hidden(check).items()}, "action": "start"})
    assert done.status_code == 302
    confirmation = page_text(browser.get(done.headers["Location"]))
    assert "Referral started" in confirmation and "CN-501" in confirmation
    assert "It is with Social worker" in confirmation and 'The next step is "Agree the plan"' in confirmation
    case = site.get("/cases?q=amelia").json["cases"][0]
    assert (case["reference"], case["child"]["given_name"]) == ("CN-501", "Amelia")


def test_a_likely_duplicate_is_shown_and_can_be_picked(site):
    first = site.post("/cases", json={"process": "test_first", "reference": "CN-1", "data": {"concern": "x"},
                                      "child": {"given_name": "Amelia", "family_name": "Price",
                                                "date_of_birth": "2015-03-09"}}).json
    browser = signed_in(site)
    warned = post_step(browser, "test_review", {"step": "child", **CHILD, "given_name": "amelia"})
    text = page_text(warned)
    assert "This child may already be known to the council" in text
    assert "Yes, it is Amelia Price, born 9 March 2015" in text
    carried = {k: v[0] for k, v in hidden(warned).items()}
    form = post_step(browser, "test_review", {**carried, "step": "child", **CHILD,
                                              "match": f"child:{first['child']['id']}"})
    assert "About the referral" in page_text(form)
    check = post_step(browser, "test_review", {**{k: v[0] for k, v in hidden(form).items()}, "reference": "CN-2",
                                               "needs": "2"})
    assert "(already known)" in page_text(check)
    done = post_step(browser, "test_review", {**{k: v[0] for k, v in hidden(check).items()}, "action": "start"})
    assert done.status_code == 302
    family = site.get(f"/families/{first['family_id']}", as_="admin").json
    assert [c["reference"] for c in family["cases"]] == ["CN-1", "CN-2"] and len(family["people"]) == 1
    # a match that was not offered is refused
    wrong = post_step(browser, "test_review", {**carried, "step": "child", **CHILD, "match": "child:9999"})
    assert wrong.status_code == 422


def test_a_worker_cannot_start_another_teams_pathway(site):
    browser = signed_in(site)
    assert browser.get("/start/test_second").status_code == 403
    assert browser.get("/start/nothing").status_code == 404


def test_find_my_and_team_cases(site):
    for n, name in enumerate(["Price", "Pryce", "Evans"]):
        site.post("/cases", json={"process": "test_first", "reference": f"CN-{n}", "data": {"concern": "x"},
                                  "child": {"given_name": "Sam", "family_name": name, "date_of_birth": "2016-05-0%d" % (n + 1)}})
    browser = signed_in(site)
    empty = page_text(browser.get("/cases"))
    assert "Find a case" in empty and "CN-0" not in empty
    found = page_text(browser.get("/cases?q=PRI"))
    assert "1 case" in found and "CN-0" in found and "Sam Price" in found and "1 May 2016" in found
    assert "CN-2" in page_text(browser.get("/cases?q=3/5/2016")) and "1 case" in page_text(browser.get("/cases?q=3/5/2016"))
    assert "3 cases" in page_text(browser.get("/cases/mine"))
    assert "0 cases" in page_text(signed_in(site, "manager").get("/cases/mine"))
    team = page_text(browser.get("/cases/team?process=test_first&status=active"))
    assert "3 cases" in team
    assert "0 cases" in page_text(browser.get("/cases/team?overdue=true"))
    site.clock.advance(days=3)
    assert "3 cases" in page_text(signed_in(site).get("/cases/team?overdue=true"))


def test_a_search_matching_too_many_children_asks_for_more_of_the_name(site, monkeypatch):
    from service import families

    monkeypatch.setattr(families, "SEARCH_LIMIT", 2)
    for n, given in enumerate(["Sam", "Ali", "Jo"]):
        site.post("/cases", json={"process": "test_first", "reference": f"CN-{n}", "data": {"concern": "x"},
                                  "child": {"given_name": given, "family_name": "Price"}})
    browser = signed_in(site)
    refused = browser.get("/cases?q=price")
    said = page_text(refused)
    assert refused.status_code == 422 and said.startswith("Error: Find a case")
    assert "There is a problem" in said and "More than 2 children match \u201cprice\u201d" in said
    assert 'href="#q"' in refused.get_data(as_text=True) and "CN-0" not in said
    narrower = page_text(browser.get("/cases?q=sam+price"))
    assert "1 case" in narrower and "CN-0" in narrower


def test_lists_are_paged(site, monkeypatch):
    from service.web import cases_pages

    monkeypatch.setattr(cases_pages, "PER_PAGE", 2)
    for n in range(5):
        site.post("/cases", json={"process": "test_first", "reference": f"CN-{n}", "data": {"concern": "x"}})
    browser = signed_in(site)
    first = browser.get("/cases/team")
    assert "5 cases: page 1 of 3" in page_text(first)
    html = first.get_data(as_text=True)
    assert 'href="/cases/team?page=2"' in html and 'rel="prev"' not in html
    last = page_text(browser.get("/cases/team?page=3"))
    assert "page 3 of 3" in last and last.count("CN-") == 1
    # past the count's cap the list says "more than" and offers a next page while a page is full
    from service import paging

    monkeypatch.setattr(paging, "COUNT_CAP", 3)
    many = browser.get("/cases/team?page=2")
    assert "More than 3 cases: page 2" in page_text(many) and "page 2 of" not in page_text(many)
    assert 'href="/cases/team?page=3" rel="next"' in many.get_data(as_text=True)
    end = browser.get("/cases/team?page=3")
    assert "More than 3 cases: page 3" in page_text(end) and 'rel="next"' not in end.get_data(as_text=True)


def test_a_family_page_shows_its_cases_across_hand_overs_and_its_chronology(site):
    case = site.post("/cases", json={"process": "test_first", "reference": "CN-9", "data": {"concern": "x"},
                                     "child": {"given_name": "Amelia", "family_name": "Price",
                                               "date_of_birth": "2015-03-09", "nhs_number": "9434765919"}}).json
    site.post(f"/tasks/{case['tasks'][0]['id']}/complete", json={"data": {}})
    browser = signed_in(site, "admin")
    page = browser.get(f"/families/{case['family_id']}")
    text = page_text(page)
    assert "Price family" in text and "Amelia Price" in text and "born 9 March 2015" in text and "9434765919" in text
    assert "First support" in text and "Second support" in text and "handed over from First support" in text
    assert "Handed over: Handed over to test_second" in text
    assert "By Worker" in text and "By worker" not in text  # people by the name they go by, not their user name
    only = page_text(browser.get(f"/families/{case['family_id']}?kind=step"))
    assert "Step completed: Agree the plan" in only and "Handed over to test_second" not in only
    bad = browser.get(f"/families/{case['family_id']}?since=yesterday")
    assert "Enter a real date" in page_text(bad)
    # the worker sees the family, and only the cases of their own pathways
    worker = page_text(signed_in(site).get(f"/families/{case['family_id']}"))
    assert "First support" in worker and "Second support" not in worker
    assert signed_in(site, "analyst").get(f"/families/{case['family_id']}").status_code == 403
    assert browser.get("/families/999").status_code == 404


def test_the_navigation_links_the_new_pages(site):
    text = page_text(signed_in(site).get("/"))
    for link in ("Find a case", "My cases", "Team cases", "Start a referral"):
        assert link in text


def test_a_pathway_without_a_start_form_starts_with_the_child_and_case_number_only(site):
    browser = signed_in(site, "manager")
    form = post_step(browser, "test_second", {"step": "child", **CHILD})
    assert "About the referral" in page_text(form)
    check = post_step(browser, "test_second", {**{k: v[0] for k, v in hidden(form).items()}, "reference": "CN-77"})
    assert "Check your answers" in page_text(check)
    done = post_step(browser, "test_second", {**{k: v[0] for k, v in hidden(check).items()}, "action": "start"})
    assert done.status_code == 302, page_text(done)
    text = page_text(browser.get(done.headers["Location"]))
    assert 'The next step is "Review the plan"' in text


def test_refusals_name_pathways_and_roles_in_words_not_codes(site):
    refused = site.post("/cases", json={"process": "test_second", "reference": "CN-6", "data": {}})
    assert refused.status_code == 403 and "needs the role front door or team manager" in refused.json["message"], refused.json
    case = site.post("/cases", json={"process": "test_first", "reference": "CN-7", "data": {"concern": "x"}}).json
    other = site.get(f"/tasks/{case['tasks'][0]['id']}", as_="analyst")
    assert other.status_code == 403 and "_" not in other.json["message"].split("'")[-1], other.json


def test_outcomes_read_as_the_pathway_names_them():
    from service.case_view import outcome_text
    from service.engine.bundle import build_bundle

    diagram = (FIXTURES / "handover" / "test_first.bpmn").read_text().replace('name="Handed over"',
                                                                             'name="Handed over to the second team"')
    process = build_bundle({"test_first.bpmn": diagram.encode()}).processes["test_first"]
    assert outcome_text(process, "handed_over") == "Handed over to the second team"
    assert outcome_text(process, "tac_continues") == "TAC continues"  # a code no end event names
    assert outcome_text(process, None) is None
