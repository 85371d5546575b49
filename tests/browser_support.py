"""What the browser tests share: the reasons to skip them, the site and browser of docs/make_screenshots.py,
a page that lets axe-core in, axe-core's findings and the 320-pixel reflow check.

Importing this module skips the importing test module when chromium, Playwright or the built front-end
assets are missing.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"

if shutil.which("chromium") is None and not Path("/usr/bin/chromium").exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect  # noqa: E402  (waits for the page, where is_visible() answers at once)
if not (ROOT / "service/static/vendor/bpmn-js/bpmn-navigated-viewer.production.min.js").exists():
    pytest.skip("the front-end assets are not built (make vendor)", allow_module_level=True)

_spec = importlib.util.spec_from_file_location("make_screenshots", ROOT / "docs" / "make_screenshots.py")
shots = sys.modules.setdefault("make_screenshots", importlib.util.module_from_spec(_spec))
if not hasattr(shots, "running_site"):
    _spec.loader.exec_module(shots)


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, one per test module (import it: ``from browser_support import browser, page``)."""
    with shots.chromium() as browser:
        yield browser


@pytest.fixture
def page(browser):
    """A :func:`checked_page` of the module's browser, closed after the test."""
    page = checked_page(browser)
    yield page
    page.context.close()


def shot(page, name: str, folder: Path) -> None:
    """A screenshot of the page; into docs/screenshots/ too when STEP_SCREENSHOTS=1 (refreshing the docs')."""
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    if os.environ.get("STEP_SCREENSHOTS") == "1":
        shutil.copyfile(folder / f"{name}.png", ROOT / "docs" / "screenshots" / f"{name}.png")


def checked_page(browser):
    """A page whose content security policy lets the test inject axe-core (the service's own scripts still run);
    uncaught script errors gather in ``page.problems``. Close its ``context`` when done."""
    if not AXE.exists():
        pytest.fail("axe-core is missing: make vendor (web/package.json lists it) installs it")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    return page


def axe(page) -> list[str]:
    """axe-core's violations on the page as shown (every rule axe runs by default: WCAG 2.x A/AA and best practice)."""
    page.wait_for_load_state("load")
    page.add_script_tag(path=str(AXE))
    return page.evaluate("""async () => {
        const result = await axe.run(document);
        return result.violations.map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '));
    }""")


def reflows(page) -> bool:
    """At 320 CSS pixels wide nothing scrolls sideways (WCAG 1.4.10)."""
    page.set_viewport_size({"width": 320, "height": 800})
    wide = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size({"width": 1280, "height": 900})
    return wide <= 320
