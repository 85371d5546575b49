"""Driving the Somerset pathways through the REST API: start, complete by task name, fire timers, read history,
decisions, hand-overs and notifications. Used by tests/test_pathway_somerset_*.py and test_somerset_examples.py."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from service import scheduler

LONDON = ZoneInfo("Europe/London")
ROLES = ["lead_practitioner", "early_help_hub", "stepping_in_service", "somerset_direct", "social_worker",
         "team_manager", "senior_manager", "early_help_manager"]


def london(*args) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(LONDON)


class Somerset:
    def __init__(self, api, clock):
        self.api, self.clock = api, clock
        # users for every role first, so that reminders and escalations have someone to reach
        self.users = {role: api.as_role(role) for role in ROLES}

    # -- acting ------------------------------------------------------------------------------------
    def start(self, process: str, data: dict, role: str, reference: str = "SOM-0001", status: int = 201) -> dict:
        response = self.api.post("/cases", json={"process": process, "reference": reference, "data": data},
                                 as_=self.users[role])
        assert response.status_code == status, response.json
        return response.json

    def complete(self, case_id: int, name: str, data: dict, role: str | None = None, status: int = 200) -> dict:
        task = self.task(case_id, name)
        role = role or task["roles"][0]
        response = self.api.post(f"/tasks/{task['id']}/complete", json={"data": data}, as_=self.users[role])
        assert response.status_code == status, response.json
        if status == 200:
            assert response.json["status"] != "error", response.json["error"]
        return response.json

    def message(self, case_id: int, name: str, data: dict | None = None) -> dict:
        response = self.api.post(f"/cases/{case_id}/messages", json={"name": name, "data": _with_account(name, data)},
                                 as_="admin")
        assert response.status_code == 200, response.json
        return response.json

    def fire(self, at: datetime | None = None) -> int:
        if at is not None:
            self.clock.move_to(at)
        return scheduler.fire_due(self.api.app)

    # -- reading -----------------------------------------------------------------------------------
    def case(self, case_id: int) -> dict:
        response = self.api.get(f"/cases/{case_id}", as_="admin")
        assert response.status_code == 200, response.json
        return response.json

    def open(self, case_id: int) -> list[str]:
        return sorted(t["name"] for t in self.case(case_id)["tasks"])

    def task(self, case_id: int, name: str) -> dict:
        tasks = [t for t in self.case(case_id)["tasks"] if t["name"] == name]
        assert len(tasks) == 1, f"{name} is not open; open: {self.open(case_id)}"
        return tasks[0]

    def due(self, case_id: int, name: str) -> datetime | None:
        return parse(self.task(case_id, name)["due_at"])

    def roles(self, case_id: int, name: str) -> list[str]:
        return self.task(case_id, name)["roles"]

    def timers(self, case_id: int) -> dict[str, datetime]:
        """The pathway's own timers (the escalation the service adds to an urgent step is tested in
        test_safeguarding.py)."""
        return {t["name"]: parse(t["due_at"]) for t in self.case(case_id)["timers"]
                if t["name"] != "safeguarding:urgent_escalation"}

    def history(self, case_id: int) -> list[dict]:
        response = self.api.get(f"/cases/{case_id}/history", as_="admin")
        assert response.status_code == 200, response.json
        return response.json

    def decisions(self, case_id: int) -> list[dict]:
        return [e["detail"] for e in self.history(case_id) if e["event"] == "decision_taken"]

    def rules(self, case_id: int) -> list[tuple[str, str]]:
        """(level-of-need rule, EHA-action rule) of each decision taken, in order."""
        out = []
        for d in self.decisions(case_id):
            assert d["decision"] == "somerset_eha_action"
            (level,) = d["required"]
            assert level["decision"] == "somerset_level_of_need"
            out.append((level["matched_rules"][0]["id"], d["matched_rules"][0]["id"]))
        return out

    def handed_on(self, case_id: int) -> list[dict]:
        """The cases this case started (hand-overs), as case JSON."""
        return [self.case(e["detail"]["to_case"]) for e in self.history(case_id) if e["event"] == "case_handed_on"]

    def messages_sent(self, case_id: int) -> list[dict]:
        return [e["detail"] for e in self.history(case_id) if e["event"] == "message_sent"]

    def notifications(self, role: str) -> list[dict]:
        response = self.api.get("/notifications", as_=self.users[role])
        assert response.status_code == 200, response.json
        return response.json

    def subjects(self, role: str) -> list[str]:
        return [n["subject"] for n in self.notifications(role)]


def level(risk="no", impaired=False, universal=False, escalating=False, needs=2) -> dict:
    """The level-of-need fields of the Somerset forms; significant harm is a yes / no / unsure answer."""
    return {"risk_of_significant_harm": risk, "health_or_development_impaired": impaired,
            "needs_met_by_universal_services": universal, "needs_escalating_despite_support": escalating,
            "number_of_needs": needs}


CONSENT_GIVEN = {"consent": "given", "consent_given_by": "Mother", "consent_rationale": "Discussed with the family"}
CONSENT_REFUSED = {"consent": "refused", "consent_rationale": "Mother does not want another agency involved"}
CONSENT_NOT_SOUGHT = {"consent": "not_sought", "consent_override_reason": "increase_risk",
                      "consent_override_agreed_by": "Team manager A. Patel",
                      "consent_rationale": "Asking would alert the partner and place the child at greater risk"}
CONSENT = {"given": CONSENT_GIVEN, "refused": CONSENT_REFUSED, "not_sought": CONSENT_NOT_SOUGHT}
"""The three answers of every Somerset consent question (issue 12, rule 3)."""
URGENT_REFERRAL = {"what_happened": "Child disclosed an injury at school", "somerset_direct_reference": "SD-1"}
CP_REFERRAL = {"somerset_direct_reference": "SD-42", "cp_referral_summary": "Disclosure of a non-accidental injury; "
               "strategy discussion arranged", "police_called": False}


def bpmn_properties(process: str, element: str) -> dict[str, str]:
    """The camunda extension properties of one element (or of the process itself) in bpmn/<process>.bpmn."""
    from pathlib import Path

    from lxml import etree
    tree = etree.parse(str(Path(__file__).resolve().parents[1] / "bpmn" / f"{process}.bpmn"))
    (node,) = tree.xpath(f"//*[@id='{element}']")
    return {p.get("name"): p.get("value") for p in node.xpath(
        "bpmn:extensionElements/camunda:properties/camunda:property",
        namespaces={"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "camunda": "http://camunda.org/schema/1.0/bpmn"})}


def _with_account(name: str, data: dict | None) -> dict:
    """Raising immediate risk says what has happened (docs/safeguarding.md, rule 2)."""
    data = dict(data or {})
    if name == "immediate_risk":
        data.setdefault("what_happened", "A disclosure at school this morning")
    return data
