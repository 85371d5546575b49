"""A PostgreSQL server of a benchmark's own, in a temporary folder (initdb + pg_ctl; as `postgres` when root,
since they refuse to run as root), and the free port it listens on."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(*command: str) -> list[str]:
    return list(command) if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *command]


def start_postgres(base: Path, *settings: str) -> str:
    """Start a server in ``base`` with ``settings`` (``"fsync=off"``, ...); its URL for the superuser."""
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    subprocess.run(as_postgres("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"),
                   check=True, capture_output=True)
    options = " ".join(f"-c {setting}" for setting in ("listen_addresses=127.0.0.1", "max_connections=100", *settings))
    subprocess.run(as_postgres("pg_ctl", "-D", str(data), "-l", str(base / "log"), "-w", "-o",
                               f"-p {port} -k {sock} {options}", "start"), check=True, capture_output=True)
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"


def stop_postgres(base: Path) -> None:
    subprocess.run(as_postgres("pg_ctl", "-D", str(base / "data"), "-m", "fast", "stop"), capture_output=True,
                   check=False)
    shutil.rmtree(base, ignore_errors=True)
