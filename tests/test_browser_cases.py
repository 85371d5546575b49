"""Start a referral from the pages and find the case again by search, in a real browser (chromium through
Playwright), with axe-core checking every page on the way and each page reflowing at 320 pixels.

Skipped like test_browser.py when chromium, playwright or the built front-end assets are missing.
"""
from __future__ import annotations

import importlib.util
import os
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
if not hasattr(shots, "running_site"):
    _spec.loader.exec_module(shots)

#: axe-core, installed by make vendor (web/package.json); AXE_CORE_JS names another copy.
AXE = Path(os.environ.get("AXE_CORE_JS") or ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with shots.running_site(tmp_path_factory.mktemp("web-cases")) as site:
        yield site


@pytest.fixture
def page():
    if not AXE.exists():
        pytest.fail("axe-core is missing: make vendor (web/package.json lists it) installs it")
    with shots.chromium() as browser:
        # The content security policy is bypassed only so that the test can inject axe-core.
        context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page = context.new_page()
        page.problems = []
        page.on("pageerror", lambda e: page.problems.append(str(e)))
        yield page
        context.close()


def _axe(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    return page.evaluate("""async () => {
        const result = await axe.run(document);
        return result.violations.map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '));
    }""")


def _reflows(page) -> bool:
    page.set_viewport_size({"width": 320, "height": 800})
    wide = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size({"width": 1280, "height": 900})
    return wide <= 320


def test_start_a_referral_from_the_pages_and_find_it_by_search(site, page):
    found, narrow = {}, []

    def check(name):
        page.wait_for_load_state("load")
        found[name] = _axe(page)
        if not _reflows(page):
            narrow.append(name)

    shots.sign_in(page, site)
    page.get_by_role("link", name="Start a referral").first.click()
    check("pathways")
    page.locator(".sp-pathway-list a").first.click()
    page.get_by_role("heading", name="Who is the referral about?").wait_for()
    page.get_by_role("button", name="Continue").click()  # nothing typed: errors
    page.locator(".govuk-error-summary").wait_for()
    check("child with errors")
    page.get_by_label("First name").fill("Ceri")
    page.get_by_label("Last name").fill("Llewellyn")
    page.get_by_label("Day").fill("14")
    page.get_by_label("Month").fill("2")
    page.get_by_label("Year").fill("2016")
    page.get_by_label("NHS number (optional)").fill("943 476 5919")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name="About the referral").wait_for()
    check("start form")
    page.get_by_label("Case number").fill("CF-4001")
    page.get_by_label("Weeks the case has been open to Social Services").fill("12")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name="Check your answers before starting the referral").wait_for()
    body = page.locator("main").inner_text()
    assert "Ceri Llewellyn" in body and "14 February 2016" in body and "12" in body
    check("check your answers")
    page.get_by_role("button", name="Start the referral").click()
    page.get_by_role("heading", name="Referral started").wait_for()
    done = page.locator("main").inner_text()
    assert "CF-4001" in done and "Who has the case now" in done and "What happens next" in done
    check("confirmation")

    # find it again by part of the child's name, in another case
    page.get_by_role("link", name="Find a case").first.click()
    page.get_by_label("Child's name, date of birth, NHS number or case number").fill("LLEW")
    page.get_by_role("button", name="Search").click()
    assert re.search(r"\b1 case\b", page.locator("#total").inner_text())
    row = page.locator("tr", has_text="CF-4001")
    assert "Ceri Llewellyn" in row.inner_text() and "14 February 2016" in row.inner_text()
    check("search results")
    page.get_by_label("Child's name, date of birth, NHS number or case number").fill("14/2/2016")
    page.get_by_role("button", name="Search").click()
    assert page.locator("tr", has_text="CF-4001").count() == 1
    page.get_by_role("link", name="Ceri Llewellyn").click()
    page.get_by_role("heading", name="Llewellyn family").wait_for()
    assert "Step down" in page.locator("main").inner_text() or "CF-4001" in page.locator("main").inner_text()
    check("family")
    page.get_by_role("link", name="My cases").first.click()
    assert page.locator("tr", has_text="CF-4001").count() == 1
    check("my cases")
    page.get_by_role("link", name="Team cases").first.click()
    check("team cases")

    assert {name: v for name, v in found.items() if v} == {}, "axe-core found problems"
    assert narrow == [], f"these pages scroll sideways at 320 pixels: {narrow}"
    assert page.problems == []
