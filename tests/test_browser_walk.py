"""One pathway per reference council walked from "Start a referral" to its outcome using only the pages, in a real
browser (chromium through Playwright): issue 13's first "Done when".

For each council the starter signs in and starts a referral naming the child; then, for every step, the user holding
the step's role signs in, finds the case by searching the child's name, opens the task from the case page (claiming
it when nobody has), reads the child's name and an earlier answer (the form's label and the option's label) on the
task page, fills the form through its labels and completes it. The last case page shows the outcome. axe-core checks
every page type met on the way (each task form too) and finds nothing.

Each walk is the shortest route to an outcome that its pathway tests (tests/test_pathway_*.py) drive through the
REST API, on the routine route: no significant harm, consent given.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from browser_support import axe, checked_page, shots

from service.demo import demo_password

pytestmark = pytest.mark.browser


# -- filling a form through its labels -----------------------------------------------------------

def choose(legend: str, option: str):
    """The radio ``option`` of the question ``legend``."""
    return lambda page: page.get_by_role("group", name=legend).get_by_label(option, exact=True).check()


def fill(label: str, text: str):
    return lambda page: page.get_by_label(label, exact=True).fill(text)


def tick(label: str):
    return lambda page: page.get_by_label(label, exact=True).check()


def pick(label: str, option: str):
    return lambda page: page.get_by_label(label, exact=True).select_option(label=option)


def date(legend: str, day: str, month: str, year: str):
    def fill_date(page):
        group = page.get_by_role("group", name=legend)
        group.get_by_label("Day").fill(day)
        group.get_by_label("Month").fill(month)
        group.get_by_label("Year").fill(year)
    return fill_date


@dataclass
class Step:
    user: str  # the demo user's suffix: "<council>.<user>"
    task: str  # the task's title, as the case page links it
    earlier: tuple[str, str]  # an earlier answer the task page shows: the form's label and the option's label
    answers: list[Callable] = field(default_factory=list)


@dataclass
class Walk:
    council: str
    pathway: str  # the pathway's name, as "Start a referral" lists it
    starter: str
    child: tuple[str, str]
    start: list[Callable]
    steps: list[Step]
    outcome: str  # as the case page says it: the name of the end event that records it

    def user(self, suffix: str) -> str:
        return f"{self.council}.{suffix}"


WALKS = [
    # tests/test_pathway_carmarthenshire_step_down.py: test_under_8_weeks_no_support_closes
    Walk("carmarthenshire", "Step down from statutory services to TAF (Carmarthenshire)", "social.worker",
         ("Ceri", "Bowen"),
         [fill("Weeks the case has been open to Social Services", "6"),
          choose("Do the family still have a need and accept support from TAF?", "Yes"),
          choose("Can the family manage their own safety plan?", "No safety plan is needed"),
          fill("Social worker (optional)", "Sam")],
         [Step("social.worker", "Agree next steps with the family",
               ("Can the family manage their own safety plan?", "No safety plan is needed"),
               [choose("What did the family decide?", "No further support needed: close the case"),
                fill("Notes of the discussion with the family (optional)", "Managing well: no more support")])],
         "Case closed, no further action"),
    # tests/test_pathway_somerset_professional_differences.py: test_resolved_at_step_2
    Walk("somerset", "Resolving Professional Differences (Somerset)", "lead.practitioner", ("Sian", "Thorne"),
         [fill("What the difference is about", "Threshold for family intensive support"),
          fill("The other agency", "Early Help Hub"),
          choose("Is the disagreement about child protection?", "No")],
         [Step("lead.practitioner", "Step 1: discuss with the other practitioner",
               ("The other agency", "Early Help Hub"),
               [choose("Result", "Not resolved"), fill("What was agreed, and why", "No agreement on the level")]),
          Step("team.manager", "Step 2: managers discuss the difference", ("Result", "Not resolved"),
               [choose("Result", "Resolved"), fill("What was agreed, and why", "Managers agreed: FIS to allocate")])],
         "Resolved informally"),
    # tests/test_pathway_halton_unplanned_step_up.py: a contact without an open CAF case in the service
    Walk("halton", "Unplanned step up: contact or referral for a child with a CAF (Halton)", "icart",
         ("Harri", "Wynne"),
         [fill("Child's name", "Harri Wynne"), pick("Who made the contact", "Police"),
          fill("The incident or event", "Police called to a domestic incident"),
          fill("Lead professional of the open CAF (optional)", "A. Teacher"),
          choose("Consent of the family to the contact being shared", "The family consent")],
         [Step("icart", "Screen the contact (iCART)", ("Who made the contact", "Police"),
               [choose("Is the child suffering, or likely to suffer, significant harm?", "No"),
                fill("Number of identified (outstanding) needs", "1"),
                choose("The most serious need", "Low: can be met by universal or Universal Plus services"),
                choose("Progress of the early-help (CAF) plan", "Progressing, or no CAF plan yet"),
                fill("Screening notes", "Low needs; CAF continues")]),
          Step("team.manager", "Authorise iCART's screening decision",
               ("The most serious need", "Low: can be met by universal or Universal Plus services"),
               [choose("Do you authorise iCART's decision?", "Yes: act on the level screened")]),
          Step("icart", "Record the contact for the lead professional",
               ("Do you authorise iCART's decision?", "Yes: act on the level screened"),
               [tick("The contact is recorded"),
                tick("The referrer (and the lead professional of the family's CAF) has been told the outcome")]),
          Step("lead.professional", "Contact on your family's CAF: read it and decide",
               ("The incident or event", "Police called to a domestic incident"),
               [choose("What will you do?", "Noted: the CAF continues")])],
         "Recorded for the lead professional"),
    # tests/test_pathway_afc_nfa_fast_track.py: test_engaged_with_every_timescale
    Walk("afc", "NFA fast track from SPA to PEH (Achieving for Children)", "csc.social.worker", ("Alfie", "Marsh"),
         [fill("Child or family name", "Alfie Marsh"), fill("Social worker (you)", "Cal"),
          choose("Recommended level of service", "Tier 2"),
          fill("The specified intervention recommended for the family", "Parenting programme")],
         [Step("spa", "Refer on to PEH", ("Recommended level of service", "Tier 2"),
               [fill("Notes for PEH (optional)", "Referred for the parenting programme")]),
          Step("peh.manager", "Allocate to the most appropriate PEH team", ("Notes for PEH",
                                                                             "Referred for the parenting programme"),
               [pick("Team", "Family Support Services (FSS)"),
                pick("Worker allocated", "Pip (PEH practitioner) (afc.peh.practitioner)")]),
          Step("peh.practitioner", "Contact the family for consent and engagement",
               ("Team", "Family Support Services (FSS)"),
               [choose("Did you reach the family?", "Yes: I spoke to the family"),
                choose("Do the family consent to the PEH service and to sharing their information with PEH?",
                       "Given: the family consent"),
                fill("Notes: how you tried to reach the family, or what was agreed", "Keen to start")]),
          Step("peh.practitioner", "Tell the referring social worker the outcome",
               ("Did you reach the family?", "Yes: I spoke to the family"),
               [date("Date the social worker was told", "5", "1", "2027"),
                fill("What the social worker was told", "Family engaged with FSS")])],
         "Family engaged with PEH"),
    # tests/test_pathway_rochdale_step_up.py: test_below_threshold_with_a_caf_the_tac_continues
    Walk("rochdale", "Step up to Children's Social Care (Rochdale)", "lead.professional", ("Rhian", "Holt"),
         [fill("Child's name", "Rhian Holt"), fill("Your name", "Lou"), fill("Your agency", "Oak School"),
          tick("I am the TAC lead professional for this child"),
          choose("Is there a CAF / TAC for this child?", "Yes"),
          fill("What has changed or escalated", "Needs have escalated"),
          choose("Is there reasonable cause to suspect that the child is suffering, or is likely to suffer, "
                 "significant harm?", "No"),
          tick("I have discussed this request with my line manager"),
          choose("The family's consent to the step-up request", "Given by the family"),
          tick("Multi-Agency Referral form"), tick("The Common Assessment (CAF)"), tick("The TAC delivery plan"),
          tick("Record of the last TAC meeting")],
         [Step("frt", "Screen the service request", ("Is there a CAF / TAC for this child?", "Yes"),
               [choose("Risk of significant harm: is there reasonable cause to suspect the child is suffering, or "
                       "likely to suffer, significant harm?", "No"),
                fill("Level of need (1 universal, 2 additional, 3 complex, 4 acute)", "3")]),
          Step("frt", "Make the decision known", ("Level of need (1 universal, 2 additional, 3 complex, 4 acute)",
                                                  "3"),
               [tick("The referrer / lead professional has been told the decision"),
                fill("Reasons for the decision", "Level 3: the TAC continues")]),
          Step("lead.professional", "Consider the First Response Team's decision",
               ("Reasons for the decision", "Level 3: the TAC continues"),
               [choose("Your response", "I accept the decision")])],
         "TAC continues"),
]


# -- the walk ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with shots.running_site(tmp_path_factory.mktemp("web-walk"), every_council=True) as site:
        yield site


@pytest.fixture(scope="module")
def browser():
    with shots.chromium() as browser:
        yield browser


class Walker:
    """A page driven as a person would, checking each page type with axe-core the first time it is met."""

    def __init__(self, page, site):
        self.page, self.site = page, site
        self.seen: set[str] = set()
        self.found: dict[str, list[str]] = {}

    def check(self, kind: str) -> None:
        if kind not in self.seen:
            self.seen.add(kind)
            violations = axe(self.page)
            if violations:
                self.found[kind] = violations

    def sign_in(self, name: str) -> None:
        page = self.page
        if page.get_by_role("button", name="Sign out").count():
            page.get_by_role("button", name="Sign out").click()
            page.wait_for_url(re.compile(r".*/sign-in"))
        else:
            page.goto(f"{self.site.url}/")
        page.get_by_label("User name").fill(name)
        page.get_by_label("Password", exact=True).fill(demo_password(name))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{self.site.url}/")
        self.check("inbox")

    def find_case(self, child: str, reference: str) -> None:
        """Search part of the child's last name (in capitals: any case) and open the case from the results."""
        page = self.page
        page.get_by_role("link", name="Find a case").first.click()
        page.get_by_label("Child's name, date of birth, NHS number or case number").fill(child.split()[-1][:4].upper())
        page.get_by_role("button", name="Search").click()
        page.wait_for_url(re.compile(r".*/cases\?q="))
        row = page.locator("table.sp-case-table tbody tr", has_text=reference)
        assert row.count() == 1, page.locator("main").inner_text()
        assert child in row.inner_text()
        self.check("search results")
        row.get_by_role("link", name=reference).click()
        page.wait_for_url(re.compile(r".*/cases/\d+$"))

    def read_answers(self) -> dict[str, str]:
        """Open every group of earlier answers; return what they show, label by label."""
        page = self.page
        groups = page.locator(".sp-answers details")
        for i in range(groups.count()):
            groups.nth(i).locator("summary").click()
        shown = {}
        rows = page.locator(".sp-answers .govuk-summary-list__row")
        for i in range(rows.count()):
            row = rows.nth(i)
            if row.is_visible():
                shown[row.locator("dt").inner_text().strip()] = row.locator("dd").inner_text().strip()
        return shown


def start_referral(w: Walker, walk: Walk, reference: str) -> None:
    page = w.page
    w.sign_in(walk.user(walk.starter))
    page.get_by_role("link", name="Start a referral").first.click()
    w.check("start: pathways")
    links = page.locator(".sp-pathway-list a")
    links.get_by_text(walk.pathway, exact=True).click()
    page.get_by_role("heading", name="Who is the referral about?").wait_for()
    w.check("start: the child")
    page.get_by_label("First name").fill(walk.child[0])
    page.get_by_label("Last name").fill(walk.child[1])
    page.get_by_label("Day").fill("9")
    page.get_by_label("Month").fill("3")
    page.get_by_label("Year").fill("2016")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name="About the referral").wait_for()
    w.check(f"start form {walk.council}")
    page.get_by_label("Case number").fill(reference)
    for answer in walk.start:
        answer(page)
    page.get_by_role("button", name="Continue").click()
    heading = page.get_by_role("heading", name="Check your answers before starting the referral")
    if not heading.count():
        heading.wait_for(timeout=3000)
    assert " ".join(walk.child) in page.locator("main").inner_text()
    w.check("start: check your answers")
    page.get_by_role("button", name="Start the referral").click()
    page.get_by_role("heading", name="Referral started").wait_for()
    done = page.locator("main").inner_text()
    assert reference in done and "Who has the case now" in done, done
    assert walk.steps[0].task in done, done
    w.check("start: confirmation")


def do_step(w: Walker, walk: Walk, step: Step, reference: str) -> None:
    page = w.page
    child = " ".join(walk.child)
    w.sign_in(walk.user(step.user))
    w.find_case(child, reference)
    w.check("case")
    page.get_by_role("link", name=step.task, exact=True).click()
    page.get_by_role("heading", level=1, name=step.task).wait_for()
    if page.get_by_role("button", name="Claim this task").count():
        page.get_by_role("button", name="Claim this task").click()
        page.get_by_text("It is assigned to you.").wait_for()
    caption = page.locator(".govuk-caption-l").inner_text()
    assert reference in caption and child in caption, caption
    about = page.locator(".sp-about").inner_text()
    assert child in about, about
    shown = w.read_answers()
    label, value = step.earlier
    assert shown.get(label) == value, (label, shown)
    w.check(f"task {walk.council}: {step.task}")
    for answer in step.answers:
        answer(page)
    if page.get_by_role("button", name="Continue").count():  # a decision: check your answers first
        page.get_by_role("button", name="Continue").click()
        page.get_by_role("heading", level=1, name=re.compile("^Check your answers")).wait_for()
        w.check("check your answers")
        page.get_by_role("button", name="Confirm and complete").click()
    else:
        page.get_by_role("button", name="Complete task").click()
    page.wait_for_url(re.compile(r".*/cases/\d+$"))
    assert page.locator(".govuk-error-summary").count() == 0, page.locator("main").inner_text()
    assert f"You completed '{step.task}'" in page.locator("main").inner_text()


@pytest.mark.parametrize("walk", WALKS, ids=[w.council for w in WALKS])
def test_a_referral_walked_to_its_outcome_through_the_pages(site, browser, walk):
    began = time.monotonic()
    page = checked_page(browser)
    # a page (the case page, axe's check) can take over 10 s when the suite's last files share the 2 cores
    page.set_default_timeout(30_000)
    w = Walker(page, site)
    reference = f"{walk.council[:3].upper()}-WALK-1"
    try:
        start_referral(w, walk, reference)
        for step in walk.steps:
            do_step(w, walk, step, reference)
        summary = page.locator("main .govuk-summary-list").first.inner_text()
        assert re.search(rf"Outcome\s+{re.escape(walk.outcome)}", summary), summary
        assert "Completed" in page.locator("main").inner_text()
        w.check("case: completed")
    finally:
        page.context.close()
    assert w.found == {}, "axe-core found problems"
    assert page.problems == []
    print(f"{walk.council}: {len(walk.steps)} steps in {time.monotonic() - began:.1f} s")


def test_the_transitions_tracker_pages_pass_axe(site, browser):
    """AfC's tracker, on screen and printable, with a step up in transition: axe-core finds nothing on either."""
    from service import cases, tenancy
    from service.models import Council, db

    with site.app.app_context():
        tenancy.act_for(db.session, db.session.query(Council).filter_by(key="afc").one())
        cases.start_case(db.session, "afc_step_up", "AFC-TRACK-1", {
            "child_name": "Alex", "sending_manager": "Pat PEH", "receiving_manager": "Chris CSC",
            "transitions_meeting_date": "2027-01-07", "rationale": "Needs escalating", "caf_in_place": True,
            "safeguarding_incident": "no", "significant_harm": "no"}, cases.SERVICE)
        db.session.commit()
    page = checked_page(browser)
    try:
        w = Walker(page, site)
        w.sign_in("afc.peh.manager")
        page.goto(f"{site.url}/tracker")
        assert "AFC-TRACK-1" in page.locator("main").inner_text()
        w.check("tracker")
        page.goto(f"{site.url}/tracker/print")
        assert "AFC-TRACK-1" in page.locator("body").inner_text()
        w.check("tracker: printable")
    finally:
        page.context.close()
    assert w.found == {}, "axe-core found problems"
    assert page.problems == []
