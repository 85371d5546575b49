"""The pages in a real browser: Debian's chromium driven by Playwright, against the real app in a thread.

The walk-through (sign in, inbox, a task with a validation error, the task completed, the case moved on
and its diagram highlighting the new task) is docs/make_screenshots.py's, with its screenshots written to
a temporary folder here. Skipped when chromium, playwright or the built front-end assets are missing.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.browser

if shutil.which("chromium") is None and not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
if not (ROOT / "service/static/vendor/bpmn-js/bpmn-navigated-viewer.production.min.js").exists():
    pytest.skip("the front-end assets are not built (make vendor)", allow_module_level=True)

_spec = importlib.util.spec_from_file_location("make_screenshots", ROOT / "docs" / "make_screenshots.py")
shots = sys.modules.setdefault("make_screenshots", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(shots)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with shots.running_site(tmp_path_factory.mktemp("web")) as site:
        yield site


@pytest.fixture(scope="module")
def browser():
    with shots.chromium() as browser:
        yield browser


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.problems = []  # console errors (a CSP violation is one) and uncaught exceptions
    # (not "Failed to load resource": a 422 form answer or the favicon's 404 are expected)
    page.on("console", lambda m: page.problems.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.outside = []  # requests leaving 127.0.0.1
    page.on("request", lambda r: page.outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:"))
            else None)
    yield page
    context.close()


def test_complete_a_step_down_task_through_its_form(site, page, tmp_path):
    taken = shots.walk(page, site, tmp_path)
    assert all(Path(p).stat().st_size > 10_000 for p in taken.values())
    assert page.problems == [], "the content security policy or a script complained"
    assert page.outside == []
    # the diagram shows the open step in words too (not colour alone)
    assert page.locator("#diagram .sp-current-label").first.inner_text() == "Now"


def test_a_worker_gets_a_403_page_for_another_roles_task(site, page):
    coordinator_task = site.task_id("CF-2042", "Task_AgreeNextStepsWithFamily")
    shots.sign_in(page, site, "carmarthenshire.taf.coordinator")
    response = page.goto(f"{site.url}/tasks/{coordinator_task}")
    assert response.status == 403
    assert page.get_by_role("heading", name="You cannot see this page").is_visible()


def test_a_form_post_without_the_csrf_token_is_refused(site, page):
    shots.sign_in(page, site)
    task_id = site.task_id("CF-2057", "Task_CompleteJaffPart1")
    page.goto(f"{site.url}/tasks/{task_id}")
    page.evaluate("document.querySelector('.sp-task-form input[name=csrf_token]').remove()")
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="There is a problem with that request").is_visible()
    assert "The form was not accepted" in page.locator("main").inner_text()


def test_without_javascript_the_case_page_shows_everything_but_the_diagram(site, browser):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        shots.sign_in(page, site)
        page.goto(f"{site.url}/cases/{site.case_id('CF-2057')}")
        assert page.get_by_text("The diagram of the pathway needs JavaScript").is_visible()
        body = page.locator("main").inner_text()
        assert "Complete JAFF part 1 with the family" in body and "Price" in body and "Case started" in body
        assert "19 January 2027 at 10am" in body  # the reminder timer, in London time
        # and a form works with scripts off: save a draft
        page.goto(f"{site.url}/tasks/{site.task_id('CF-2057', 'Task_CompleteJaffPart1')}")
        page.get_by_label("Your view of the case (optional)").fill("Saved without scripts")
        page.get_by_role("button", name="Save draft").click()
        assert re.search(r"saved as a draft", page.locator("main").inner_text())
        assert page.get_by_label("Your view of the case (optional)").input_value() == "Saved without scripts"
    finally:
        context.close()
