"""Helpers for the Achieving for Children pathway and tracker tests: a case driven through the REST API."""
from __future__ import annotations

from datetime import datetime, timezone

from service import scheduler

AFC_ROLES = ("peh_manager", "peh_practitioner", "spa", "spa_manager", "csc_manager", "csc_social_worker",
             "head_of_integrated_working")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


class Flow:
    """One case of ``key``: start it, complete its tasks as the role that owes them, fire its timers."""

    def __init__(self, api, clock, key):
        self.api, self.clock, self.key = api, clock, key
        self.users = {role: api.as_role(role) for role in AFC_ROLES}

    def start(self, data, reference="AFC-1", role="peh_manager", status=201):
        response = self.api.post("/cases", json={"process": self.key, "reference": reference, "data": data},
                                 as_=self.users[role])
        assert response.status_code == status, response.json
        self.case = response.json
        return self.case

    def refresh(self):
        self.case = self.api.get(f"/cases/{self.case['id']}", as_="admin").json
        return self.case

    def open(self) -> list[str]:
        return sorted(t["name"] for t in self.refresh()["tasks"])

    def task(self, name):
        matches = [t for t in self.refresh()["tasks"] if t["name"] == name]
        assert len(matches) == 1, f"{name} not open; open: {[t['name'] for t in self.case['tasks']]}"
        return matches[0]

    def due(self, name) -> datetime:
        return iso(self.task(name)["due_at"])

    def timers(self) -> dict[str, datetime]:
        return {t["name"]: iso(t["due_at"]) for t in self.refresh()["timers"]}

    def complete(self, name, data, role, status=200):
        task = self.task(name)
        assert task["roles"] == [role], (name, task["roles"])
        response = self.api.post(f"/tasks/{task['id']}/complete", json={"data": data}, as_=self.users[role])
        assert response.status_code == status, response.json
        self.case = response.json if status == 200 else self.refresh()
        return self.case

    def fire(self, at):
        self.clock.move_to(at)
        return scheduler.fire_due(self.api.app)

    def message(self, name="immediate_risk", data=None):
        response = self.api.post(f"/cases/{self.case['id']}/messages", json={"name": name, "data": _with_account(name, data)},
                                 as_="admin")
        assert response.status_code == 200, response.json
        self.case = response.json
        return self.case

    def history(self):
        return self.api.get(f"/cases/{self.case['id']}/history", as_="admin").json

    def rules(self) -> list[str]:
        return [e["detail"]["matched_rules"][0]["id"] for e in self.history() if e["event"] == "decision_taken"]

    def notes(self, role) -> list[str]:
        return [n["subject"] for n in self.api.get("/notifications", as_=self.users[role]).json]

    def outcome(self):
        case = self.refresh()
        assert case["status"] == "completed", (case["status"], case["error"], [t["name"] for t in case["tasks"]])
        return case["outcome"]

    def tracker(self):
        response = self.api.get("/tracker", as_=self.users["csc_manager"])
        assert response.status_code == 200, response.json
        return {row["case_id"]: row for row in response.json}


def consent_given():
    return {"consent": "given"}


def refuse_or_return(flow, name, data, role):
    """A step the service must not let through: refused (422, the server checks a shown required field) or, where
    the server does not yet check it, the diagram's gateway sends the task back. Either way the case does not go on."""
    before = flow.open()
    task = flow.task(name)
    response = flow.api.post(f"/tasks/{task['id']}/complete", json={"data": data}, as_=flow.users[role])
    assert response.status_code in (200, 422), response.json
    assert flow.open() == before


def urgent_tasks(key) -> set[str]:
    """The user tasks of a pathway that are urgent: marked ``urgent`` = ``true`` or inside an event sub-process
    started by the ``immediate_risk`` message (the conventions in docs/safeguarding.md)."""
    from pathlib import Path
    from xml.etree import ElementTree

    ns = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "camunda": "http://camunda.org/schema/1.0/bpmn"}
    root = ElementTree.parse(Path(__file__).resolve().parents[1] / "bpmn" / f"{key}.bpmn").getroot()
    found = {task.get("id") for task in root.iter(f"{{{ns['bpmn']}}}userTask")
             if any(p.get("name") == "urgent" and p.get("value") == "true"
                    for p in task.iter(f"{{{ns['camunda']}}}property"))}
    for sub in root.iter(f"{{{ns['bpmn']}}}subProcess"):
        if sub.get("triggeredByEvent") == "true":
            found |= {task.get("id") for task in sub.iter(f"{{{ns['bpmn']}}}userTask")}
    return found


def process_properties(key, element_id) -> dict[str, str]:
    """The extension properties of one element of a pathway's diagram (its own, not its children's)."""
    from pathlib import Path
    from xml.etree import ElementTree

    root = ElementTree.parse(Path(__file__).resolve().parents[1] / "bpmn" / f"{key}.bpmn").getroot()
    element = next(e for e in root.iter() if e.get("id") == element_id)
    bpmn, camunda = "{http://www.omg.org/spec/BPMN/20100524/MODEL}", "{http://camunda.org/schema/1.0/bpmn}"
    return {p.get("name"): p.get("value")
            for p in element.findall(f"{bpmn}extensionElements/{camunda}properties/{camunda}property")}


def _with_account(name: str, data: dict | None) -> dict:
    """Raising immediate risk says what has happened (docs/safeguarding.md, rule 2)."""
    data = dict(data or {})
    if name == "immediate_risk":
        data.setdefault("what_happened", "A disclosure at school this morning")
    return data
