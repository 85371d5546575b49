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
    "social.worker": ("Sam Social Worker", ["social_worker"]),
    "taf.coordinator": ("Cai Coordinator (TAF)", ["taf_coordinator"]),
    "taf.manager": ("Meg Manager (TAF)", ["taf_manager"]),
    "crt": ("Rhys (Central Referral Team)", ["crt", "crt_manager"]),
}


def demo_token(name: str) -> str:
    return f"demo-{name}"


def demo_password(name: str) -> str:
    return f"demo-{name}-password"


def create_demo_users(session: Session) -> list[str]:
    for name, (display_name, roles) in DEMO_USERS.items():
        save_user(session, name, roles, token=demo_token(name), password=demo_password(name),
                  email=f"{name}@demo.invalid", display_name=display_name)
    return list(DEMO_USERS)
