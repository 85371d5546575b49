"""Screenshots of the web pages for the README: the inbox, a task form with an error, a case page.

    .venv/bin/python docs/make_screenshots.py          # writes docs/screenshots/*.png

Starts the real app (werkzeug, in a thread, on 127.0.0.1 and a free port) on a throwaway SQLite file,
deploys the Carmarthenshire step-down pathway, creates the demo users and a few cases at a fixed time,
then drives Debian's chromium through Playwright as the demo social worker. tests/test_browser.py runs
the same walk-through (with its checks) into a temporary folder.

Needs: `make vendor` (service/static/vendor), `apt-get install chromium`, `pip install playwright`
(never `playwright install`: it downloads a browser from outside).
"""
from __future__ import annotations

import logging
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from service import cases, councils, create_app, deployments, tenancy  # noqa: E402
from service.auth import save_user  # noqa: E402
from service.demo import (DEMO_USERS, REFERENCE_COUNCILS, create_demo_users, create_reference_councils,  # noqa: E402
                          demo_password, demo_token)
from service.deployments import deploy, read_folders  # noqa: E402
from service.engine import clock  # noqa: E402
from service.engine.clock import LONDON, FixedClock  # noqa: E402
from service.models import OpenTask, db  # noqa: E402

KEY = "carmarthenshire_step_down"
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
COUNCIL = "carmarthenshire"
WORKER = f"{COUNCIL}.social.worker"
START = datetime(2027, 1, 4, 9, 0, tzinfo=LONDON)  # Monday 4 January 2027, 09:00
LATER = datetime(2027, 1, 12, 10, 0, tzinfo=LONDON)  # the first two cases' tasks are a day overdue


def pathway_files(key: str = KEY) -> dict[str, bytes]:
    """One pathway's diagram, decisions and forms (the folders may hold other, half-written pathways)."""
    diagram = ROOT / "bpmn" / f"{key}.bpmn"
    forms = sorted(set(re.findall(r'camunda:formRef="([^"]+)"', diagram.read_text())))
    paths = [diagram, *(ROOT / "dmn").glob(f"{key}*.dmn"), *(ROOT / "forms" / f"{form}.form" for form in forms)]
    return read_folders(ROOT, paths)


@dataclass
class Site:
    app: Flask
    url: str
    time: FixedClock

    def task_id(self, reference: str, name: str) -> str:
        with self.app.app_context(), tenancy.all_councils(db.session):
            return next(t.id for t in db.session.query(OpenTask).filter_by(name=name, closed_at=None)
                        if t.case.reference == reference)

    def case_id(self, reference: str) -> int:
        with self.app.app_context(), tenancy.all_councils(db.session):
            return next(t.case_id for t in db.session.query(OpenTask).all() if t.case.reference == reference)


def seed(app: Flask, time: FixedClock, every_council: bool = False) -> None:
    """The demo users, the step-down pathway and three cases; two of them with overdue tasks.

    With ``every_council``, also the other reference councils with all their pathways and demo users
    (as ``make run`` has them), for walks that cross councils."""
    admin = cases.SERVICE
    with app.app_context():
        reference = next(c for c in REFERENCE_COUNCILS if c.key == COUNCIL)
        council, _ = councils.create_council(db.session, COUNCIL, reference.name,
                                             settings={"country": reference.country})
        tenancy.act_for(db.session, council)
        for suffix, (display_name, roles) in DEMO_USERS[COUNCIL].items():
            name = f"{COUNCIL}.{suffix}"
            save_user(db.session, name, roles, council=council, token=demo_token(name), password=demo_password(name),
                      display_name=display_name)
        deploy(db.session, pathway_files(), "demo")
        time.move_to(START)
        cases.start_case(db.session, KEY, "CF-2041", {"weeks_open": 10, "family_accepts_support": "yes", "safety_plan": "yes", "family_name": "Jones",
                                                       "care_first_reference": "CF-2041"}, admin)
        # an hour later, so that CF-2041's task is due first: tasks due together are listed in an order of
        # their random ids, and the walk needs one order
        time.move_to(START + timedelta(hours=1))
        cases.start_case(db.session, KEY, "CF-2042", {"weeks_open": 3, "family_accepts_support": "yes", "safety_plan": "yes", "family_name": "Evans"}, admin)
        time.move_to(LATER)
        cases.start_case(db.session, KEY, "CF-2057", {"weeks_open": 12, "family_accepts_support": "yes", "safety_plan": "yes", "family_name": "Price"}, admin)
        db.session.commit()
        if every_council:
            tenancy.leave(db.session)
            create_reference_councils(db.session, ROOT)
            create_demo_users(db.session)
            db.session.commit()


@contextmanager
def running_site(folder: Path, every_council: bool = False):
    """The real app served on 127.0.0.1 (a free port) against a SQLite file in ``folder``, seeded (every
    reference council and its pathways too with ``every_council``)."""
    fixed = FixedClock(START)
    previous = clock.set_clock(fixed)
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'web.db'}", "TIMERS_ENABLED": False,
                      "SECRET_KEY": "screenshots-only", "WTF_CSRF_ENABLED": True})
    with app.app_context():
        upgrade()
    seed(app, fixed, every_council)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="web-server", daemon=True)
    thread.start()
    try:
        yield Site(app, f"http://127.0.0.1:{server.server_port}", fixed)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        clock.set_clock(previous)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@contextmanager
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page, site: Site, name: str = WORKER) -> None:
    page.goto(f"{site.url}/")
    assert "/sign-in" in page.url
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(demo_password(name))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site.url}/")


def walk(page, site: Site, shots: Path) -> dict[str, str]:
    """Inbox, a task with a validation error, the task done, the case moved on; screenshots on the way.

    Returns the screenshots' paths by name. Asserts as it goes (tests/test_browser.py relies on that).
    """
    shots.mkdir(parents=True, exist_ok=True)
    taken = {}
    sign_in(page, site)

    # the inbox: most urgent first, overdue in words
    rows = page.locator("table.sp-task-table tbody tr")
    assert rows.count() == 3
    assert "CF-2041" in rows.nth(0).inner_text() and "Overdue" in rows.nth(0).inner_text()
    assert "CF-2057" in rows.nth(2).inner_text() and "Overdue" not in rows.nth(2).inner_text()
    taken["inbox"] = _shot(page, shots / "inbox.png")

    # a task: submit without the required field
    rows.nth(0).get_by_role("link", name="Complete JAFF part 1 with the family").click()
    page.get_by_label("Your view of the case (optional)").fill("Engaged well; mother wants help with routines.")
    page.get_by_role("button", name="Complete task").click()
    summary = page.locator(".govuk-error-summary")
    summary.wait_for()
    assert "Enter clear outcomes for intervention identified with the family" in summary.inner_text()
    assert summary.get_by_role("link").first.get_attribute("href") == "#family_outcomes"
    assert page.get_by_label("Your view of the case (optional)").input_value().startswith("Engaged well")
    assert page.locator("#family_outcomes-error").is_visible()
    taken["task_error"] = _shot(page, shots / "task-with-error.png")

    # the error summary's link takes the worker to the field; then complete the form
    summary.get_by_role("link").first.click()
    assert page.evaluate("document.activeElement.id") == "family_outcomes"
    page.locator("#family_outcomes").fill("Regular school attendance; calmer bedtimes.")
    page.get_by_label("Given", exact=True).check()
    page.get_by_label("JAFF part 1 has been shared with the family before sending").check()
    page.get_by_label("Signed by the family").check()
    page.get_by_role("button", name="Complete task").click()
    page.wait_for_url(re.compile(r".*/cases/\d+$"))

    # the case has moved on: the next step is the TAF coordinator's, highlighted in the diagram
    body = page.locator("main").inner_text()
    assert "You completed 'Complete JAFF part 1 with the family'" in body
    assert "Check JAFF part 1 in the TAF box" in body
    page.locator("#diagram.sp-diagram--ready").wait_for(timeout=15000)
    marked = page.locator('#diagram g.djs-element.sp-current[data-element-id="Task_CheckJaffPart1"]')
    assert marked.count() == 1
    assert page.locator("#diagram g.djs-element.sp-current").count() == 1
    assert page.locator('#diagram g.djs-element[data-element-id="Task_CompleteJaffPart1"].sp-current').count() == 0
    _watermark_visible(page)
    taken["case"] = _shot(page, shots / "case.png")
    return taken


def _watermark_visible(page) -> None:
    """The bpmn.io licence: the watermark stays fully visible, nothing over the canvas's bottom-right corner."""
    logo = page.locator("#diagram .bjs-powered-by")
    assert logo.is_visible()
    logo.scroll_into_view_if_needed()
    box = logo.bounding_box()  # in the viewport's coordinates, as elementFromPoint wants
    for x, y in ((box["x"] + 2, box["y"] + 2), (box["x"] + box["width"] - 2, box["y"] + box["height"] - 2),
                 (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)):
        on_top = page.evaluate("([x, y]) => { const e = document.elementFromPoint(x, y);"
                               " return !!(e && e.closest('.bjs-powered-by')); }", [x, y])
        assert on_top, f"something covers the bpmn.io watermark at {x},{y}"


def _shot(page, path: Path) -> str:
    page.screenshot(path=str(path), full_page=True)
    return str(path)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="step-pathways-shots-") as folder, running_site(Path(folder)) as site, \
            chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for name, path in walk(page, site, SCREENSHOTS).items():
            print(f"{name:12} {Path(path).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
