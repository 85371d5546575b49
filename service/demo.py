"""Demo users for `make run`: one per role of the reference pathways, with known tokens and passwords.

Never use these on a real service: their tokens and passwords are printed in the README.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from service.auth import save_user

#: name -> (display name, roles). Token: "demo-<name>"; password: "demo-<name>-password".
DEMO_USERS: dict[str, tuple[str, list[str]]] = {
    "admin": ("Ada Admin", ["admin"]),
    "analyst": ("Ann Analyst", ["analyst"]),
    # Carmarthenshire
    "social.worker": ("Sam Social Worker", ["social_worker"]),
    "taf.coordinator": ("Cai Coordinator (TAF)", ["taf_coordinator"]),
    "taf.manager": ("Meg Manager (TAF)", ["taf_manager"]),
    "keyworker": ("Kim Keyworker", ["keyworker"]),
    "crt": ("Rhys (Central Referral Team)", ["crt"]),
    "crt.manager": ("Gwen (CRT manager)", ["crt_manager"]),
    # Somerset
    "lead.practitioner": ("Lee Lead Practitioner", ["lead_practitioner"]),
    "early.help.hub": ("Hana (Early Help Hub)", ["early_help_hub"]),
    "stepping.in": ("Steph (stepping-in service)", ["stepping_in_service"]),
    "somerset.direct": ("Dev (Somerset Direct)", ["somerset_direct"]),
    "early.help.manager": ("Emma (Early Help manager)", ["early_help_manager"]),
    "senior.manager": ("Sol (senior manager)", ["senior_manager"]),
    # Halton and Rochdale
    "lead.professional": ("Pat Lead Professional", ["lead_professional"]),
    "team.manager": ("Tess Team Manager", ["team_manager"]),
    "icart": ("Ian (iCART)", ["icart"]),
    "early.intervention": ("Eve (early intervention)", ["early_intervention"]),
    "divisional.manager": ("Dina (divisional manager)", ["divisional_manager"]),
    "frt": ("Fred (First Response Team)", ["frt"]),
    "caf.team": ("Cath (CAF team)", ["caf_team"]),
    # Achieving for Children
    "peh.practitioner": ("Pip (PEH practitioner)", ["peh_practitioner"]),
    "peh.manager": ("Pam (PEH manager)", ["peh_manager"]),
    "csc.social.worker": ("Cal (CSC social worker)", ["csc_social_worker"]),
    "csc.manager": ("Cora (CSC team manager)", ["csc_manager"]),
    "spa": ("Sid (Single Point of Access)", ["spa"]),
    "spa.manager": ("Sue (SPA manager)", ["spa_manager"]),
    "head.integrated.working": ("Hal (Head of Integrated Working)", ["head_of_integrated_working"]),
}


def demo_token(name: str) -> str:
    return f"demo-{name}"


def demo_password(name: str) -> str:
    return f"demo-{name}-password"


def demo_roles() -> set[str]:
    return {role for _, roles in DEMO_USERS.values() for role in roles}


def create_demo_users(session: Session) -> list[str]:
    for name, (display_name, roles) in DEMO_USERS.items():
        save_user(session, name, roles, token=demo_token(name), password=demo_password(name),
                  email=f"{name}@demo.invalid", display_name=display_name)
    return list(DEMO_USERS)
