"""Driving Carmarthenshire cases through the REST API, shared by the pathway test modules."""
from __future__ import annotations

from datetime import datetime

from service.engine.clock import LONDON


def london(*args) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class ApiCase:
    """One case driven through the REST API; a test module sets the pathway key, starting role and reference."""

    key = ""
    role = ""
    reference = ""

    def __init__(self, api, data, role=None, reference=None, key=None):
        self.api = api
        response = api.post("/cases", json={"process": key or self.key, "reference": reference or self.reference,
                                            "data": data}, as_=api.as_role(role or self.role))
        assert response.status_code == 201, response.json
        self.id = response.json["id"]

    @property
    def json(self):
        return self.api.get(f"/cases/{self.id}", as_="admin").json

    def open(self) -> list[str]:
        return sorted(t["name"] for t in self.json["tasks"])

    def task(self, name):
        tasks = [t for t in self.json["tasks"] if t["name"] == name]
        assert len(tasks) == 1, f"{name} not open; open: {self.open()}"
        return tasks[0]

    def complete(self, name, data, role):
        task = self.task(name)
        assert role in task["roles"], (name, task["roles"])
        response = self.api.post(f"/tasks/{task['id']}/complete", json={"data": data}, as_=self.api.as_role(role))
        assert response.status_code == 200, response.json
        assert response.json["status"] != "error", response.json["error"]
        return response.json

    def message(self, name, data=None):
        response = self.api.post(f"/cases/{self.id}/messages", json={"name": name, "data": _with_account(name, data)}, as_="admin")
        assert response.status_code == 200, response.json
        return response.json

    def history(self):
        return self.api.get(f"/cases/{self.id}/history", as_="admin").json

    def rules(self, element):
        return [[r["id"] for r in e["detail"]["matched_rules"]] for e in self.history()
                if e["event"] == "decision_taken" and e["task"] == element]

    def timers(self):
        return {t["name"]: when(t["due_at"]) for t in self.json["timers"]}


def notes(api, role):
    """The (kind, subject) of every notification a user with ``role`` has."""
    return [(n["kind"], n["subject"]) for n in api.get("/notifications", as_=api.as_role(role)).json]


def prepare(pathways, frozen_clock, roles):
    """The API at Monday 11 January 2027, 09:00 (no bank holiday for weeks), with a user for each role."""
    frozen_clock.move_to(london(2027, 1, 11, 9, 0))
    for role in roles:
        pathways.as_role(role)
    pathways.clock = frozen_clock
    return pathways


def _with_account(name: str, data: dict | None) -> dict:
    """Raising immediate risk says what has happened (docs/safeguarding.md, rule 2)."""
    data = dict(data or {})
    if name == "immediate_risk":
        data.setdefault("what_happened", "A disclosure at school this morning")
    return data
