"""Every GET of the service at a country's scale, slowest first: the lists and pages no other bench names.

On a database built by ``bench/scale.py --build-only`` (a million open cases of one council), in a service process
connected as the unprivileged role (row-level security on, as in production): each GET route of the REST API as the
council's admin and manager (their tokens), and each GET route of the pages signed in as an admin, a manager, an
analyst and a social worker (users this script adds once, with passwords). A route's ids are those of the built
case ``BENCH-4242``: its case, open task, pathway version, family and child; a route with another id is left out.
Each request ``--repeat`` times after one warm-up: the median and p95 of wall time, slowest first. An answer that
is not 200 is shown with its status (a page a role may not open answers 403: that is the point of it).

    DATA_ENCRYPTION_KEYS=... .venv/bin/python bench/sweep.py --database-url URL [--repeat 5] [--top 30]
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale  # noqa: E402  (service_app: the service as production connects to the built database)

#: Who signs in to the pages: (name, roles). Their password is ``password-<name>``.
PAGE_USERS = (("sweep-admin", ["admin"]), ("sweep-manager", ["team_manager", "social_worker"]),
              ("sweep-analyst", ["analyst"]), ("sweep-worker", ["social_worker"]))
#: Who reads the API: the tokens bench/scale.py makes (``token-manager``) and its admin's (``token-admin``).
API_USERS = ("admin", "manager")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
LEFT_OUT = ("/static", "/sign-out")


def _users(url: str) -> dict[str, int | str]:
    """The sweep's users (made once, then kept) and the ids of the built case ``BENCH-4242`` its routes take."""
    from sqlalchemy import select

    from service import create_app, tenancy
    from service.auth import save_user
    from service.models import Case, OpenTask, User, db

    owner = create_app({"SQLALCHEMY_DATABASE_URI": url, "TIMERS_ENABLED": False})
    scale._admin(owner)
    with owner.app_context():
        council = tenancy.council_by_key(db.session, "bench")
        tenancy.act_for(db.session, council)
        for name, roles in PAGE_USERS:
            if db.session.scalar(select(User.id).where(User.name == name)) is None:
                save_user(db.session, name, roles, council=council, password=f"password-{name}")
        db.session.commit()
        case = db.session.scalars(select(Case).where(Case.reference == "BENCH-4242")).one()
        task = db.session.scalars(select(OpenTask).where(OpenTask.case_id == case.id,
                                                         OpenTask.closed_at.is_(None))).first()
        ids = {"case_id": case.id, "task_id": task.id if task else None, "version_id": case.process_version_id,
               "family_id": case.family_id, "person_id": case.child_id}
        db.session.remove()
    return ids


def _paths(app, prefix_api: bool, ids: dict[str, int | str]) -> list[str]:
    """The app's GET routes (the API's or the pages'), each with the built case's ids; those with others left out."""
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.rule.startswith("/api/") != prefix_api or rule.rule.startswith(LEFT_OUT):
            continue
        path = rule.rule
        for name, value in ids.items():
            if value is not None:
                path = re.sub(rf"<(?:\w+:)?{name}>", str(value), path)
        if "<" not in path:
            paths.append(path)
    return sorted(set(paths))


def _signed_in(app, name: str):
    """A test client signed in to the pages as ``name`` (the sign-in form with its CSRF token)."""
    client = app.test_client()
    token = CSRF.search(client.get("/sign-in").get_data(as_text=True))[1]
    answer = client.post("/sign-in", data={"name": name, "password": f"password-{name}", "csrf_token": token})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    return client


def _timed(get, path: str, repeat: int) -> tuple[float, float, int]:
    """Median and p95 wall ms of ``get(path)`` after one warm-up, and its status."""
    get(path)
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        status = get(path).status_code
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), sorted(times)[max(0, int(len(times) * 0.95) - 1)], status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    ids = _users(args.database_url)
    app, client = scale.service_app(args.database_url)
    rows = []
    for who in API_USERS:
        headers = {"Authorization": f"Bearer token-{who}"}
        for path in _paths(app, True, ids):
            rows.append((*_timed(lambda p: client.get(p, headers=headers), path, args.repeat), f"API, {who}", path))
    for name, _roles in PAGE_USERS:
        signed_in = _signed_in(app, name)
        for path in _paths(app, False, ids):
            rows.append((*_timed(signed_in.get, path, args.repeat), f"page, {name}", path))
    rows.sort(key=lambda row: -row[0])
    print(f"{len(rows)} requests ({len(ids)} ids of BENCH-4242), {args.repeat} times each after a warm-up; "
          f"the {min(args.top, len(rows))} slowest:")
    print("| median ms | p95 ms | status | who | GET |")
    print("| --- | --- | --- | --- | --- |")
    for median, p95, status, who, path in rows[:args.top]:
        print(f"| {median:.1f} | {p95:.1f} | {status} | {who} | `{path}` |")


if __name__ == "__main__":
    main()
