"""Reading DMN XML by local name, so every DMN namespace (1.1 to 1.5) reads the same."""
from __future__ import annotations


def local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def children(el, name: str) -> list:
    return [c for c in el if local(c.tag) == name]


def child(el, name: str):
    if el is None:
        return None
    for c in el:
        if local(c.tag) == name:
            return c
    return None


def text_of(el) -> str | None:
    """The ``<text>`` child of an element (DMN 1.1+), stripped, or None."""
    t = child(el, "text")
    return None if t is None else (t.text or "").strip()


def href_id(href: str | None) -> str | None:
    """The element id an href points at (``#id`` or ``namespace#id``)."""
    if not href:
        return None
    return href.rsplit("#", 1)[-1] if "#" in href else href


def href_namespace(href: str | None) -> str | None:
    """The namespace part of ``namespace#id``, or None for a local ``#id``."""
    if not href or "#" not in href or href.startswith("#"):
        return None
    return href.rsplit("#", 1)[0]
