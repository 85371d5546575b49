"""The managers' pages and a case's notes and documents in a real browser (Debian's chromium via Playwright):
giving tasks in bulk from the workload page, uploading a document, axe-core finding nothing on each page,
and the workload and manager pages reflowing at 320 pixels. Skipped like test_browser.py without chromium,
playwright or the built front-end assets; axe-core comes from web/node_modules (make vendor installs it).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from browser_support import ROOT, axe, browser, expect, page, reflows, shot, shots  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

MANAGER = f"{shots.COUNCIL}.taf.manager"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with shots.running_site(tmp_path_factory.mktemp("web-workload")) as site:
        yield site


def test_a_manager_gives_tasks_in_bulk_from_the_workload_page(site, page, tmp_path):
    shots.sign_in(page, site, MANAGER)
    page.get_by_role("link", name="Workload").first.click()
    page.wait_for_url(f"{site.url}/workload")
    expect(page.get_by_role("heading", name="Workload")).to_be_visible()
    violations = {"workload": axe(page)}
    assert reflows(page), "the workload page scrolls sideways at 320 px"
    # nobody chosen: the error summary links to the select
    page.get_by_label("Select Complete JAFF part 1 with the family (case CF-2041)").check()
    page.get_by_role("button", name="Give selected tasks").click()
    expect(page.locator(".govuk-error-summary").get_by_text("Choose who to give the task to")).to_be_visible()
    violations["workload with an error"] = axe(page)
    page.get_by_label("Select Complete JAFF part 1 with the family (case CF-2041)").check()
    page.get_by_label("Select Complete JAFF part 1 with the family (case CF-2057)").check()
    page.get_by_label("Give the selected tasks to").select_option(shots.WORKER)
    page.get_by_role("button", name="Give selected tasks").click()
    expect(page.get_by_text("2 tasks given to Sam Social Worker.")).to_be_visible()
    shot(page, "workload", tmp_path)
    workers = page.locator("table.sp-workers").inner_text()
    assert "Sam Social Worker" in workers and "2" in workers
    # a worker's whole pile, to give from
    page.goto(f"{site.url}/workload/workers/{shots.WORKER}")
    expect(page.get_by_role("heading", name="Open tasks with Sam Social Worker")).to_be_visible()
    violations["a worker's whole pile"] = axe(page)
    assert reflows(page), "a worker's pile scrolls sideways at 320 px"
    page.goto(f"{site.url}/workload/waiting?role=social_worker")
    expect(page.get_by_role("heading", name="Not yet taken: social worker")).to_be_visible()
    violations["the tasks waiting for a role"] = axe(page)
    assert reflows(page), "the tasks waiting for a role scroll sideways at 320 px"
    # the manager view, its lists behind the counts
    page.goto(f"{site.url}/manager")
    violations["manager view"] = axe(page)
    shot(page, "manager", tmp_path)
    assert reflows(page), "the manager view scrolls sideways at 320 px"
    page.locator("table.sp-counts a").first.click()
    expect(page.locator("h1")).to_contain_text("Cases")
    violations["cases behind a count"] = axe(page)
    assert reflows(page), "the list of cases scrolls sideways at 320 px"
    assert violations == {name: [] for name in violations}
    assert page.problems == []


def test_upload_a_document_and_add_a_note(site, page, tmp_path):
    shots.sign_in(page, site)
    case_id = site.case_id("CF-2057")
    page.goto(f"{site.url}/cases/{case_id}")
    page.get_by_role("link", name="Upload a document").click()
    violations = {"upload": axe(page)}
    page.get_by_label("Title").fill("Minutes")
    page.get_by_label("Choose the file").set_input_files({"name": "minutes.pdf", "mimeType": "application/pdf",
                                                          "buffer": b"MZ\x90\x00not a pdf at all"})
    page.get_by_role("button", name="Upload document").click()
    expect(page.locator(".govuk-error-summary").get_by_text("The file must be a PDF")).to_be_visible()
    violations["upload refused"] = axe(page)
    shot(page, "document-upload-refused", tmp_path)
    picture = tmp_path / "genogram.png"
    picture.write_bytes(PNG)
    page.get_by_label("Choose the file").set_input_files(str(picture))
    page.get_by_label("Title").fill("Genogram")
    page.get_by_role("button", name="Upload document").click()
    page.get_by_text("The document 'Genogram' is added to the case.").wait_for()  # the page after the upload
    page.locator("#notes-and-documents").scroll_into_view_if_needed()
    documents = page.locator(".sp-documents").inner_text()
    assert "Genogram" in documents and "PNG image" in documents
    with page.expect_download() as download:
        page.get_by_role("link", name="Genogram").click()
    assert Path(download.value.path()).read_bytes() == PNG
    # a note
    page.get_by_role("link", name="Add a note").click()
    violations["note"] = axe(page)
    page.get_by_label("Visit").check()
    page.get_by_label("Day").fill("11")
    page.get_by_label("Month").fill("1")
    page.get_by_label("Year").fill("2027")
    page.get_by_label("What happened").fill("Saw the children at home.")
    page.get_by_role("button", name="Add note").click()
    assert "Saw the children at home." in page.locator(".sp-notes").inner_text()
    page.locator(".sp-case-records").screenshot(path=str(tmp_path / "case-notes-and-documents.png"))
    if os.environ.get("STEP_SCREENSHOTS") == "1":
        shutil.copyfile(tmp_path / "case-notes-and-documents.png",
                        ROOT / "docs" / "screenshots" / "case-notes-and-documents.png")
    assert violations == {name: [] for name in violations}
    assert page.problems == []
