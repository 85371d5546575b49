"""``GET /healthz``: a load balancer's probe of a service process and its database (``service.api.probe``)."""
from __future__ import annotations

from conftest import _free_port
from service import create_app


def test_a_process_whose_database_answers_is_healthy_to_anyone_without_a_token(app):
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store" and "Set-Cookie" not in response.headers


def test_a_process_whose_database_does_not_answer_is_unavailable_and_says_nothing_more(caplog):
    nowhere = f"postgresql+psycopg://nobody@127.0.0.1:{_free_port()}/none"  # nothing listens there
    app = create_app({"SQLALCHEMY_DATABASE_URI": nowhere, "TIMERS_ENABLED": False, "TESTING": True,
                      "SECRET_KEY": "test"})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "database": "not answering"}
    assert "nobody" not in response.get_data(as_text=True)
    assert "the health probe found the database not answering" in caplog.text
