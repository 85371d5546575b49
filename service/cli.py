"""Command line: ``flask --app service deploy | users create | timers fire``."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from service import auth, deployments
from service.engine.bundle import DeploymentInvalid
from service.errors import ServiceError
from service.models import db

users = AppGroup("users", help="Manage users and their roles.")
timers = AppGroup("timers", help="Fire timers by hand.")


def init_app(app: Flask) -> None:
    app.cli.add_command(deploy)
    app.cli.add_command(demo_users)
    app.cli.add_command(users)
    app.cli.add_command(timers)


@click.command("deploy")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def deploy(paths: tuple[Path, ...]) -> None:
    """Deploy pathway files (default: the bpmn/, dmn/ and forms/ folders)."""
    root = Path(current_app.config["PATHWAYS_ROOT"])
    files = deployments.read_folders(root, list(paths) or None)
    try:
        result = deployments.deploy(db.session, files, "cli")
    except DeploymentInvalid as error:
        for problem in error.problems:
            click.echo(f"{problem.file}: {problem.element or '-'}: {problem.message}", err=True)
        raise SystemExit(1) from None
    db.session.commit()
    state = "new deployment" if result.created else "no change"
    click.echo(f"deployment {result.deployment.id} ({state}): {len(files)} files")
    for version in result.processes:
        click.echo(f"  {version.key} v{version.version}")


@click.command("demo-users")
def demo_users() -> None:
    """Create the demo users the README lists (one per role of the reference pathways)."""
    from service.demo import DEMO_USERS, create_demo_users, demo_token

    create_demo_users(db.session)
    db.session.commit()
    for name in DEMO_USERS:
        click.echo(f"  {name:24} {', '.join(DEMO_USERS[name][1]):40} token {demo_token(name)}")


@users.command("create")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help="A role key; repeat for several.")
@click.option("--token", help="The API token to give (default: a new random one).")
@click.option("--password", help="A password for signing in to the pages.")
@click.option("--email", help="Where reminders and escalations are emailed.")
@click.option("--display-name", help="The name shown in the pages.")
def create_user(name: str, roles: tuple[str, ...], token: str | None, password: str | None, email: str | None,
                display_name: str | None) -> None:
    """Create (or update) a user and print their API token."""
    try:
        _, token = auth.save_user(db.session, name, list(roles), token=token, password=password, email=email,
                                  display_name=display_name)
    except ServiceError as error:
        raise click.ClickException(error.message) from None
    db.session.commit()
    click.echo(token)


@timers.command("fire")
@click.option("--now", "now", help="The instant to fire at (ISO 8601); default: the clock's now.")
def fire(now: str | None) -> None:
    """Fire every timer due at NOW and print how many fired."""
    from service import scheduler

    instant = None
    if now:
        try:
            instant = datetime.fromisoformat(now.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(f"'{now}' is not an ISO 8601 date-time", param_hint="--now") from None
    click.echo(scheduler.fire_due(current_app, instant))
