"""Shared by the Halton pathway tests: answers, the pathways on both databases, the diagram conventions.

Protocol: /work/shared/protocols/halton.txt. The conventions: docs/safeguarding.md ("The conventions every
pathway follows").
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from conftest import Api, pathways_client
from lxml import etree

from service.engine.clock import LONDON

ROOT = Path(__file__).resolve().parent.parent
NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "camunda": "http://camunda.org/schema/1.0/bpmn"}

#: Why consent was not sought, and the manager who agreed: asked (and required) only when it was not sought.
OVERRIDE = {"consent_override_reason": "undue_delay", "consent_override_agreed_by": "T. Manager"}


def consent_answers(answer: str) -> dict:
    return {"consent": answer, **(OVERRIDE if answer == "not_sought" else {})}


def refused_without_the_override(api, task_id: str, as_: str, data: dict):
    """Complete a task answering ``not_sought`` with no reason and no manager: refused, whichever way.

    Once the service evaluates form-js ``conditional.hide`` (issue 12, the lead's part) the two fields are
    required and the step is refused (422). Until then the service never requires a conditional field, and the
    consent table sends the case to ``Task_RecordConsent`` instead: nothing goes on without the reason.
    Returns the case (or None after a 422).
    """
    response = api.post(f"/tasks/{task_id}/complete", as_=as_, json={"data": {**data, "consent": "not_sought"}})
    if response.status_code == 422:
        assert {"consent_override_reason", "consent_override_agreed_by"} <= set(response.json["errors"])
        return None
    assert response.status_code == 200, response.json
    assert sorted(t["name"] for t in response.json["tasks"]) == ["Task_RecordConsent"]
    return response.json


def london(*args) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(LONDON) if value else None


def deployed(app) -> Api:
    """The reference pathways deployed and the test users made, on the database of ``app``.

    A test module's ``pathways`` fixture calls it with conftest's ``app``, which is parametrised by database:
    the Halton scenarios run on SQLite and on PostgreSQL.
    """
    return pathways_client(app)


def diagram(key: str):
    return etree.parse(str(ROOT / "bpmn" / f"{key}.bpmn"))


def prop(element, name: str) -> str | None:
    found = element.xpath(f"./bpmn:extensionElements/camunda:properties/camunda:property[@name='{name}']/@value",
                          namespaces=NS)
    return found[0] if found else None


def element(tree, id_: str):
    [found] = tree.xpath(f"//*[@id='{id_}']")
    return found


def top_level_ends(tree):
    process = tree.find("bpmn:process", NS)
    ends = process.findall("bpmn:endEvent", NS)
    reminders = {flow.get("targetRef") for flow in process.findall("bpmn:sequenceFlow", NS)
                 if process.find(f"bpmn:boundaryEvent[@id='{flow.get('sourceRef')}']", NS) is not None
                 and process.find(f"bpmn:boundaryEvent[@id='{flow.get('sourceRef')}']", NS).get("cancelActivity")
                 == "false"}
    return [end for end in ends if end.get("id") not in reminders]
