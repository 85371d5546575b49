"""The DMN TCK (compliance levels 2 and 3) inside the suite: a floor on the test cases that pass.

The kit lives in ``shared/conformance/dmn-tck`` beside the repository (``../shared`` from its root, as CI
copies it); without it these tests are skipped. Counted as the kit counts: a test case passes when all its
result nodes do. Each folder's models are parsed once (``bench/dmn_tck.py`` does the work).
"""
import importlib.util
import sys
from pathlib import Path

import pytest
from lxml import etree

REPO = Path(__file__).resolve().parent.parent
TCK = REPO.parent / "shared" / "conformance" / "dmn-tck"

# the figure reached; raise it when the engine passes more, never lower it to make a change pass
FLOOR = 3045

pytestmark = pytest.mark.skipif(not TCK.is_dir(), reason=f"no DMN TCK at {TCK}")


def _bench():
    spec = importlib.util.spec_from_file_location("dmn_tck_bench", REPO / "bench" / "dmn_tck.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def summary():
    return _bench().run(TCK)


def _test_cases_in_kit() -> int:
    count = 0
    for path in TCK.rglob("*-test-*.xml"):
        count += sum(1 for el in etree.parse(str(path)).getroot()
                     if isinstance(el.tag, str) and etree.QName(el).localname == "testCase")
    return count


def test_every_test_case_of_every_folder_is_counted(summary):
    folders = {p.parent.name for p in TCK.rglob("*-test-*.xml")}
    assert set(summary.by_folder) == folders
    assert summary.total == _test_cases_in_kit()


def test_tck_pass_count_does_not_drop(summary):
    failures = "\n".join(summary.reasons[:40])
    assert summary.passed >= FLOOR, f"{summary.passed} of {summary.total} pass, the floor is {FLOOR}:\n{failures}"


def test_every_hit_policy_folder_passes_whole(summary):
    hit_policy_folders = [n for n in summary.by_folder if "hitpolicy" in n or "simpletable" in n]
    assert hit_policy_folders
    for name in hit_policy_folders:
        passed, total = summary.by_folder[name]
        assert passed == total, name
