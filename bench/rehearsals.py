"""What a rehearsal costs per request: each action loads the sandbox from its row (decrypt, parse, rebuild the
engine state), acts, and writes it back encrypted. Through the API on SQLite, on Carmarthenshire's step down:
start, +1 week (the reminder fires), complete JAFF part 1, +4 weeks, read; ``--repeat`` rehearsals, and the median
and slowest request of each kind, and the stored (encrypted) size of the sandbox after the last step.

    .venv/bin/python bench/rehearsals.py [--repeat 20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DEVELOPMENT", "true")

from cryptography.fernet import Fernet

os.environ.setdefault("DATA_ENCRYPTION_KEYS", Fernet.generate_key().decode())

from flask_migrate import upgrade
from sqlalchemy import select, text

from service import create_app, tenancy
from service.auth import save_user
from service.councils import create_council
from service.deployments import deploy, read_folders
from service.models import ProcessVersion, db

KEY = "carmarthenshire_step_down"
START = {"weeks_open": 10, "family_accepts_support": "yes", "safety_plan": "yes", "family_name": "Bench"}
JAFF = {"family_outcomes": "Regular school attendance", "consent": "given", "consent_form": "signed",
        "shared_with_family": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-rehearsals-"))
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.db'}", "TIMERS_ENABLED": False,
                      "SECRET_KEY": "bench", "TESTING": True})
    with app.app_context():
        upgrade()
        council, _ = create_council(db.session, "carmarthenshire", "Carmarthenshire", settings={"country": "wales"})
        tenancy.act_for(db.session, council)
        save_user(db.session, "bench.analyst", ["analyst"], council=council, token="bench-token")
        diagram = ROOT / "bpmn" / f"{KEY}.bpmn"
        files = read_folders(ROOT, [diagram, *(ROOT / "dmn").glob(f"{KEY}*.dmn"), *(ROOT / "forms").glob("*.form")])
        deploy(db.session, files, "bench")
        version = db.session.scalars(select(ProcessVersion.id).where(ProcessVersion.key == KEY)).one()
        db.session.commit()
    client = app.test_client()
    headers = {"Authorization": "Bearer bench-token"}
    timings: dict[str, list[float]] = {}

    def call(kind: str, method: str, path: str, **kwargs):
        began = time.perf_counter()
        response = client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)
        timings.setdefault(kind, []).append((time.perf_counter() - began) * 1000)
        assert response.status_code < 300, (kind, response.status_code, response.get_json())
        return response.get_json()

    for _ in range(args.repeat):
        rid = call("start", "POST", "/rehearsals", json={"version_id": version, "data": START, "as": "social_worker",
                                                         "at": "2027-01-04T09:00:00+00:00"})["id"]
        fired = call("+1 week", "POST", f"/rehearsals/{rid}/actions", json={"clock": "+1 week"})["fired"]
        assert "Event_JaffPart1Reminder" in fired, fired
        call("complete a task", "POST", f"/rehearsals/{rid}/actions",
             json={"complete": "Task_CompleteJaffPart1", "as": "social_worker", "data": JAFF})
        call("+4 weeks", "POST", f"/rehearsals/{rid}/actions", json={"clock": "+4 weeks"})
        call("read", "GET", f"/rehearsals/{rid}")
    with app.app_context():
        tenancy.act_for(db.session, tenancy.council_by_key(db.session, "carmarthenshire"))
        stored = db.session.execute(text("SELECT max(length(state)) FROM rehearsals")).scalar()
        count = db.session.execute(text("SELECT count(*) FROM rehearsals")).scalar()
    print(f"{count} rehearsals of {KEY}, SQLite, through the API (ms per request: median / slowest)")
    for kind, values in timings.items():
        print(f"  {kind:16} {statistics.median(values):7.1f} / {max(values):7.1f}")
    print(f"stored sandbox after the last step: {stored:,} bytes (encrypted)")


if __name__ == "__main__":
    main()
