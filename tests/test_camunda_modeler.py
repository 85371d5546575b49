"""Camunda Modeler's Deploy button, replayed request for request (issue 17, item 3).

The requests are those of Camunda Modeler's ``CamundaAPI`` and ``RestAPI``
(client/src/plugins/camunda-plugin/shared/, camunda/camunda-modeler at 6bf14d7): every request carries
``accept: application/json`` and ``authorization`` (``Basic base64(user:password)`` or ``Bearer <token>``);
``checkConnection`` is ``GET <url>/deployment?maxResults=0``, ``getVersion`` is ``GET <url>/version`` (it reads
``version``), ``deployDiagram`` is ``POST <url>/deployment/create`` with the multipart parts
``deployment-name``, ``deployment-source`` ("Camunda Modeler"), ``enable-duplicate-filtering`` ("true"),
``tenant-id`` when set, the diagram (part and file name the diagram's name, type text/xml) and each attached
file (untyped). On success it reads ``id`` and ``deployedProcessDefinitions``; on failure it shows the body's
``message``, and treats one starting "ENGINE-09005 Could not parse BPMN process." as a diagram parse error.
"""
from __future__ import annotations

import base64
import io

import pytest

from conftest import FIXTURES, _council, make_app, save_user
from service.models import db

PATHWAY = FIXTURES / "pathways"
REVIEW = (PATHWAY / "review.bpmn").read_bytes()
DMN = (PATHWAY / "test_level.dmn").read_bytes()
URL = "/engine-rest"
PARSE_ERROR = "ENGINE-09005 Could not parse BPMN process."


@pytest.fixture
def client(database_url):
    app = make_app(database_url)
    with app.app_context():
        _council(db.session, "strict", requires_approval=True)
        save_user(db.session, "ann", ["analyst"], council="strict", token="token-ann", password="ann-password-long")
        save_user(db.session, "sam", ["social_worker"], council="strict", token="token-sam")
        save_user(db.session, "dee", ["analyst"], council="test", token="token-dee")  # publishes directly
        save_user(db.session, "reg", ["analyst"], council="test", token="token-reg")
        save_user(db.session, "reg", ["analyst"], council="strict", token="token-reg")
        db.session.commit()
    yield app.test_client()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def basic(user: str, password: str) -> dict[str, str]:
    return {"accept": "application/json",
            "authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"accept": "application/json", "authorization": f"Bearer {token}"}


def deploy(client, headers, diagram: bytes, name="review.bpmn", tenant=None, flags=None):
    form = {"deployment-name": name.rsplit(".", 1)[0], "deployment-source": "Camunda Modeler",
            **({"enable-duplicate-filtering": "true"} if flags is None else flags)}
    if tenant:
        form["tenant-id"] = tenant
    form[name] = (io.BytesIO(diagram), name, "text/xml")
    form["test_level.dmn"] = (io.BytesIO(DMN), "test_level.dmn")  # an attachment: a Blob with no type
    return client.post(f"{URL}/deployment/create", data=form, headers=headers, content_type="multipart/form-data")


def test_modeler_deploys_a_good_diagram_as_a_draft(client):
    headers = basic("ann", "ann-password-long")
    check = client.get(f"{URL}/deployment?maxResults=0", headers=headers)
    assert check.status_code == 200 and check.json == []
    version = client.get(f"{URL}/version", headers=headers)
    assert version.status_code == 200 and version.json["version"].startswith("7.")
    response = deploy(client, headers, REVIEW)
    assert response.status_code == 200, response.json
    body = response.json
    assert isinstance(body["id"], str) and body["name"] == "review" and body["source"] == "Camunda Modeler"
    [definition] = body["deployedProcessDefinitions"].values()  # Modeler takes the first
    assert definition["key"] == "test_review" and definition["version"] == 1
    assert definition["resource"] == "review.bpmn" and definition["deploymentId"] == body["id"]
    assert definition["id"] == next(iter(body["deployedProcessDefinitions"]))
    assert definition["suspended"] is True and body["status"] == "draft"  # a second person publishes it
    assert body["tenantId"] == "strict"
    again = deploy(client, headers, REVIEW)  # enable-duplicate-filtering: the same deployment
    assert again.status_code == 200 and again.json["id"] == body["id"] and again.json["created"] is False
    assert again.json["deployedProcessDefinitions"] is None  # as Camunda 7: nothing new was deployed


@pytest.mark.parametrize("flags", [{"enable-duplicate-filtering": "true"}, {"deploy-changed-only": "true"},
                                   {"enable-duplicate-filtering": "true", "deploy-changed-only": "true"}])
def test_with_duplicate_filtering_an_unchanged_file_set_makes_nothing(client, flags):
    headers = bearer("token-dee")
    first = deploy(client, headers, REVIEW, flags=flags).json
    again = deploy(client, headers, REVIEW, flags=flags)
    assert again.status_code == 200 and again.json["id"] == first["id"] and again.json["created"] is False
    assert again.json["deployedProcessDefinitions"] is None
    assert "no deployment was made" in again.json["message"]
    listed = client.get(f"{URL}/deployment", headers=headers).json
    assert [d["id"] for d in listed] == [first["id"]]


@pytest.mark.parametrize("flags", [{}, {"enable-duplicate-filtering": "false"},
                                   {"enable-duplicate-filtering": "false", "deploy-changed-only": "false"}])
def test_without_duplicate_filtering_every_deploy_is_recorded_and_versions_stay(client, flags):
    headers = bearer("token-dee")
    first = deploy(client, headers, REVIEW, flags=flags).json
    again = deploy(client, headers, REVIEW, flags=flags)
    assert again.status_code == 200 and again.json["created"] is True and again.json["id"] != first["id"]
    [definition] = again.json["deployedProcessDefinitions"].values()
    assert definition["version"] == 1 and definition["key"] == "test_review"  # the pathway keeps its version
    assert "every pathway keeps its version" in again.json["message"]
    listed = client.get(f"{URL}/deployment", headers=headers).json
    assert [d["id"] for d in listed] == [again.json["id"], first["id"]]
    for paged, ids in (("maxResults=1", [again.json["id"]]), ("firstResult=1", [first["id"]]), ("maxResults=0", [])):
        assert [d["id"] for d in client.get(f"{URL}/deployment?{paged}", headers=headers).json] == ids
    # a changed diagram still gets its new version, with either setting
    changed = deploy(client, headers, REVIEW.replace(b'name="Assess the family"', b'name="Assess the whole family"'),
                     flags=flags).json
    [definition] = changed["deployedProcessDefinitions"].values()
    assert definition["version"] == 2 and changed["message"] is None


def test_modeler_shows_the_problems_of_a_bad_diagram(client):
    bad = REVIEW.replace(b' default="Flow_ToWait"', b"")
    response = deploy(client, bearer("token-ann"), bad)
    assert response.status_code == 400
    body = response.json
    assert body["type"] == "ParseException"
    assert body["message"].startswith(PARSE_ERROR)  # Modeler: DIAGRAM_PARSE_ERROR, and the message in its log
    assert "the exclusive gateway 'Level?' (Gateway_Level)" in body["message"]
    [error] = body["details"]["review.bpmn"]["errors"]
    assert error["mainElementId"] == "Gateway_Level" and error["elementIds"] == ["Gateway_Level"]
    assert isinstance(error["line"], int)


def test_a_council_that_lets_analysts_publish_publishes_from_modeler(client):
    response = deploy(client, bearer("token-dee"), REVIEW)
    assert response.status_code == 200 and response.json["status"] == "published"
    [definition] = response.json["deployedProcessDefinitions"].values()
    assert definition["suspended"] is False


def test_modeler_authentication(client):
    assert client.get(f"{URL}/version").status_code == 401
    assert client.get(f"{URL}/deployment?maxResults=0", headers=basic("ann", "wrong-password")).status_code == 401
    assert client.get(f"{URL}/deployment?maxResults=0", headers=basic("ann", "token-sam")).status_code == 401
    assert client.get(f"{URL}/deployment?maxResults=0", headers=basic("ann", "token-ann")).status_code == 200
    assert client.get(f"{URL}/version", headers=bearer("token-nobody")).status_code == 401
    worker = client.get(f"{URL}/deployment?maxResults=0", headers=bearer("token-sam"))
    assert worker.status_code == 403 and worker.json["type"] == "AuthorizationException"  # "not permitted to deploy"
    assert deploy(client, bearer("token-sam"), REVIEW).status_code == 403


def test_a_user_of_several_councils_names_one_as_the_tenant(client):
    several = deploy(client, bearer("token-reg"), REVIEW)
    assert several.status_code == 400 and "tenant ID" in several.json["message"]
    assert deploy(client, bearer("token-reg"), REVIEW, tenant="nowhere").status_code == 403
    chosen = deploy(client, bearer("token-reg"), REVIEW, tenant="strict")
    assert chosen.status_code == 200 and chosen.json["tenantId"] == "strict" and chosen.json["status"] == "draft"
