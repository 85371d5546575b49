"""The reference councils and demo users for `make run`: each council with its own pathways and people.

Never use the demo users on a real service: their tokens and passwords are printed in the README.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from service import councils, deployments, tenancy
from service.auth import save_user
from service.models import Council


@dataclass(frozen=True)
class ReferenceCouncil:
    key: str  # also the key prefix of its pathway files (``halton_step_up.bpmn``)
    name: str
    country: str
    email_sender: str
    brand_colour: str


REFERENCE_COUNCILS = (
    ReferenceCouncil("carmarthenshire", "Carmarthenshire County Council", "wales",
                     "tim-o-amgylch-y-teulu@carmarthenshire.demo.invalid", "#00703c"),
    ReferenceCouncil("somerset", "Somerset Council", "england", "early-help@somerset.demo.invalid", "#1d70b8"),
    ReferenceCouncil("halton", "Halton Borough Council", "england", "icart@halton.demo.invalid", "#4c2c92"),
    ReferenceCouncil("afc", "Achieving for Children (Kingston and Richmond)", "england",
                     "spa@afc.demo.invalid", "#d4351c"),
    ReferenceCouncil("rochdale", "Rochdale Borough Council", "england", "frt@rochdale.demo.invalid", "#005ea5"),
)

#: council key -> {user name suffix: (display name, roles)}. The user is ``<council>.<suffix>``;
#: token "demo-<user>", password "demo-<user>-password".
DEMO_USERS: dict[str, dict[str, tuple[str, list[str]]]] = {
    "carmarthenshire": {
        "emergency.duty": ("Elis (emergency duty team)", ["emergency_duty_team"]),
        "emergency.duty.manager": ("Eira (emergency duty manager)", ["emergency_duty_manager"]),
        "admin": ("Ceri Admin (Carmarthenshire)", ["admin"]),
        "analyst": ("Ann Analyst (Carmarthenshire)", ["analyst"]),
        "approver": ("Alys Approver (Carmarthenshire)", ["pathway_approver"]),  # publishes analysts' drafts (four eyes)
        "social.worker": ("Sam Social Worker", ["social_worker"]),
        "taf.coordinator": ("Cai Coordinator (TAF)", ["taf_coordinator"]),
        "taf.manager": ("Meg Manager (TAF)", ["taf_manager"]),
        "keyworker": ("Kim Keyworker", ["keyworker"]),
        "crt": ("Rhys (Central Referral Team)", ["crt"]),
        "crt.manager": ("Gwen (CRT manager)", ["crt_manager"]),
    },
    "somerset": {
        "emergency.duty": ("Ed (emergency duty team)", ["emergency_duty_team"]),
        "emergency.duty.manager": ("Elsie (emergency duty manager)", ["emergency_duty_manager"]),
        "admin": ("Sian Admin (Somerset)", ["admin"]),
        "analyst": ("Alan Analyst (Somerset)", ["analyst"]),
        "approver": ("Amir Approver (Somerset)", ["pathway_approver"]),  # publishes analysts' drafts (four eyes)
        "lead.practitioner": ("Lee Lead Practitioner", ["lead_practitioner"]),
        "early.help.hub": ("Hana (Early Help Hub)", ["early_help_hub"]),
        "stepping.in": ("Steph (stepping-in service)", ["stepping_in_service"]),
        "somerset.direct": ("Dev (Somerset Direct)", ["somerset_direct"]),
        "early.help.manager": ("Emma (Early Help manager)", ["early_help_manager"]),
        "senior.manager": ("Sol (senior manager)", ["senior_manager"]),
        "social.worker": ("Sasha Social Worker (Somerset)", ["social_worker"]),
        "team.manager": ("Toby Team Manager (Somerset)", ["team_manager"]),
    },
    "halton": {
        "emergency.duty": ("Ewan (emergency duty team)", ["emergency_duty_team"]),
        "emergency.duty.manager": ("Edith (emergency duty manager)", ["emergency_duty_manager"]),
        "admin": ("Hari Admin (Halton)", ["admin"]),
        "analyst": ("Hope Analyst (Halton)", ["analyst"]),
        "approver": ("Holly Approver (Halton)", ["pathway_approver"]),  # publishes analysts' drafts (four eyes)
        "lead.professional": ("Pat Lead Professional", ["lead_professional"]),
        "team.manager": ("Tess Team Manager", ["team_manager"]),
        "icart": ("Ian (iCART)", ["icart"]),
        "early.intervention": ("Eve (early intervention)", ["early_intervention"]),
        "divisional.manager": ("Dina (divisional manager)", ["divisional_manager"]),
        "social.worker": ("Harvey Social Worker (Halton)", ["social_worker"]),
    },
    "afc": {
        "emergency.duty": ("Ezra (emergency duty team)", ["emergency_duty_team"]),
        "emergency.duty.manager": ("Esme (emergency duty manager)", ["emergency_duty_manager"]),
        "admin": ("Ada Admin (AfC)", ["admin"]),
        "analyst": ("Abi Analyst (AfC)", ["analyst"]),
        "approver": ("Asha Approver (AfC)", ["pathway_approver"]),  # publishes analysts' drafts (four eyes)
        "peh.practitioner": ("Pip (PEH practitioner)", ["peh_practitioner"]),
        "peh.manager": ("Pam (PEH manager)", ["peh_manager"]),
        "csc.social.worker": ("Cal (CSC social worker)", ["csc_social_worker"]),
        "csc.manager": ("Cora (CSC team manager)", ["csc_manager"]),
        "spa": ("Sid (Single Point of Access)", ["spa"]),
        "spa.manager": ("Sue (SPA manager)", ["spa_manager"]),
        "head.integrated.working": ("Hal (Head of Integrated Working)", ["head_of_integrated_working"]),
    },
    "rochdale": {
        "emergency.duty": ("Eli (emergency duty team)", ["emergency_duty_team"]),
        "emergency.duty.manager": ("Enid (emergency duty manager)", ["emergency_duty_manager"]),
        "admin": ("Rob Admin (Rochdale)", ["admin"]),
        "analyst": ("Ria Analyst (Rochdale)", ["analyst"]),
        "approver": ("Rafe Approver (Rochdale)", ["pathway_approver"]),  # publishes analysts' drafts (four eyes)
        "lead.professional": ("Lou Lead Professional (Rochdale)", ["lead_professional"]),
        "team.manager": ("Tom Team Manager (Rochdale)", ["team_manager"]),
        "frt": ("Fred (First Response Team)", ["frt"]),
        "caf.team": ("Cath (CAF team)", ["caf_team"]),
        "social.worker": ("Rosa Social Worker (Rochdale)", ["social_worker"]),
    },
}
#: Regional staff who work for more than one council, picking the council they act for.
REGIONAL_USERS: dict[str, tuple[str, dict[str, list[str]]]] = {
    "regional.duty.worker": ("Reg (regional emergency duty team)",
                             {"halton": ["social_worker"], "rochdale": ["social_worker"]}),
}
OPERATOR = "operator"


def demo_token(name: str) -> str:
    return f"demo-{name}"


def demo_password(name: str) -> str:
    return f"demo-{name}-password"


def demo_user_names() -> list[str]:
    return [f"{council}.{suffix}" for council, users in DEMO_USERS.items() for suffix in users] + \
        list(REGIONAL_USERS) + [OPERATOR]


def create_reference_councils(session: Session, root: Path) -> list[tuple[Council, deployments.DeployResult]]:
    """Create each reference council (once) and deploy into it the pathway files named with its key."""
    created = []
    for reference in REFERENCE_COUNCILS:
        council = tenancy.council_by_key(session, reference.key)
        if council is None:
            council, _ = councils.create_council(session, reference.key, reference.name, settings={
                "country": reference.country, "email_sender": reference.email_sender,
                "brand_colour": reference.brand_colour})
        tenancy.act_for(session, council)
        files = {name: content for name, content in deployments.read_folders(root).items()
                 if name.split("_", 1)[0] == reference.key}
        created.append((council, deployments.deploy(session, files, "cli", source="cli")))
        tenancy.leave(session)
    return created


def create_demo_users(session: Session) -> list[str]:
    """The demo users of every reference council, the regional team and the operator."""
    by_key = {c.key: c for c in councils.list_councils(session)}
    for council_key, users in DEMO_USERS.items():
        for suffix, (display_name, roles) in users.items():
            _save(session, f"{council_key}.{suffix}", display_name, by_key[council_key], roles)
    for name, (display_name, memberships) in REGIONAL_USERS.items():
        for council_key, roles in memberships.items():
            _save(session, name, display_name, by_key[council_key], roles)
    save_user(session, OPERATOR, [], token=demo_token(OPERATOR), password=demo_password(OPERATOR),
              email=f"{OPERATOR}@demo.invalid", display_name="Olu (service operator)", operator=True)
    return demo_user_names()


def _save(session: Session, name: str, display_name: str, council: Council, roles: list[str]) -> None:
    save_user(session, name, roles, council=council, token=demo_token(name), password=demo_password(name),
              email=f"{name}@demo.invalid", display_name=display_name)
