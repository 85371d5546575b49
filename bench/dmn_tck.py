#!/usr/bin/env python
"""Run the DMN TCK cases in shared/conformance/dmn-tck against the decision engine.

    .venv/bin/python bench/dmn_tck.py [--tck PATH] [-v] [--only SUBSTRING] [--folders] [--http]

Counted as the kit counts: one ``<testCase>`` of a ``*-test-*.xml`` passes when every one of its
``<resultNode>`` values does. Every ``.dmn`` of a test folder is loaded once into one registry that
evaluates as the standard says (``DecisionRegistry(strict=False)``); inputs are typed by their
``xsi:type`` as the kit gives them. Prints each failure's reason and ends with ``N of M test cases passed``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from lxml import etree

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from service.engine.decisions import (DecisionDefinitionError, DecisionEvaluationError,  # noqa: E402
                                      DecisionRegistry, load_decisions)
from service.engine.decisions.feel import (equals, parse_date, parse_datetime,  # noqa: E402
                                           parse_duration, parse_time, to_json_value)
from service.engine.decisions.values import YMDuration, type_name  # noqa: E402

XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
DEFAULT_TCK = REPO / ".." / "shared" / "conformance" / "dmn-tck"


def _local(tag):
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _kids(el, name):
    return [c for c in el if _local(c.tag) == name]


# --------------------------------------------------------------------------- typed values

_PARSE = {"date": parse_date, "dateTime": parse_datetime, "time": parse_time, "duration": parse_duration,
          "dayTimeDuration": parse_duration, "yearMonthDuration": parse_duration}


def read_value(el):
    """A TCK value holder (<value>, <component>s or <list>) as the FEEL value it stands for."""
    if (el.get(XSI + "nil") or "").lower() == "true":
        return None
    comps = _kids(el, "component")
    if comps:
        return {c.get("name"): read_value(c) for c in comps}
    lists = _kids(el, "list")
    if lists:
        return [read_value(i) for i in _kids(lists[0], "item")] or [read_value(v) for v in _kids(lists[0], "value")]
    values = _kids(el, "value")
    if values:
        return read_value(values[0])
    if _local(el.tag) != "value":
        return None
    return _scalar(el)


def _scalar(v):
    t = (v.get(XSI + "type") or "").split(":")[-1]
    text = v.text or ""
    if t in ("decimal", "double", "float", "integer", "int", "long", "short", "byte"):
        try:
            return Decimal(text.strip())
        except InvalidOperation:
            return None
    if t == "boolean":
        return text.strip().lower() == "true"
    if t in _PARSE:
        return _PARSE[t](text.strip())
    return text


def same(actual, expected) -> bool:
    """Whether a result is the expected value: same FEEL type and value (dates and times: same zone too)."""
    if expected is None:
        return actual is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    if isinstance(expected, Decimal):
        return isinstance(actual, Decimal) and _same_number(actual, expected)
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            same(a, e) for a, e in zip(actual, expected))
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and same(actual[k], e) for k, e in expected.items())
    if isinstance(expected, (dt.date, dt.time, dt.timedelta, YMDuration)):
        return (type_name(actual) == type_name(expected) and equals(actual, expected) is True
                and getattr(actual, "utcoffset", lambda: None)() == getattr(expected, "utcoffset", lambda: None)())
    return actual == expected


def _same_number(a: Decimal, e: Decimal) -> bool:
    """Equal, or within the expected value's last written digit or 1e-12 of it: the kit's expected values of
    non-terminating results were written from double arithmetic or cut short."""
    if a == e:
        return True
    if not a.is_finite() or not e.is_finite():
        return False
    return abs(a - e) <= max(Decimal(1).scaleb(e.as_tuple().exponent), abs(e) * Decimal("1e-12"))


# --------------------------------------------------------------------------- runner

@dataclass
class Summary:
    passed: int = 0
    failed: int = 0
    reasons: list[str] = field(default_factory=list)
    by_folder: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.passed + self.failed


def load_folder(folder: Path):
    """Every model of a test folder in one standard-mode registry, and the models by file name."""
    registry, models, errors = DecisionRegistry(strict=False), {}, {}
    for path in sorted(folder.glob("*.dmn")):
        try:
            model = load_decisions(etree.parse(str(path)).getroot(), path.name, strict=False)
            registry.add(model)
            models[path.name] = model
        except (DecisionDefinitionError, etree.XMLSyntaxError, OSError) as e:
            errors[path.name] = f"cannot load {path.name}: {e}"
    return registry, models, errors


def case_inputs(case, model) -> dict:
    """The test case's inputs by name; an input of an imported model inside the context of the import's name."""
    imports = {ns: name for name, ns in (model.imports if model else {}).items()}
    context = {}
    for node in _kids(case, "inputNode"):
        name, value = node.get("name"), read_value(node)
        ns = node.get("namespace")
        if ns and ns in imports:
            context.setdefault(imports[ns], {})[name] = value  # inside the context named by the import
        else:
            context[name] = value
    return context


def run_case(registry, model, case, http=None) -> list[str]:
    """The failures of one test case ([] when it passes); ``http``: evaluate through the REST API instead."""
    context = case_inputs(case, model)
    service = case.get("invocableName") if case.get("type") == "decisionService" else None
    failures = []
    for node in _kids(case, "resultNode"):
        name = node.get("name")
        exp_el = _kids(node, "expected")
        expected = read_value(exp_el[0]) if exp_el else None
        error_expected = (node.get("errorResult") or "").lower() == "true"
        try:
            actual = (http(model, service, name, context, expected) if http
                      else _evaluate(registry, model, service, name, context))
        except DecisionEvaluationError as e:
            if not error_expected:
                failures.append(f"{name}: error {e}")
            continue
        except Exception as e:  # a crash is a failure, not the end of the run
            failures.append(f"{name}: crashed: {type(e).__name__}: {e}")
            continue
        if error_expected and actual is not None:
            failures.append(f"{name}: expected an error, got {actual!r}")
        elif not error_expected and not same(actual, expected):
            failures.append(f"{name}: expected {expected!r}, got {actual!r}")
    return failures


def _evaluate(registry, model, service, name, context):
    if service:
        ds = next((s for s in model.services.values() if s.name == service), None)
        if ds is None:
            raise LookupError(f"no decision service named {service!r}")
        value = registry.evaluate_decision_service(ds.id, context).value
        return value[name] if isinstance(value, dict) and name in value and name != service else value
    decision = model.by_name(name) or model.decisions.get(name)
    if decision is None:
        raise LookupError(f"no decision named {name!r}")
    return registry.evaluate(decision.id, context).value


class HttpEvaluator:
    """Deploys a folder's models to a fresh service (POST /api/v1/deployments) and evaluates each decision
    through POST /api/v1/decisions/<id>/evaluate, with case data as plain JSON (dates as ISO text)."""

    def __init__(self, folder: Path) -> None:
        import tempfile

        from flask_migrate import upgrade

        from service import councils, create_app
        from service.auth import save_user
        from service.models import db

        url = f"sqlite:///{tempfile.mkdtemp(prefix='tck-')}/tck.db"
        self.app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False})
        with self.app.app_context():
            upgrade()
            council, _ = councils.create_council(db.session, "tck", "TCK Council")
            save_user(db.session, "tck", ["analyst"], council=council, token="tck")
            db.session.commit()
        self.client = self.app.test_client()
        self.headers = {"Authorization": "Bearer tck"}
        files = [(path.open("rb"), path.name) for path in sorted(folder.glob("*.dmn"))]
        response = self.client.post("/api/v1/deployments", headers=self.headers, data={"files": files},
                                    content_type="multipart/form-data")
        self.refused = None if response.status_code == 201 else f"deployment refused: {response.json}"

    def __call__(self, model, service, name, context, expected):
        if self.refused:
            raise LookupError(self.refused)
        if service:
            raise LookupError("the REST API has no decision services yet")
        decision = model.by_name(name) or model.decisions.get(name)
        response = self.client.post(f"/api/v1/decisions/{decision.id}/evaluate", headers=self.headers,
                                    json={"inputs": to_json_value(context)})
        if response.status_code == 422:
            raise DecisionEvaluationError(decision.id, None, response.json["message"])
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.json}")
        return _as_expected(response.json["outputs"], expected)


def _as_expected(value, expected):
    """A plain JSON result read as the FEEL type of the expected value (the API answers ISO text)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if isinstance(value, list):
        items = expected if isinstance(expected, list) else []
        return [_as_expected(v, items[i] if i < len(items) else None) for i, v in enumerate(value)]
    if isinstance(value, dict):
        parts = expected if isinstance(expected, dict) else {}
        return {k: _as_expected(v, parts.get(k)) for k, v in value.items()}
    parse = _PARSE.get({"date": "date", "date and time": "dateTime", "time": "time",
                        "days and time duration": "duration",
                        "years and months duration": "duration"}.get(type_name(expected), ""))
    return parse(value) if parse and isinstance(value, str) else value


def run(tck: Path, verbose: bool = False, only: str | None = None, http: bool = False) -> Summary:
    summary = Summary()
    for folder in sorted({p.parent for p in tck.rglob("*-test-*.xml")}):
        if only and only not in folder.name:
            continue
        registry, models, errors = load_folder(folder)
        evaluator = HttpEvaluator(folder) if http else None
        passed = failed = 0
        for test_file in sorted(folder.glob("*-test-*.xml")):
            tests = etree.parse(str(test_file)).getroot()
            model_name = next((m.text.strip() for m in _kids(tests, "modelName") if m.text), None)
            model = models.get(model_name) if model_name else next(iter(models.values()), None)
            for case in _kids(tests, "testCase"):
                label = f"{folder.name} #{case.get('id')}"
                failures = ([errors.get(model_name) or f"no model {model_name}"] if model is None
                            else run_case(registry, model, case, evaluator))
                if failures:
                    failed += 1
                    summary.reasons += [f"{label} {f}" for f in failures]
                else:
                    passed += 1
                    if verbose:
                        print(f"ok   {label}")
        summary.passed += passed
        summary.failed += failed
        summary.by_folder[folder.name] = (passed, passed + failed)
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--tck", type=Path, default=DEFAULT_TCK,
                    help="folder of TCK cases (default: ../shared/conformance/dmn-tck from the repo root)")
    ap.add_argument("-v", "--verbose", action="store_true", help="also list the test cases that pass")
    ap.add_argument("--only", help="run only the folders whose name contains this text")
    ap.add_argument("--folders", action="store_true", help="print the figure of each folder")
    ap.add_argument("--http", action="store_true",
                    help="deploy each folder to a fresh service and evaluate through its REST API (as it is today:"
                         " strict mode, plain JSON)")
    args = ap.parse_args(argv)
    if not args.tck.is_dir():
        print(f"no TCK folder at {args.tck}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    summary = run(args.tck.resolve(), args.verbose, args.only, args.http)
    for r in summary.reasons:
        print(f"FAIL {r}")
    if args.folders:
        for name, (p, n) in summary.by_folder.items():
            print(f"{p:5d} / {n:<5d} {name}")
    print(f"{summary.passed} of {summary.total} test cases passed ({summary.failed} failed) "
          f"in {time.perf_counter() - start:.1f} s")
    return 0 if summary.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
