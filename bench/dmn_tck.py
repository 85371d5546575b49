#!/usr/bin/env python
"""Run the DMN TCK cases in shared/conformance/dmn-tck against the decision engine.

    .venv/bin/python bench/dmn_tck.py [--tck PATH] [-v]

Every ``<resultNode>`` of every ``*-test-*.xml`` is one check.  The evaluation goes through
``evaluate(...)`` below, which runs ``load_decisions`` + ``DecisionRegistry.evaluate`` in process;
an HTTP mode (POST /api/v1/decisions/<id>/evaluate) can replace that one function.
Prints the reason for each failure and ends with ``N passed, M failed``.
"""
from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from lxml import etree

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from service.engine.decisions import (DecisionDefinitionError, DecisionEvaluationError, Problem,  # noqa: E402
                                      DecisionRegistry, load_decisions)

XSI = "{http://www.w3.org/2001/XMLSchema-instance}"


def _local(tag):
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _kids(el, name):
    return [c for c in el if _local(c.tag) == name]


def read_value(el):
    """A TCK value holder (<value>, <component>s or <list>) as the JSON-ish value case data would hold."""
    comps = _kids(el, "component")
    if comps:
        return {c.get("name"): read_value(c) for c in comps}
    lists = _kids(el, "list")
    if lists:
        lst = lists[0]
        items = _kids(lst, "item")
        if items:
            return [read_value(i) for i in items]
        return [_scalar(v) for v in _kids(lst, "value")]
    values = _kids(el, "value")
    if values:
        return _scalar(values[0])
    return None


def _scalar(v):
    if (v.get(XSI + "nil") or "").lower() == "true":
        return None
    if _kids(v, "component") or _kids(v, "list"):
        return read_value(v)
    t = (v.get(XSI + "type") or "").split(":")[-1]
    text = v.text or ""
    if t in ("decimal", "double", "float", "integer", "int", "long"):
        d = Decimal(text.strip())
        return int(d) if d == d.to_integral_value() else float(d)
    if t == "boolean":
        return text.strip().lower() == "true"
    return text  # strings; dates, times and durations stay ISO strings as in case data


def same(actual, expected) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        try:
            return Decimal(str(actual)) == Decimal(str(expected))
        except InvalidOperation:
            return False
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            same(a, e) for a, e in zip(actual, expected))
    if isinstance(expected, dict):
        return isinstance(actual, dict) and set(actual) == set(expected) and all(
            same(actual[k], expected[k]) for k in expected)
    if hasattr(actual, "isoformat") and isinstance(expected, str):
        return actual.isoformat() == expected
    return actual == expected


# --------------------------------------------------------------------------- the swappable call

def evaluate(registry: DecisionRegistry, decision_id: str, context: dict):
    """Evaluate one decision in process and return its outputs."""
    return registry.evaluate(decision_id, context).outputs


class HttpEvaluator:
    """Deploys one TCK model to a fresh service and evaluates through POST /api/v1/decisions/<id>/evaluate."""

    def __init__(self, model_file: Path) -> None:
        import tempfile

        from flask_migrate import upgrade

        from service import create_app
        from service.auth import save_user
        from service.models import db

        url = f"sqlite:///{tempfile.mkdtemp(prefix='tck-')}/tck.db"
        self.app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False})
        with self.app.app_context():
            upgrade()
            save_user(db.session, "tck", ["analyst"], token="tck")
            db.session.commit()
        self.client = self.app.test_client()
        self.headers = {"Authorization": "Bearer tck"}
        with model_file.open("rb") as handle:
            response = self.client.post("/api/v1/deployments", headers=self.headers,
                                        data={"files": [(handle, model_file.name)]},
                                        content_type="multipart/form-data")
        if response.status_code != 201:
            raise DecisionDefinitionError([Problem(model_file.name, None, str(response.json))])

    def __call__(self, registry, decision_id: str, context: dict):
        response = self.client.post(f"/api/v1/decisions/{decision_id}/evaluate", headers=self.headers,
                                    json={"inputs": context})
        if response.status_code == 422:
            raise DecisionEvaluationError(decision_id, None, response.json["message"])
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.json}")
        return response.json["outputs"]


# --------------------------------------------------------------------------- runner

def run(tck: Path, verbose: bool = False, http: bool = False) -> tuple[int, int, list[str]]:
    passed, failed, reasons = 0, 0, []
    call = evaluate
    for test_file in sorted(tck.rglob("*-test-*.xml")):
        case_dir = test_file.parent
        tests = etree.parse(str(test_file)).getroot()
        model_name = next((m.text.strip() for m in _kids(tests, "modelName") if m.text), None)
        model_file = case_dir / model_name if model_name else next(case_dir.glob("*.dmn"))
        registry = DecisionRegistry()
        model = None
        load_error = None
        try:
            model = load_decisions(etree.parse(str(model_file)).getroot(), model_file.name)
            registry.add(model)
            if http:
                call = HttpEvaluator(model_file)
        except (DecisionDefinitionError, etree.XMLSyntaxError, OSError) as e:
            load_error = f"cannot load {model_file.name}: {e}"
        for case in _kids(tests, "testCase"):
            context = {n.get("name"): read_value(n) for n in _kids(case, "inputNode")}
            for node in _kids(case, "resultNode"):
                label = f"{case_dir.name} #{case.get('id')} {node.get('name')}"
                exp_el = _kids(node, "expected")
                expected = read_value(exp_el[0] if exp_el else node)
                error_expected = (node.get("errorResult") or "").lower() == "true"
                if load_error:
                    failed += 1
                    reasons.append(f"{label}: {load_error}")
                    continue
                decision = model.by_name(node.get("name")) or model.decisions.get(node.get("name"))
                if decision is None:
                    failed += 1
                    reasons.append(f"{label}: no decision named {node.get('name')!r}")
                    continue
                try:
                    actual = call(registry, decision.id, context)
                except DecisionEvaluationError as e:
                    if error_expected:
                        passed += 1
                    else:
                        failed += 1
                        reasons.append(f"{label}: error {e}")
                    continue
                except Exception as e:  # a crash is a failure, not the end of the run
                    failed += 1
                    reasons.append(f"{label}: crashed: {type(e).__name__}: {e}")
                    continue
                if same(actual, expected) and not error_expected:
                    passed += 1
                    if verbose:
                        print(f"ok   {label}")
                else:
                    failed += 1
                    reasons.append(f"{label}: expected {expected!r}, got {actual!r}")
    return passed, failed, reasons


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--tck", type=Path, default=REPO / ".." / "shared" / "conformance" / "dmn-tck",
                    help="folder of TCK cases (default: ../shared/conformance/dmn-tck from the repo root)")
    ap.add_argument("-v", "--verbose", action="store_true", help="also list the checks that pass")
    ap.add_argument("--http", action="store_true",
                    help="deploy each model to a fresh service and evaluate through its REST API")
    args = ap.parse_args(argv)
    if not args.tck.is_dir():
        print(f"no TCK folder at {args.tck}", file=sys.stderr)
        return 2
    passed, failed, reasons = run(args.tck.resolve(), args.verbose, args.http)
    for r in reasons:
        print(f"FAIL {r}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
