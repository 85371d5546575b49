"""Deploys that cannot exhaust the service (issue 11, item 8): limits, a time budget, nothing checked twice,
and a cache of parsed pathways that twenty live versions do not thrash."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from conftest import FIXTURES, USERS, Api, in_council, make_app, save_user
from service import deployments
from service.models import ProcessVersion, db

PATHWAY = FIXTURES / "pathways"
REVIEW = (PATHWAY / "review.bpmn").read_text()
DMN = (PATHWAY / "test_level.dmn").read_text()


@pytest.fixture
def client(tmp_path):
    """An API client on SQLite whose app takes the settings given (deploy logic is the same on both databases)."""
    made = []

    def make(**config) -> Api:
        app = make_app(f"sqlite:///{tmp_path / f'db{len(made)}.db'}", **config)
        with app.app_context():
            for name, roles in USERS.items():
                save_user(db.session, name, roles, token=f"token-{name}")
            db.session.commit()
        made.append(app)
        return Api(app, {name: f"token-{name}" for name in USERS})

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def upload(api: Api, files: dict[str, str | bytes]):
    import io
    data = {"files": [(io.BytesIO(c.encode() if isinstance(c, str) else c), n) for n, c in files.items()]}
    return api.post("/deployments", data=data, as_="analyst", content_type="multipart/form-data")


def messages(response) -> str:
    assert response.status_code == 400, response.json
    return " ".join(f"{e['file']} {e['message']}" for e in response.json["errors"])


def unique_table(rules: int) -> str:
    rows = "".join(f'<rule id="R{i}"><inputEntry id="I{i}"><text>{i}</text></inputEntry>'
                   f'<outputEntry id="O{i}"><text>"x"</text></outputEntry></rule>' for i in range(rules))
    return ('<?xml version="1.0"?><definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="D" '
            'name="D" namespace="n"><decision id="big" name="Big"><decisionTable id="T" hitPolicy="UNIQUE">'
            '<input id="In" label="n"><inputExpression id="E" typeRef="integer"><text>n</text></inputExpression>'
            f'</input><output id="Out" name="o" typeRef="string"/>{rows}</decisionTable></decision></definitions>')


def test_a_file_over_the_size_limit_is_refused_naming_file_and_limit(client):
    api = client(DEPLOY_MAX_FILE_BYTES=5_000)
    text = messages(upload(api, {"review.bpmn": REVIEW, "test_level.dmn": DMN}))
    assert "review.bpmn" in text and "5,000 bytes" in text and "DEPLOY_MAX_FILE_BYTES" in text


def test_a_diagram_over_the_element_limit_is_refused(client):
    api = client(DEPLOY_MAX_ELEMENTS=20)
    text = messages(upload(api, {"review.bpmn": REVIEW, "test_level.dmn": DMN}))
    assert "review.bpmn" in text and "the limit is 20" in text and "DEPLOY_MAX_ELEMENTS" in text


def test_a_unique_table_with_too_many_rules_is_refused_before_its_overlap_check(client):
    api = client()
    started = time.monotonic()
    text = messages(upload(api, {"big.dmn": unique_table(3000)}))
    assert "3,000 rules" in text and "DEPLOY_MAX_UNIQUE_RULES" in text
    assert time.monotonic() - started < 10  # the quadratic check (40 s for 3,000 rules) never ran


def test_deploy_checks_have_a_time_budget(client):
    api = client(DEPLOY_CHECK_SECONDS=0.001)
    diagram = REVIEW.replace('name="Test review"', 'name="Test review (never checked before)"', 1)
    text = messages(upload(api, {"review.bpmn": diagram, "test_level.dmn": DMN}))
    assert "took longer than 0.001 s" in text and "DEPLOY_CHECK_SECONDS" in text


def test_unchanged_files_are_not_checked_again(client, monkeypatch):
    api = client()
    assert upload(api, {"review.bpmn": REVIEW, "test_level.dmn": DMN}).status_code == 201
    calls = []
    monkeypatch.setattr(deployments, "build_bundle", lambda files: calls.append(files))
    monkeypatch.setattr(deployments.deploy_checks, "_context", lambda: calls.append("checked"))
    response = upload(api, {"review.bpmn": REVIEW})
    assert response.status_code == 201 and response.json["created"] is False
    assert calls == []


def test_a_diagram_string_longer_than_its_column_is_refused_at_deploy(client):
    api = client()
    long = (REVIEW.replace('value="closed"', f'value="{"c" * 98}"')
            .replace('name="Team manager"', f'name="{"M" * 81}"'))
    text = messages(upload(api, {"review.bpmn": long, "test_level.dmn": DMN}))
    assert "outcome has 98 characters; at most 80" in text and "role made from the lane name" in text


def test_twenty_live_versions_do_not_thrash_the_parsed_pathway_cache(client, monkeypatch):
    api = client(DEPLOY_CHECK_SECONDS=0)
    for i in range(20):
        diagram = REVIEW.replace('<bpmn:process id="test_review" name="Test review"',
                                 f'<bpmn:process id="test_review" name="Test review {i}"')
        assert upload(api, {"review.bpmn": diagram, "test_level.dmn": DMN}).status_code == 201
    parsed = []
    original = deployments.build_bundle
    monkeypatch.setattr(deployments, "build_bundle", lambda files: parsed.append(1) or original(files))
    with api.app.app_context():
        in_council(db.session)
        versions = db.session.scalars(select(ProcessVersion)).all()
        assert len(versions) == 20
        for _ in range(3):
            names = {deployments.process_definition(db.session, v).name for v in versions}
        assert len(names) == 20
    assert parsed == []  # every version stayed cached since its deploy


def test_each_app_has_its_own_cache(client):
    first, second = client(), client()
    assert upload(first, {"review.bpmn": REVIEW, "test_level.dmn": DMN}).status_code == 201
    with first.app.app_context():
        mine = deployments.cache()
    with second.app.app_context():
        assert deployments.cache() is not mine
    assert first.app.extensions[deployments.CACHE] is mine
    # So are the files whose checks passed, the list facts of each version and the comparisons of versions.
    from service import deploy_checks, listed_tasks, pathway_diff

    for cache in (deploy_checks._passed, listed_tasks.cache, pathway_diff._compared):
        with first.app.app_context():
            held = cache()
        with second.app.app_context():
            assert cache() is not held, cache.__qualname__


def test_each_file_is_stored_once_per_council_however_many_deployments_hold_it(client):
    from service.models import DeploymentFile, PathwayFile

    api = client(DEPLOY_CHECK_SECONDS=0)
    assert upload(api, {"review.bpmn": REVIEW, "test_level.dmn": DMN}).status_code == 201
    for i in range(3):
        changed = REVIEW.replace('name="Test review"', f'name="Test review {i}"', 1)
        assert upload(api, {"review.bpmn": changed}).status_code == 201
    with api.app.app_context():
        in_council(db.session)
        assert len(db.session.scalars(select(DeploymentFile)).all()) == 8  # 4 deployments of 2 files
        stored = db.session.scalars(select(PathwayFile)).all()
        assert len(stored) == 5  # the decision table once, and each of the 4 diagrams
        assert sum(1 for f in stored if f.content == DMN.encode()) == 1


def test_a_form_nested_too_deep_is_refused_at_deploy(client):
    api = client()
    deep = '{"components": ' + "[" * 100_000 + "]" * 100_000 + "}"
    text = messages(upload(api, {"deep.form": deep}))
    assert "deep.form" in text and "nested more than 32 levels" in text
