"""Deploys that cannot exhaust the service: limits checked before any file is parsed, and a time budget.

Before the engine parses anything (:func:`check_limits`): each file's size, the BPMN elements of each
diagram, the rules of each decision table (fewer still for a UNIQUE table, whose overlap check compares
every pair of rules), and every string of a diagram that lands in a database column (process keys and
names, element ids and names, lane names and the roles they make, literal assignees, outcomes). Each
problem names the file, the element and the limit.

The full checks then run in a separate process (:func:`check_in_time`) killed when it runs past
``DEPLOY_CHECK_SECONDS``: a pathological file costs one deploy its answer, never a request thread or the
timer thread. Content that passed once is not checked again (remembered by content hash).
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app
from lxml import etree

from service import limits
from service.engine import conventions, dialect
from service.engine.bundle import BPMN_NS, Bundle, DeploymentInvalid, Problem, build_bundle
from service.engine.expressions import is_expression
from service.engine.parser import role_key
from service.engine.xml import XmlRejected, parse_xml
from service.lru import Lru

DMN_NS_SUFFIX = "DMN/"
DEFAULTS: dict[str, Any] = {
    "DEPLOY_MAX_FILE_BYTES": 1024 * 1024,  # the largest reference diagram is 113 KB
    "DEPLOY_MAX_ELEMENTS": 5000,  # BPMN elements per diagram (the largest reference diagram has 549)
    "DEPLOY_MAX_RULES": 1000,  # rules per decision table
    "DEPLOY_MAX_UNIQUE_RULES": 300,  # rules per UNIQUE table: its overlap check compares every pair
    "DEPLOY_CHECK_SECONDS": 30,  # wall-clock budget for the checks of one deploy (0: no separate process)
    "SCENARIO_SECONDS": 120,  # wall-clock budget for one run of a deploy's or a version's scenario tests
}
#: Column lengths of service.models that strings from a diagram land in.
KEY_LENGTH, NAME_LENGTH, ROLE_LENGTH, USER_LENGTH, OUTCOME_LENGTH = 120, 255, 80, 80, 80


def setting(name: str) -> Any:
    return current_app.config.get(name, DEFAULTS[name])


def check_limits(files: Mapping[str, bytes]) -> None:
    """Refuse, before parsing, files over a limit or holding strings too long for their columns."""
    problems: list[Problem] = []
    for name, content in sorted(files.items()):
        problems += _file_problems(name, content)
    if problems:
        raise DeploymentInvalid(problems)


def _file_problems(name: str, content: bytes) -> list[Problem]:
    limit = setting("DEPLOY_MAX_FILE_BYTES")
    if len(name) > NAME_LENGTH or "\x00" in name:
        return [Problem(name[:80], None, f"a file name may have at most {NAME_LENGTH} characters and no NUL")]
    if len(content) > limit:
        return [Problem(name, None, f"the file is {len(content):,} bytes; the limit is {limit:,} bytes "
                                    f"(DEPLOY_MAX_FILE_BYTES)")]
    kind = name.rsplit(".", 1)[-1].lower()
    if kind == "form":
        return _form_problems(name, content)
    if kind not in ("bpmn", "dmn"):
        return []
    try:
        root = parse_xml(content, name)
    except XmlRejected:
        return []  # the full checks say why
    return _diagram_problems(name, root) if kind == "bpmn" else _decision_problems(name, root)


def _form_problems(name: str, content: bytes) -> list[Problem]:
    """A form nested deeper than ``MAX_JSON_DEPTH`` (100,000 levels once made a deploy a 500)."""
    limit = current_app.config.get("MAX_JSON_DEPTH", limits.DEFAULTS["MAX_JSON_DEPTH"])
    try:
        deepest = limits.json_depth(json.loads(content))
    except RecursionError:
        deepest = limit + 1
    except ValueError:
        return []  # not JSON: the form checks say so
    if deepest > limit:
        return [Problem(name, None, f"the form is nested more than {limit} levels deep (MAX_JSON_DEPTH)")]
    return []


def _diagram_problems(name: str, root) -> list[Problem]:
    elements = [e for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).namespace == BPMN_NS]
    limit = setting("DEPLOY_MAX_ELEMENTS")
    if len(elements) > limit:
        return [Problem(name, None, f"the diagram has {len(elements):,} BPMN elements; the limit is {limit:,} "
                                    f"(DEPLOY_MAX_ELEMENTS)")]
    problems = []
    for element in elements:
        for what, value, length in _column_strings(element):
            if len(value) > length:
                problems.append(Problem(name, element.get("id", "")[:80],
                                        f"the {what} has {len(value)} characters; at most {length} are kept"))
    return problems


def _column_strings(element) -> list[tuple[str, str, int]]:
    """(what, value, column length) for each string of ``element`` that the service keeps in a column."""
    local = etree.QName(element).localname
    found = [("id", element.get("id") or "", KEY_LENGTH if local == "process" else NAME_LENGTH),
             ("name", element.get("name") or "", NAME_LENGTH)]
    if local == "lane":
        found.append(("role made from the lane name", role_key(element.get("name") or ""), ROLE_LENGTH))
    try:
        groups = dialect.candidate_group_names(element)
    except ValueError:
        groups = []  # the full checks say why
    for group in groups:
        found.append(("candidate group (a role)", group, ROLE_LENGTH))
    assignee = dialect.assignee(element) or ""
    if not is_expression(assignee):
        found.append(("assignee", assignee, USER_LENGTH))
    if "outcome" in (properties := dialect.properties(element)):
        found.append(("outcome", properties["outcome"], OUTCOME_LENGTH))
    return found


def _decision_problems(name: str, root) -> list[Problem]:
    problems = []
    for table in root.iter():
        if not (isinstance(table.tag, str) and etree.QName(table).localname == "decisionTable"):
            continue
        rules = sum(1 for r in table if isinstance(r.tag, str) and etree.QName(r).localname == "rule")
        unique = (table.get("hitPolicy") or "UNIQUE").upper() == "UNIQUE"
        setting_name = "DEPLOY_MAX_UNIQUE_RULES" if unique else "DEPLOY_MAX_RULES"
        limit = min(setting(setting_name), setting("DEPLOY_MAX_RULES"))
        if rules > limit:
            owner = table.getparent().get("id") if table.getparent() is not None else None
            problems.append(Problem(name, owner, f"the decision table has {rules:,} rules; the limit is {limit:,}"
                                                 f"{' for a UNIQUE table' if unique else ''} ({setting_name})"))
    return problems


# -- the full checks, in a process of their own, within a time budget --------------------------------

@dataclass(frozen=True)
class Checked:
    """What a deploy needs of files that passed every check: each process's name and content hash, and the
    parsed bundle when the checks ran in this process (else it is parsed on first use)."""

    processes: dict[str, tuple[str, str]]
    bundle: Bundle | None = None


def summary(bundle: Bundle) -> dict[str, tuple[str, str]]:
    return {key: (p.name, p.content_hash) for key, p in bundle.processes.items()}


def _passed() -> Lru[str, dict[str, tuple[str, str]]]:
    """The app's record of files whose checks passed, by content hash (bounded), so that unchanged files are not
    checked again (in ``app.extensions``, like the parsed-pathway cache)."""
    return current_app.extensions.setdefault("step_pathways.checked_files", Lru(256))


def content_hash(files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def checked_bundle(files: Mapping[str, bytes]) -> Bundle:
    """Every file parsed and checked as the engine runs it, then the safeguarding conventions
    (docs/safeguarding.md) that every pathway follows; raise :class:`DeploymentInvalid` listing what is wrong."""
    from service import scenarios  # the scenario files (service.scenarios reads the service's forms)

    bundle = build_bundle(files)
    if problems := conventions.problems(bundle) + scenarios.problems(bundle):
        raise DeploymentInvalid(problems)
    return bundle


def check_in_time(files: Mapping[str, bytes]) -> Checked:
    """Run every deploy check (in a separate process, killed past the budget); raise what is wrong."""
    budget = setting("DEPLOY_CHECK_SECONDS")
    digest = content_hash(files)
    if (known := _passed().get(digest)) is not None:
        return Checked(known)
    if not budget:
        bundle = checked_bundle(files)
        return Checked(summary(bundle), bundle)
    outcome, value = _check_elsewhere(files, budget)
    if outcome == "invalid":
        raise DeploymentInvalid(value)
    if outcome == "failed":  # the checker died or hit a bug: the checks in this process say why
        bundle = checked_bundle(files)
        return Checked(summary(bundle), bundle)
    _passed().put(digest, value)
    return Checked(value)


def _check_elsewhere(files: Mapping[str, bytes], budget: float) -> tuple[str, Any]:
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_check, args=(dict(files), sender), daemon=True)
    try:
        process.start()
    except OSError:  # no fork server here (e.g. a script read from stdin): check in this process
        current_app.logger.warning("deploy checks ran without their time budget: no checker process started")
        receiver.close()
        sender.close()
        return "failed", None
    sender.close()
    try:
        if not receiver.poll(budget):
            raise DeploymentInvalid([Problem("", None, f"checking these files took longer than {budget} s "
                                                       f"(DEPLOY_CHECK_SECONDS); make the diagrams or tables "
                                                       f"smaller")])
        return receiver.recv()
    except EOFError:
        return "failed", None
    finally:
        process.kill()
        process.join()
        receiver.close()


def _context():
    """A fork server with the engine imported and warmed (``service.deploy_checker``): each check starts quickly,
    from a clean process."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["service.deploy_checker"])
    return context


def _check(files: dict[str, bytes], sender) -> None:
    try:
        sender.send(("ok", summary(checked_bundle(files))))
    except DeploymentInvalid as error:
        sender.send(("invalid", error.problems))
    except Exception:  # noqa: BLE001 (a bug in a check: the deploying process runs the checks and reports it)
        sender.send(("failed", None))
    finally:
        sender.close()
