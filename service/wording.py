"""Codes as people say them: role keys, outcomes and other codes no form or diagram labels.

Kept free of imports from the rest of the service, so that the service layer's own messages (a refusal naming
the roles a task is for) can use the words the pages use.
"""
from __future__ import annotations

import re
from typing import Any

#: Short codes in role names and outcomes that people say as letters.
ACRONYMS = {"crt", "spa", "frt", "icart", "taf", "tac", "peh", "csc", "edt", "mash", "cin", "cp", "caf", "eha", "jaff",
            "sw", "nhs", "dsl", "iro", "lado", "nfa", "s47", "afc"}


def words(code: Any) -> str:
    """A code as words: 'step_up_agreed' -> 'step up agreed', 'jaffPart1' -> 'jaff part 1'."""
    text = re.sub(r"(?<=[a-z])(?=[A-Z0-9])", " ", str(code)).replace("_", " ")
    return re.sub(r"\s+", " ", text).strip().lower()


def label_from_key(key: str) -> str:
    """A code as words, acronyms in capitals: 'tac_continues' -> 'TAC continues'."""
    text = " ".join(w.upper() if w in ACRONYMS else w for w in words(key).split())
    return text[:1].upper() + text[1:] if text else str(key)


def role_label(role: str) -> str:
    """A role as people say it: 'crt' -> 'CRT', 'peh_manager' -> 'PEH manager', 'social_worker' -> 'Social worker'."""
    return label_from_key(role)


def roles_in_words(roles: list[str] | tuple[str, ...] | set[str]) -> str:
    """Roles as a phrase: ['crt', 'team_manager'] -> 'CRT or team manager'."""
    return " or ".join(_inside_sentence(role_label(r)) for r in sorted(roles))


def _inside_sentence(label: str) -> str:
    first = label.split(" ", 1)[0]
    return label if first.isupper() else label[:1].lower() + label[1:]
