"""Settings, read from the environment; ``create_app(config)`` may override any of them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from service import pg_cursor

REPO_ROOT = Path(__file__).resolve().parent.parent


def from_environment(instance_path: str) -> dict[str, Any]:
    env = os.environ
    return {
        "SQLALCHEMY_DATABASE_URI": _database_url(env.get("DATABASE_URL"), instance_path),
        "SECRET_KEY": env.get("SECRET_KEY") or _instance_secret(instance_path),
        "TIMERS_ENABLED": env.get("TIMERS_ENABLED", "true").lower() in ("1", "true", "yes"),
        "TIMER_SAFETY_INTERVAL_SECONDS": int(env.get("TIMER_SAFETY_INTERVAL_SECONDS", "30")),
        # PostgreSQL: worker threads (each its own connection) firing batches of due cases, and the batch size.
        "TIMER_WORKERS": int(env.get("TIMER_WORKERS", "4")),
        "TIMER_BATCH": int(env.get("TIMER_BATCH", "50")),
        "SMTP_HOST": env.get("SMTP_HOST", "localhost"),
        "SMTP_PORT": int(env.get("SMTP_PORT", "25")),
        "SMTP_SENDER": env.get("SMTP_SENDER", "step-pathways@localhost"),
        "SMTP_ENABLED": env.get("SMTP_ENABLED", "false").lower() in ("1", "true", "yes"),
        "SMTP_STARTTLS": env.get("SMTP_STARTTLS", "false").lower() in ("1", "true", "yes"),
        "SMTP_USERNAME": env.get("SMTP_USERNAME"),
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD"),
        "SMTP_CA_FILE": env.get("SMTP_CA_FILE"),  # trust this CA (a council's own) besides the system's
        # Comma-separated Fernet keys, the first encrypts (service.encryption); none: refuse to start.
        "DATA_ENCRYPTION_KEYS": env.get("DATA_ENCRYPTION_KEYS"),
        # A developer's machine (make run): keys may be generated into the instance folder.
        "DEVELOPMENT": env.get("DEVELOPMENT", "false").lower() in ("1", "true", "yes"),
        # How long a closed case is kept when neither its council nor its pathway says; none: kept.
        "DEFAULT_RETENTION_DAYS": int(env["DEFAULT_RETENTION_DAYS"]) if env.get("DEFAULT_RETENTION_DAYS") else None,
        # A rehearsal holds made-up answers that may look real: removed when nobody has used it for this long.
        "REHEARSAL_RETENTION_DAYS": int(env.get("REHEARSAL_RETENTION_DAYS", "90")),
        "PATHWAYS_ROOT": env.get("PATHWAYS_ROOT", str(REPO_ROOT)),
        # What one engine step (scripts, expressions, decisions of one start, completion or timer) may use.
        "ENGINE_STEP_SECONDS": float(env.get("ENGINE_STEP_SECONDS", "2")),
        "ENGINE_STEP_MEMORY_MB": int(env.get("ENGINE_STEP_MEMORY_MB", "256")),
        # PostgreSQL ends a statement, or a transaction left idle, that holds locks longer than this.
        "DATABASE_STATEMENT_TIMEOUT_SECONDS": int(env.get("DATABASE_STATEMENT_TIMEOUT_SECONDS", "30")),
        "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS": int(env.get("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS",
                                                                    "60")),
        # PostgreSQL connections each service process keeps open, and how many more it may open at a busy moment:
        # a synchronous worker uses one for its request and one for its timer sweep (README, "Production setup").
        "DATABASE_POOL_SIZE": int(env.get("DATABASE_POOL_SIZE", "5")),
        "DATABASE_MAX_OVERFLOW": int(env.get("DATABASE_MAX_OVERFLOW", "5")),
        "MAX_CONTENT_LENGTH": 25 * 1024 * 1024,
        "API_TITLE": "Step Pathways",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env.get("SESSION_COOKIE_SECURE", "false").lower() in ("1", "true", "yes"),
        **{key: int(env.get(key, default)) for key, default in SIGN_IN_DEFAULTS.items()},
    }


def engine_options(config: dict[str, Any]) -> dict[str, Any]:
    """SQLAlchemy engine options for the configured database (PostgreSQL: time limits on locks held; no JIT
    compilation, which pays only for long analytical statements and cost the workload's old grouped statement
    156 ms a call at 1,000,000 open cases (``pg_stat_statements``), where each of the service's statements reads
    a page or a capped count; the session's time zone UTC: the service reads and writes aware timestamps and does
    no date arithmetic in SQL, and psycopg then gives each timestamp in UTC, which it otherwise converts to the
    server's zone and the service converts back, a few microseconds per value, hundreds per page; and psycopg's
    cursor describing a result only when asked: ``service.pg_cursor``). A pooled connection is checked before use
    only when it has sat idle (``service.pool_checks``), not by ``pool_pre_ping`` at every request."""
    if not config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        return {}
    statement = config["DATABASE_STATEMENT_TIMEOUT_SECONDS"] * 1000
    idle = config["DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS"] * 1000
    return {"pool_size": config.get("DATABASE_POOL_SIZE", 5),
            "max_overflow": config.get("DATABASE_MAX_OVERFLOW", 5), "connect_args": {
        "options": f"-c statement_timeout={statement} -c idle_in_transaction_session_timeout={idle} -c timezone=UTC "
                   "-c jit=off",
        "cursor_factory": pg_cursor.Cursor}}


#: Signing in, sessions and tokens (docs/security.md); each may be set in the environment.
SIGN_IN_DEFAULTS: dict[str, int] = {
    "SIGN_IN_LOCK_AFTER": 5,  # failed attempts for one user name from one address ...
    "SIGN_IN_LOCK_MINUTES": 15,  # ... lock that name from that address this long
    "SIGN_IN_WINDOW_MINUTES": 15,  # the sliding window of the two rate limits below
    "SIGN_IN_LIMIT_PER_ACCOUNT": 20,  # attempts at one user name, from any address, in the window
    "SIGN_IN_LIMIT_PER_ADDRESS": 100,  # attempts from one address, at any user name, in the window
    "SESSION_IDLE_MINUTES": 30,  # a page session unused this long has ended
    "SESSION_LIFETIME_HOURS": 12,  # and any page session this long after signing in
    "API_TOKEN_DAYS": 90,  # how long a new API token lasts, unless told otherwise
    "PASSWORD_MIN_LENGTH": 12,
    "PROXY_HOPS": 0,  # reverse proxies in front of the service whose X-Forwarded-For is trusted
}


def _database_url(url: str | None, instance_path: str) -> str:
    if not url:
        return f"sqlite:///{Path(instance_path) / 'step-pathways.db'}"
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _instance_secret(instance_path: str) -> str:
    """A secret kept in the instance folder, so sessions survive a restart without configuration."""
    path = Path(instance_path) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        import secrets

        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()
