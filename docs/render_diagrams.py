"""Render every pathway diagram in bpmn/ to docs/images/<key>.svg with the bpmn-js viewer in Chromium.

    .venv/bin/python docs/render_diagrams.py      (after `make vendor`; needs Debian's chromium)
"""
from __future__ import annotations

import http.server
import threading
from functools import partial
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "service" / "static" / "vendor" / "bpmn-js"
OUT = ROOT / "docs" / "images"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/assets/diagram-js.css"><link rel="stylesheet" href="/assets/bpmn-js.css">
<link rel="stylesheet" href="/assets/bpmn-font/css/bpmn-embedded.css">
<script src="/bpmn-navigated-viewer.production.min.js"></script></head>
<body><div id="canvas" style="width:1800px;height:1000px"></div></body></html>"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


def main() -> None:
    handler = partial(QuietHandler, directory=str(VENDOR))
    (VENDOR / "render.html").write_text(PAGE)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_port}/render.html")
            for diagram in sorted((ROOT / "bpmn").glob("*.bpmn")):
                svg = page.evaluate("""async (xml) => {
                    const viewer = new BpmnJS({container: '#canvas'});
                    const result = await viewer.importXML(xml);
                    if (result.warnings.length) { console.warn(result.warnings); }
                    const {svg} = await viewer.saveSVG();
                    viewer.destroy();
                    return svg;
                }""", diagram.read_text())
                (OUT / f"{diagram.stem}.svg").write_text(svg)
                print(f"docs/images/{diagram.stem}.svg")
            browser.close()
    finally:
        server.shutdown()
        (VENDOR / "render.html").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
