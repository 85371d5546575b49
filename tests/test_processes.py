"""The service's long-running processes (``service.wsgi`` for gunicorn, ``service.timer_worker``) settle once their
app is built: what start-up built is left out of the garbage collector's full collections (service.settle_process)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = "import gc; import {module}; print(gc.get_freeze_count())"


@pytest.mark.parametrize("module", ["service.wsgi", "service.timer_worker"])
def test_a_service_process_leaves_what_start_up_built_out_of_full_collections(module, tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(module=module)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
                                            "TIMERS_ENABLED": "false"})
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 50_000, "what start-up built is frozen"
