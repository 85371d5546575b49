"""Who may do what: every access rule of the service, in one place.

The pages, the REST API and the timers call the service layer, and the service layer asks this module;
no view holds a rule of its own. Which council's data a request can reach at all is settled before any
rule here runs (``service.tenancy``): roles are the acting user's roles *in the acting council*, so
``social_worker`` here is this council's social worker and nobody else's.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from service import wording
from service.errors import Forbidden

ADMIN = "admin"
ANALYST = "analyst"
OPERATOR = "operator"
AUDITOR = "auditor"
PATHWAY_APPROVER = "pathway_approver"


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user in one council, or the service itself (timers, hand-overs)."""

    name: str
    roles: tuple[str, ...] = ()
    user_id: int | None = None
    council_id: int | None = None

    @property
    def is_admin(self) -> bool:
        """The council's administrator: sees and may complete any task of the council (audited as such)."""
        return ADMIN in self.roles

    @property
    def is_manager(self) -> bool:
        """A manager: holds ``team_manager`` or any role ending in ``_manager`` (``peh_manager``,
        ``csc_team_manager``, ``emergency_duty_manager`` ...), or is the council's admin. A manager sees the
        workload of the pathways their roles belong to, opens any task of those pathways, and gives tasks
        to others (see :func:`may_open_task`, :func:`may_assign`)."""
        return self.is_admin or any(is_manager_role(r) for r in self.roles)

    def without_admin(self) -> Actor:
        return Actor(self.name, tuple(r for r in self.roles if r != ADMIN), self.user_id, self.council_id)


def is_manager_role(role: str) -> bool:
    """``team_manager`` and every ``*_manager`` role are managers' roles (not ``manager`` alone, nor
    ``casemanager``: a role is named for what it is, and a manager's name says so)."""
    return role == "team_manager" or role.endswith("_manager")


def has_any_role(actor: Actor, roles: Iterable[str]) -> bool:
    return bool(set(roles) & set(actor.roles))


def require_role(actor: Actor, *roles: str) -> None:
    """403 unless ``actor`` holds one of ``roles`` in the acting council (the council's admin always does)."""
    if not has_any_role(actor, (*roles, ADMIN)):
        raise Forbidden(f"this needs the role {wording.roles_in_words(roles)}")


def may_see_pathway(pathway_roles: Iterable[str], actor: Actor) -> bool:
    """A pathway's cases are for the holders of its roles (its lanes and candidate groups) and the admin."""
    return actor.is_admin or has_any_role(actor, pathway_roles)


def may_start(pathway_roles: Iterable[str], starter_roles: Iterable[str], actor: Actor) -> bool:
    """A case of a pathway is started by a holder of one of its roles, or of a role the diagram names as a
    starter (``camunda:candidateStarterGroups``: the referrer from another team), or the admin, or the
    service itself: nobody else can put referrals in a team's inbox, or follow a case for good by starting it."""
    return may_see_pathway(pathway_roles, actor) or has_any_role(actor, starter_roles)


def may_see_case(pathway_roles: Iterable[str], started_by_id: int | None, actor: Actor) -> bool:
    """The case's pathway roles, the admin, and whoever started it (they follow their own referral). The
    case's notes and documents are part of its record: the same people read them, add a note, upload and
    download a document (``service.case_records``)."""
    return may_see_pathway(pathway_roles, actor) or _is(started_by_id, actor)


def _is(user_id: int | None, actor: Actor) -> bool:
    """``user_id`` is the acting user: people are compared by id, never by name (a later user given a
    deleted user's name is someone else, and inherits nothing)."""
    return user_id is not None and actor.user_id is not None and user_id == actor.user_id


def may_see_people(actor: Actor) -> bool:
    """The council's children and families (names, dates of birth, numbers, who is in which family) are for
    every worker of the council who works on cases, whatever their pathway: the front door must see whether
    a child is already known before it opens a referral. Not for an analyst or an auditor alone. What happens
    in a case stays for whoever may see that case (:func:`may_see_case`)."""
    return actor.is_admin or any(r not in (ANALYST, AUDITOR, OPERATOR) for r in actor.roles)


def require_people(actor: Actor) -> None:
    if not may_see_people(actor):
        raise Forbidden("children's and families' records are for the council's case workers")


def may_work_on(task_roles: Iterable[str], assignee_id: int | None, actor: Actor) -> bool:
    """An assigned task is its assignee's (and the admin's); an unassigned one is for any holder of its roles."""
    if actor.is_admin or _is(assignee_id, actor):
        return True
    return assignee_id is None and has_any_role(actor, task_roles)


def may_open_task(task_roles: Iterable[str], assignee_id: int | None, pathway_roles: Iterable[str],
                  actor: Actor) -> bool:
    """Who may open (read) a task: whoever may work on it, and a manager of its team (a manager whose roles
    belong to the task's pathway), to see what is held up and give it to someone. Opening is not doing:
    completing or drafting still needs :func:`may_work_on`."""
    return may_work_on(task_roles, assignee_id, actor) or (actor.is_manager and may_see_pathway(pathway_roles, actor))


def may_assign(task_roles: Iterable[str], pathway_roles: Iterable[str], actor: Actor) -> bool:
    """Who may take a task (a holder of one of its roles) or give it to someone (a manager who can see the
    pathway's cases: their team's work, whatever the task's own role)."""
    return has_any_role(actor, task_roles) or (actor.is_manager and may_see_pathway(pathway_roles, actor))


def may_give_tasks(actor: Actor) -> bool:
    """Only a manager (or the admin) gives a task to someone else."""
    return actor.is_manager


def may_cancel(actor: Actor) -> bool:
    """Cancelling a case ends a child's involvement without an outcome: the council's admin only."""
    return actor.is_admin


def may_broadcast(actor: Actor) -> bool:
    """A signal from outside reaches every waiting case of the council: its admin's to send."""
    return actor.is_admin


def may_deploy(actor: Actor) -> bool:
    return actor.is_admin or ANALYST in actor.roles


def may_analyse(actor: Actor) -> bool:
    """The analyst workspace (``service.analyst``): the council's pathways, their versions, files and diffs,
    and their cases by version and status with each case's error (no child's name, no answers): the
    council's analysts, its pathway approvers (who read the diff before publishing) and its admin. The council is the acting one (``service.tenancy``): an analyst of
    another council never reaches this council's pathways at all."""
    return actor.is_admin or has_any_role(actor, (ANALYST, PATHWAY_APPROVER))


def require_analyst(actor: Actor) -> None:
    if not may_analyse(actor):
        raise Forbidden("the analyst workspace is for the council's analysts and pathway approvers")


def may_rehearse(actor: Actor) -> bool:
    """Rehearsing a pathway version in a sandbox (``service.rehearsals``: made-up answers on a clock of its own,
    never a real case): whoever may read the version in the workspace (:func:`may_analyse`), so that an approver
    can rehearse a draft before publishing it. The rehearsals of a council are its analysts' together (one can
    pick up another's). Adding a rehearsal's scenario to the pathway is a deployment: :func:`require_deployer`."""
    return may_analyse(actor)


def require_rehearser(actor: Actor) -> None:
    if not may_rehearse(actor):
        raise Forbidden("rehearsing pathways is for the council's analysts and pathway approvers")


def require_scenario_runner(actor: Actor) -> None:
    """Running a version's scenario tests on demand (``service.scenario_runs``): whoever may read the analyst
    workspace (its analysts, pathway approvers and admin). A scenario runs on a sandbox: no case is touched."""
    if not may_analyse(actor):
        raise Forbidden("running scenario tests is for the council's analysts and pathway approvers")


def may_migrate(actor: Actor) -> bool:
    """Moving running cases from one version of a pathway to another (``service.case_migration``): the
    council's analysts and pathway approvers, and its admin. A worker never moves a case to another version."""
    return actor.is_admin or has_any_role(actor, (ANALYST, PATHWAY_APPROVER))


def require_migrator(actor: Actor) -> None:
    if not may_migrate(actor):
        raise Forbidden("moving cases to another version of a pathway needs the role analyst or pathway_approver")


def may_retry_in_workspace(actor: Actor) -> bool:
    """Running a case stopped on an error again, as it is, from the analyst workspace: the analyst who fixed
    the pathway's fault (or the admin). A retry changes no answer; it only runs the step again. Cancelling
    stays :func:`may_cancel`'s (the admin's): it ends a child's involvement."""
    return actor.is_admin or ANALYST in actor.roles


def require_deployer(actor: Actor) -> None:
    if not may_deploy(actor):
        raise Forbidden("deploying pathways needs the role analyst")


def publishes_directly(actor: Actor, requires_approval: bool) -> bool:
    """An upload is live at once only where the council lets its analysts publish (``requires_approval`` off);
    everywhere else it is a draft until a second person publishes it (:func:`require_publisher`)."""
    return may_deploy(actor) and not requires_approval


def may_publish(actor: Actor, author_id: int | None, requires_approval: bool) -> bool:
    """Four eyes: a draft is published by a ``pathway_approver`` (or the admin) who is not its author. Where
    the council lets analysts publish directly, its analysts (the author too) may publish it. The pages ask
    this to offer the button; :func:`require_publisher` enforces it."""
    if publishes_directly(actor, requires_approval):
        return True
    return (actor.is_admin or PATHWAY_APPROVER in actor.roles) and not _is(author_id, actor)


def require_publisher(actor: Actor, author_id: int | None, requires_approval: bool) -> None:
    if may_publish(actor, author_id, requires_approval):
        return
    if not (actor.is_admin or PATHWAY_APPROVER in actor.roles):
        raise Forbidden("publishing a pathway needs a second person with the role pathway_approver")
    raise Forbidden("you deployed this draft: another pathway approver must publish it (four eyes)")


def may_reject(actor: Actor, author_id: int | None) -> bool:
    """A draft is turned down by a pathway approver (or the admin), or withdrawn by its author."""
    return actor.is_admin or PATHWAY_APPROVER in actor.roles or (_is(author_id, actor) and may_deploy(actor))


def require_rejecter(actor: Actor, author_id: int | None) -> None:
    if not may_reject(actor, author_id):
        raise Forbidden("rejecting a draft needs the role pathway_approver (or being its author)")


def may_suspend(actor: Actor) -> bool:
    """Stopping new cases of a pathway at once is for its analysts as well as its approvers: it harms no case."""
    return may_deploy(actor) or PATHWAY_APPROVER in actor.roles


def require_suspender(actor: Actor) -> None:
    if not may_suspend(actor):
        raise Forbidden("suspending a pathway needs the role analyst or pathway_approver")


def may_release(actor: Actor) -> bool:
    """Resuming a suspended pathway (new cases start again) and retiring one are a pathway approver's."""
    return actor.is_admin or PATHWAY_APPROVER in actor.roles


def require_releaser(actor: Actor) -> None:
    if not may_release(actor):
        raise Forbidden("this needs the role pathway_approver")


def require_auditor(actor: Actor) -> None:
    """The access log is the auditor's alone: not even the admin, whose own reads it records, reads it."""
    if AUDITOR not in actor.roles:
        raise Forbidden("the access log is for the council's auditor")


def may_raise_immediate_risk(pathway_roles: Iterable[str], started_by_id: int | None, actor: Actor) -> bool:
    """Anyone who may see a case may raise immediate risk on it: nothing stands between a worker who sees
    a child at risk and the urgent referral (the referrer who started the case included)."""
    return may_see_case(pathway_roles, started_by_id, actor)


def may_read_notification(owner_id: int, actor: Actor) -> bool:
    """A reminder or escalation is its addressee's alone (not even the admin reads someone else's)."""
    return actor.user_id is not None and owner_id == actor.user_id
