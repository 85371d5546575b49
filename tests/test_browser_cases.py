"""Start a referral from the pages and find the case again by search, in a real browser (chromium through
Playwright), with axe-core checking every page on the way and each page reflowing at 320 pixels.

Skipped like test_browser.py when chromium, playwright or the built front-end assets are missing.
"""
from __future__ import annotations

import re

import pytest
from browser_support import axe, checked_page, reflows, shots, expect

pytestmark = pytest.mark.browser



@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with shots.running_site(tmp_path_factory.mktemp("web-cases")) as site:
        yield site


@pytest.fixture
def page():
    with shots.chromium() as browser:
        page = checked_page(browser)
        yield page
        page.context.close()


def test_start_a_referral_from_the_pages_and_find_it_by_search(site, page):
    found, narrow = {}, []

    def check(name):
        page.wait_for_load_state("load")
        found[name] = axe(page)
        if not reflows(page):
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
    page.get_by_role("group", name="Do the family still have a need and accept support from TAF?").get_by_label(
        "Yes", exact=True).check()
    page.get_by_role("group", name="Can the family manage their own safety plan?").get_by_label(
        "Yes", exact=True).check()
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
    page.wait_for_url(re.compile(r".*q=LLEW.*"))
    assert re.search(r"\b1 case\b", page.locator("#total").inner_text())
    row = page.locator("tr", has_text="CF-4001")
    assert "Ceri Llewellyn" in row.inner_text() and "14 February 2016" in row.inner_text()
    check("search results")
    page.get_by_label("Child's name, date of birth, NHS number or case number").fill("14/2/2016")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r".*q=14%2F2%2F2016.*"))  # the new results, not the last search's
    expect(page.locator("tr", has_text="CF-4001")).to_have_count(1)
    page.get_by_role("link", name="Ceri Llewellyn").click()
    page.get_by_role("heading", name="Llewellyn family").wait_for()
    assert "Step down" in page.locator("main").inner_text() or "CF-4001" in page.locator("main").inner_text()
    check("family")
    page.get_by_role("link", name="My cases").first.click()
    expect(page.locator("tr", has_text="CF-4001")).to_have_count(1)
    check("my cases")
    page.get_by_role("link", name="Team cases").first.click()
    check("team cases")

    assert {name: v for name, v in found.items() if v} == {}, "axe-core found problems"
    assert narrow == [], f"these pages scroll sideways at 320 pixels: {narrow}"
    assert page.problems == []
