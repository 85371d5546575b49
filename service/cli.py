"""Command line: ``flask --app service councils | deploy | users | timers | demo-councils | demo-users``."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from service import auth, councils as council_service, deployments, tenancy
from service.engine import clock
from service.engine.bundle import DeploymentInvalid
from service.errors import ServiceError
from service.models import Council, User, db

users = AppGroup("users", help="Manage users and their roles in councils.")
timers = AppGroup("timers", help="Fire timers by hand, or run a timer worker process.")
councils = AppGroup("councils", help="The service's councils (the operator's commands).")
data = AppGroup("data", help="Data protection: key rotation, retention and erasure.")
audit_log = AppGroup("audit", help="The audit log's hash chain.")
scenarios_cli = AppGroup("scenarios", help="Scenario tests of pathways (run on a sandbox, never on real cases).")


def init_app(app: Flask) -> None:
    for command in (deploy, demo_councils, demo_users, users, timers, councils, data, audit_log, scenarios_cli):
        app.cli.add_command(command)


def _council(key: str) -> Council:
    council = tenancy.council_by_key(db.session, key)
    if council is None:
        known = ", ".join(c.key for c in council_service.list_councils(db.session)) or "none yet"
        raise click.BadParameter(f"there is no council '{key}' (councils: {known})", param_hint="--council")
    return council


@councils.command("create")
@click.argument("key")
@click.option("--name", required=True, help="The council's name, as its staff see it.")
@click.option("--country", default="england", show_default=True,
              type=click.Choice(["england", "wales", "scotland", "northern_ireland"]),
              help="Whose bank holidays are its non-working days.")
@click.option("--closure-day", "closure_days", multiple=True, help="A day the council is closed (YYYY-MM-DD).")
@click.option("--email-sender", help="The From address of its emails.")
@click.option("--admin", help="The user name of its first admin (their API token is printed).")
@click.option("--admin-email", help="The first admin's email address.")
def create_council(key: str, name: str, country: str, closure_days: tuple[str, ...], email_sender: str | None,
                   admin: str | None, admin_email: str | None) -> None:
    """Create a council with its first admin."""
    settings = {"country": country, "closure_days": list(closure_days), "email_sender": email_sender}
    try:
        council, token = council_service.create_council(db.session, key, name, admin=admin, admin_email=admin_email,
                                                        settings=settings)
    except ServiceError as error:
        raise click.ClickException(_explain(error)) from None
    db.session.commit()
    click.echo(f"council {council.key}: {council.name} ({council.country})")
    if token:
        click.echo(f"admin {admin}: token {token}")


@councils.command("list")
def list_councils() -> None:
    """Every council, with its counts (numbers only)."""
    for row in council_service.counts(db.session):
        cases = ", ".join(f"{n} {status}" for status, n in sorted(row["cases"].items())) or "no cases"
        click.echo(f"{row['key']:20} {row['name']:50} {row['pathways']} pathways, {cases}, "
                   f"{row['open_tasks']} open tasks, {row['staff']} staff")


@click.command("deploy")
@click.option("--council", "council_key", required=True, help="The council to deploy into (its key).")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def deploy(council_key: str, paths: tuple[Path, ...]) -> None:
    """Deploy pathway files into a council (default: the bpmn/, dmn/ and forms/ folders)."""
    tenancy.act_for(db.session, _council(council_key))
    root = Path(current_app.config["PATHWAYS_ROOT"])
    files = deployments.read_folders(root, list(paths) or None)
    try:
        result = deployments.deploy(db.session, files, "cli", source="cli")  # the operator: published at once
    except DeploymentInvalid as error:
        for problem in error.problems:
            click.echo(f"{problem.file}: {problem.element or '-'}: {problem.message}", err=True)
        raise SystemExit(1) from None
    db.session.commit()
    _print_deployment(council_key, result, f"{len(files)} files")


def _print_deployment(council_key: str, result: deployments.DeployResult, what: str) -> None:
    state = "new deployment" if result.created else "no change"
    click.echo(f"{council_key}: deployment {result.deployment.id} ({state}): {what}")
    for version in result.processes:
        click.echo(f"  {version.key} v{version.version}")


@scenarios_cli.command("run")
@click.argument("council_key")
@click.argument("key")
@click.option("--version", "number", type=int, help="The version to test (default: the newest).")
def run_scenarios(council_key: str, key: str, number: int | None) -> None:
    """Run the scenario tests of a council's pathway KEY and keep the results; exit 1 if one fails."""
    from service import scenario_runs
    from service.models import ProcessVersion

    tenancy.act_for(db.session, _council(council_key))
    query = select(ProcessVersion).where(ProcessVersion.key == key)
    query = query.where(ProcessVersion.version == number) if number else query.order_by(ProcessVersion.version.desc())
    version = db.session.scalars(query.limit(1)).first()
    if version is None:
        raise click.ClickException(f"{council_key} has no pathway '{key}'" + (f" version {number}" if number else ""))
    results = scenario_runs.run_version(db.session, version, "on_demand", "cli")
    db.session.commit()
    click.echo(f"{council_key}: {key} v{version.version}: {len(results)} scenario"
               f"{'s' if len(results) != 1 else ''}")
    for result in results:
        click.echo(f"{'PASS' if result.passed else 'FAIL'} {result.name} ({result.title}, {result.seconds:.3f} s)")
        for step in result.steps:
            click.echo(f"  step {step.number} ({step.action}): {'passed' if step.passed else step.message}")
    if not all(r.passed for r in results):
        raise SystemExit(1)


@click.command("demo-councils")
def demo_councils() -> None:
    """Create the five reference councils (once) and deploy each one's own pathways into it."""
    from service.demo import create_reference_councils

    try:
        created = create_reference_councils(db.session, Path(current_app.config["PATHWAYS_ROOT"]))
    except DeploymentInvalid as error:
        for problem in error.problems:
            click.echo(f"{problem.file}: {problem.element or '-'}: {problem.message}", err=True)
        raise SystemExit(1) from None
    db.session.commit()
    for council, result in created:
        _print_deployment(council.key, result, f"{len(result.processes)} pathways")


@click.command("demo-users")
def demo_users() -> None:
    """Create the demo users the README lists (per council and role, the regional team, the operator)."""
    from service.demo import create_demo_users, demo_token

    for name in create_demo_users(db.session):
        click.echo(f"  {name:45} token {demo_token(name)}")
    db.session.commit()


@users.command("create")
@click.argument("name")
@click.option("--council", "council_key", help="The council the roles are held in (its key).")
@click.option("--role", "roles", multiple=True, help="A role key in that council; repeat for several.")
@click.option("--operator", is_flag=True, help="The service's operator: creates councils, reads no case data.")
@click.option("--token", help="The API token to give (default: a new random one).")
@click.option("--password", help="A password for signing in to the pages.")
@click.option("--email", help="Where reminders and escalations are emailed.")
@click.option("--display-name", help="The name shown in the pages.")
def create_user(name: str, council_key: str | None, roles: tuple[str, ...], operator: bool, token: str | None,
                password: str | None, email: str | None, display_name: str | None) -> None:
    """Create (or update) a user, give them roles in a council, and print their API token."""
    if roles and not council_key:
        raise click.BadParameter("roles are held in a council: add --council KEY", param_hint="--role")
    council = _council(council_key) if council_key else None
    try:
        _, token = auth.save_user(db.session, name, list(roles), council=council, token=token, password=password,
                                  email=email, display_name=display_name, operator=operator or None)
    except ServiceError as error:
        raise click.ClickException(_explain(error)) from None
    db.session.commit()
    click.echo(token or f"{name} keeps their API tokens (issue another with: flask users token {name})")


def _user(name: str):
    user = db.session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise click.BadParameter(f"there is no user '{name}'", param_hint="NAME")
    return user


@users.command("token")
@click.argument("name")
@click.option("--days", type=click.IntRange(min=1), help="How long it lasts (default: API_TOKEN_DAYS, 90).")
@click.option("--label", default="", help="What it is for, e.g. 'case management system'.")
def issue_token(name: str, days: int | None, label: str) -> None:
    """Issue another API token for a user and print it (shown only now; it expires, and can be revoked)."""
    token = auth.issue_token(db.session, _user(name), label=label, days=days)
    db.session.commit()
    click.echo(token)


@users.command("tokens")
@click.argument("name")
def list_tokens(name: str) -> None:
    """A user's API tokens: id, label, issued, expires, revoked, last used."""
    for row in auth.tokens_of(db.session, _user(name)):
        state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else f"expires {row.expires_at:%Y-%m-%d}"
        used = f"last used {row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never used"
        click.echo(f"{row.id:6} {row.label or '-':30} issued {row.created_at:%Y-%m-%d} {state}, {used}")


@users.command("revoke-token")
@click.argument("name")
@click.argument("token_id", type=int)
def revoke_token(name: str, token_id: int) -> None:
    """Revoke one of a user's API tokens (its id from `flask users tokens NAME`)."""
    try:
        auth.revoke_token(db.session, _user(name), token_id=token_id)
    except ServiceError as error:
        raise click.ClickException(_explain(error)) from None
    db.session.commit()
    click.echo(f"token {token_id} of {name} revoked")


def _explain(error: ServiceError) -> str:
    details = "; ".join(f"{key}: {value}" for key, value in (error.detail.get("errors") or {}).items())
    return f"{error.message}{f' ({details})' if details else ''}"


@timers.command("fire")
@click.option("--now", "now", help="The instant to fire at (ISO 8601); default: the clock's now.")
def fire(now: str | None) -> None:
    """Fire every timer due at NOW, in every council, and print how many fired."""
    from service import scheduler

    instant = None
    if now:
        try:
            instant = datetime.fromisoformat(now.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(f"'{now}' is not an ISO 8601 date-time", param_hint="--now") from None
    click.echo(scheduler.fire_due(current_app, instant))


@timers.command("run")
def run_timers() -> None:
    """Run the timer service in this process until SIGTERM or Ctrl-C: a separate timer worker.

    Fires due timers in batches with TIMER_WORKERS threads and wakes at the next due one (on PostgreSQL also
    when another process's commit changes a timer). Run the web processes with TIMERS_ENABLED=false then.
    """
    import signal
    import threading

    from service import scheduler

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    service = scheduler.TimerService(current_app._get_current_object())
    service.start()
    click.echo("timer worker running", err=True)
    while not stop.wait(1.0):
        pass
    service.shutdown()
    click.echo("timer worker stopped", err=True)


@data.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt every stored value with the current key (the first of DATA_ENCRYPTION_KEYS)."""
    from service import encryption

    from service import families

    with tenancy.all_councils(db.session):
        counts = encryption.rotate(db.session)
        db.session.commit()
        people = families.reindex(db.session)  # the blind index under the key derived from the new key
        db.session.commit()
    for column, count in counts.items():
        click.echo(f"{column}: {count} values re-encrypted")
    click.echo(f"search index: {people} people indexed again")
    click.echo("every value is now under the current key: the other keys can be removed from DATA_ENCRYPTION_KEYS")


@data.command("erase-due")
@click.option("--dry-run", is_flag=True, help="List what is due, erase nothing.")
def erase_due(dry_run: bool) -> None:
    """Erase every closed case whose retention period has ended, in every council."""
    from service import retention

    total = 0
    for council in council_service.list_councils(db.session):
        tenancy.act_for(db.session, council)
        for case, rule in retention.due(db.session, council, current_app.config.get("DEFAULT_RETENTION_DAYS")):
            click.echo(f"{council.key}: case {case.id} ({case.process.key}, closed {case.updated_at:%Y-%m-%d}): "
                       f"{'due' if dry_run else 'erased'} by the rule {rule}")
            if not dry_run:
                retention.erase(db.session, case, rule, council)
                db.session.commit()
            total += 1
    db.session.rollback()
    click.echo(f"{total} cases {'due for erasure' if dry_run else 'erased'}")
    _remove_unused_rehearsals(dry_run)


def _remove_unused_rehearsals(dry_run: bool) -> None:
    """Rehearsals unused for REHEARSAL_RETENTION_DAYS go too: they are not cases, and may hold realistic answers."""
    from service import rehearsals

    days, total = current_app.config["REHEARSAL_RETENTION_DAYS"], 0
    before = clock.now() - timedelta(days=days)
    for council in council_service.list_councils(db.session):
        tenancy.act_for(db.session, council)
        unused = (rehearsals.unused_since if dry_run else rehearsals.remove_unused)(db.session, before)
        for row in unused:
            click.echo(f"{council.key}: rehearsal {row.id} (unused since {row.updated_at:%Y-%m-%d}): "
                       f"{'due' if dry_run else 'removed'}, unused for over {days} days")
        if not dry_run:
            db.session.commit()
        total += len(unused)
    db.session.rollback()
    click.echo(f"{total} rehearsals {'due for removal' if dry_run else 'removed'}")


@audit_log.command("seal")
def seal_audit() -> None:
    """Chain every council's audit events written since the last seal (the timer sweep also does)."""
    from service import audit

    click.echo(f"{audit.seal_all(db.session)} events sealed")


@audit_log.command("verify")
@click.option("--council", "council_key", help="One council (its key); default: every council.")
def verify_audit(council_key: str | None) -> None:
    """Seal what is new, then recompute each council's audit chain; name the first event that does not fit."""
    from service import audit

    audit.seal_all(db.session)
    broken = False
    for council in [_council(council_key)] if council_key else council_service.list_councils(db.session):
        tenancy.act_for(db.session, council)
        verdict = audit.verify(db.session, council)
        if verdict.intact:
            click.echo(f"{council.key}: {verdict.events} events, the chain is intact")
            continue
        broken = True
        where = f"event {verdict.broken_at}" if verdict.broken_at else "the end of the chain"
        click.echo(f"{council.key}: the chain breaks at {where} (after {verdict.events} good events): "
                   f"{verdict.reason}", err=True)
    db.session.rollback()
    if broken:
        raise SystemExit(1)
