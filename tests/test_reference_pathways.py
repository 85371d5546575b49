"""The reference pathways as a whole: they deploy together, and `make run`'s demo users cover every role."""
from __future__ import annotations

import re

import pytest

from conftest import ROOT
from service.demo import DEMO_USERS, REFERENCE_COUNCILS
from service.deployments import read_folders
from service.engine.bundle import build_bundle

ISSUE_KEYS = {
    "carmarthenshire_step_down", "carmarthenshire_step_up", "carmarthenshire_step_across",
    "carmarthenshire_taf_plan", "somerset_step_in", "somerset_step_up", "somerset_step_down",
    "somerset_professional_differences", "halton_step_down", "halton_step_up", "halton_unplanned_step_up",
    "afc_step_up", "afc_step_down", "afc_nfa_fast_track", "rochdale_step_up", "rochdale_step_down",
}


@pytest.fixture(scope="module")
def bundle():
    return build_bundle(read_folders(ROOT))


def test_every_pathway_of_the_issues_deploys(bundle):
    assert ISSUE_KEYS <= set(bundle.processes)


@pytest.mark.parametrize("council", [c.key for c in REFERENCE_COUNCILS])
def test_each_council_has_demo_users_for_every_role_and_escalation_of_its_pathways(bundle, council):
    """`make run` deploys each council's files (named with its key) into it; its people hold its roles."""
    own = [p for key, p in bundle.processes.items() if key.startswith(f"{council}_")]
    assert own, council
    roles = {role for process in own for role in process.roles}
    notified = set()
    for path in (ROOT / "bpmn").glob(f"{council}_*.bpmn"):
        notified |= set(re.findall(r'name="notify" value="([a-z_]+)"', path.read_text()))
    held = {role for _, user_roles in DEMO_USERS[council].values() for role in user_roles}
    assert (roles | notified) - {"task"} <= held
    assert {"admin", "analyst", "pathway_approver"} <= held  # a second pair of eyes publishes (four eyes)


def test_every_pathway_answers_immediate_risk(bundle):
    for key, process in bundle.processes.items():
        text = process.diagram.decode()
        assert 'name="immediate_risk"' in text, key
