"""The bpmnlint plug-in (web/bpmnlint-plugin-step-pathways) finds what the server's deploy checks find in a
diagram alone, in the server's words: nothing in the reference pathways nor the blank template, and on a bad
diagram each mistake at its element with the message the server gives. Runs the plug-in with node (skipped
without node or web/node_modules: `npm ci` in web/)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from service import deploy_checks, deploy_messages, pathway_templates
from service.engine.bundle import DeploymentInvalid, Problem

ROOT = Path(__file__).resolve().parent.parent
LINT = ROOT / "web" / "bpmnlint-plugin-step-pathways" / "bin" / "lint.js"
BAD = ROOT / "tests" / "fixtures" / "lint" / "bad.bpmn"

if shutil.which("node") is None:
    pytest.skip("node is not installed", allow_module_level=True)
if not (ROOT / "web" / "node_modules" / "bpmnlint").exists():
    pytest.skip("web/node_modules is not installed (npm ci in web/)", allow_module_level=True)


def lint(*paths: Path) -> dict[str, list[dict]]:
    done = subprocess.run(["node", str(LINT), *map(str, paths)], check=False, capture_output=True, text=True,
                          timeout=120, cwd=ROOT / "web")
    assert done.returncode in (0, 1), done.stderr
    return {Path(name).name: reports for name, reports in json.loads(done.stdout).items()}


def server(files: dict[str, bytes]) -> set[tuple[str, str]]:
    """The server's problems (element, message) in the words an analyst gets (deploy_messages.explain)."""
    try:
        deploy_checks.checked_bundle(files)
    except DeploymentInvalid as invalid:
        return {(p.element, p.message) for p in deploy_messages.explain(list(invalid.problems), files)}
    return set()


def test_the_reference_pathways_and_the_blank_template_pass(tmp_path):
    blank = tmp_path / "blank.bpmn"
    blank.write_bytes(pathway_templates.blank("lint_blank", "Blank"))
    diagrams = sorted((ROOT / "bpmn").glob("*.bpmn")) + [blank]
    found = lint(*diagrams)
    assert len(found) == len(diagrams) >= 10
    assert {name: reports for name, reports in found.items() if reports} == {}


def test_each_mistake_is_found_at_its_element_in_the_servers_words():
    reports = lint(BAD)["bad.bpmn"]
    found = {(r["rule"].split("/")[1], r["id"]) for r in reports}
    assert found == {("gateway-conditions", "Gateway_Decision"), ("user-task-role", "Task_NoRole"),
                     ("immediate-risk", "lint_bad"), ("end-outcome", "Event_NoOutcome"), ("timer-shape", "Event_Late"),
                     ("script-python", "Task_Script"), ("no-java", "Task_Java")}
    assert ("end-outcome", "Event_LateDone") not in found  # a reminder's branch does not end the case
    linted = {(r["id"], r["message"]) for r in reports}
    files = {"bad.bpmn": BAD.read_bytes()}
    # the engine's checks (the first the server runs): every one the plug-in can make, word for word
    first = server(files)
    assert first and first <= linted, first - linted
    # the gateway, as deploy_messages rewords the engine's complaint about its flow
    gateway = deploy_messages.explain([Problem("bad.bpmn", "Flow_Yes", "Non-default exclusive outgoing sequence flow "
                                                                       "without condition. ")], files)
    assert {(p.element, p.message) for p in gateway} <= linted


@pytest.mark.parametrize("mistake", ["no immediate risk", "no outcome", "interrupting in a statutory pathway"])
def test_the_safeguarding_conventions_in_the_servers_words(tmp_path, mistake):
    diagram = pathway_templates.blank("lint_conventions", "Conventions").decode()
    if mistake == "no immediate risk":
        diagram = diagram.replace('name="immediate_risk"', 'name="something_else"')
    elif mistake == "no outcome":
        diagram = diagram.replace('<camunda:property name="outcome" value="closed" />', "")
    else:
        diagram = diagram.replace('isExecutable="true">', 'isExecutable="true">\n    <bpmn:extensionElements><camunda:'
                                  'properties><camunda:property name="statutory" value="true" /></camunda:properties>'
                                  '</bpmn:extensionElements>', 1)
    path = tmp_path / "conventions.bpmn"
    path.write_text(diagram)
    expected = server({"conventions.bpmn": diagram.encode()})
    assert expected, "the server found nothing: the mutation did not make the mistake"
    linted = {(r["id"], r["message"]) for r in lint(path)["conventions.bpmn"]}
    assert linted == expected
