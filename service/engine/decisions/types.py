"""FEEL types: `instance of`, item definitions and the coercion of a value to its declared type (DMN 1.5 10.3.2.9)."""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from .values import Function, Range, YMDuration, type_name

# spellings of the built-in types in FEEL, XSD and older DMN files
TYPE_ALIASES = {
    "dateTime": "date and time", "dayTimeDuration": "days and time duration",
    "yearMonthDuration": "years and months duration", "decimal": "number", "integer": "number",
    "int": "number", "long": "number", "double": "number", "float": "number", "any": "Any",
    "duration": "duration",
}
BUILTIN_TYPES = {"number", "string", "boolean", "date", "time", "date and time", "days and time duration",
                 "years and months duration", "Any", "Null", "context", "list", "function", "range", "duration"}


@dataclasses.dataclass
class ItemDef:
    """An itemDefinition: a base type or components, maybe a collection, maybe allowed values."""
    name: str
    base: Any = None                      # a type (name or tuple) when not structured
    components: dict | None = None        # name -> type, for structured definitions
    is_collection: bool = False
    allowed: Any = None                   # a UnaryTests, or None
    function: tuple | None = None         # ("function", params, result) for functionItem


def canonical(name: Any) -> Any:
    """A type name without its namespace prefix (feel:, xsd:, tns: of DMN 1.1 files) and with the FEEL
    spelling of the XSD words."""
    if not isinstance(name, str):
        return name
    bare = name.split(":", 1)[1] if ":" in name and " " not in name.split(":", 1)[0] else name
    return TYPE_ALIASES.get(bare, bare)


def _builtin_instance(v, t: str) -> bool:
    if t == "Any":
        return v is not None
    if t == "Null":
        return v is None
    if v is None:
        return False
    if t == "duration":
        return isinstance(v, (dt.timedelta, YMDuration))
    return type_name(v) == t


def instance_of(v, t, defs: dict | None = None, constraints: bool = False) -> bool:
    """Whether v is an instance of type t (DMN 1.5 10.3.2.9.1 conformance); ``constraints`` also checks
    item definitions' allowed values (as typed values must meet them, while `instance of` does not)."""
    t = canonical(t)
    if isinstance(t, str):
        if t in BUILTIN_TYPES:
            return _builtin_instance(v, t)
        item = (defs or {}).get(t) or (defs or {}).get(t.rsplit(".", 1)[-1])
        return _item_instance(v, item, defs, constraints) if item else False
    if v is None:
        return False
    kind = t[0]
    if kind == "list":
        return isinstance(v, list) and all(x is None or instance_of(x, t[1], defs) for x in v)
    if kind == "context":
        return isinstance(v, dict) and all(k in v and (v[k] is None or instance_of(v[k], ft, defs))
                                           for k, ft in t[1])
    if kind == "range":
        return isinstance(v, Range) and all(e is None or instance_of(e, t[1], defs) for e in (v.lo, v.hi))
    if kind == "function":
        return _function_instance(v, t, defs)
    return False


def _function_instance(v, t, defs) -> bool:
    if not isinstance(v, Function) or v.params is None:
        return isinstance(v, Function)
    if len(v.params) != len(t[1]):
        return False
    for declared, wanted in zip(v.param_types, t[1]):
        if declared is not None and not subtype(wanted, declared, defs):
            return False
    return v.result_type is None or subtype(v.result_type, t[2], defs)


def subtype(a, b, defs=None) -> bool:
    """Whether type a conforms to type b (enough of the lattice for function types)."""
    a, b = canonical(a), canonical(b)
    if b == "Any" or a == b:
        return True
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0]:
        if a[0] in ("list", "range"):
            return subtype(a[1], b[1], defs)
        if a[0] == "context":
            fa = dict(a[1])
            return all(k in fa and subtype(fa[k], tb, defs) for k, tb in b[1])
        if a[0] == "function":
            return (len(a[1]) == len(b[1]) and all(subtype(y, x, defs) for x, y in zip(a[1], b[1]))
                    and subtype(a[2], b[2], defs))
    return False


def _item_instance(v, item: ItemDef, defs, constraints: bool = False) -> bool:
    if item.is_collection:
        if not isinstance(v, list):
            return False
        single = dataclasses.replace(item, is_collection=False)
        return all(x is None or _item_instance(x, single, defs, constraints) for x in v)
    if item.function is not None:
        return instance_of(v, item.function, defs)
    if item.components is not None:
        return isinstance(v, dict) and all(k in v and (v[k] is None or instance_of(v[k], t, defs))
                                           for k, t in item.components.items())
    if item.base is not None and not instance_of(v, item.base, defs, constraints):
        return False
    return not constraints or item.allowed is None or item.allowed.matches(v) is True


def coerce(v, t, defs: dict | None = None):
    """v as a value of type t, or None when it does not conform (singleton lists are unwrapped/wrapped)."""
    t = canonical(t)
    if v is None or t is None or t == "Any":
        return v
    if instance_of(v, t, defs, constraints=True):
        return _coerce_members(v, t, defs)
    is_list_type = _is_list_type(t, defs)
    if isinstance(v, list) and len(v) == 1 and not is_list_type:
        return _converted(v[0], t, defs)  # "from singleton list": one level only, [[10]] is not a number
    if not isinstance(v, list) and is_list_type:
        return [v] if instance_of([v], t, defs, constraints=True) else None
    return _converted(v, t, defs)


def _converted(v, t, defs):
    """v when it conforms to t, a date as midnight UTC where a date and time is wanted, else None."""
    if instance_of(v, t, defs, constraints=True):
        return _coerce_members(v, t, defs)
    if _base_type(t, defs) == "date and time" and isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        moved = _utc_midnight(v)  # "date to date and time" (DMN 1.5 10.3.2.9.4)
        return moved if instance_of(moved, t, defs, constraints=True) else None
    return None


def _base_type(t, defs):
    """The built-in type a type name comes down to through simple item definitions, or None."""
    seen = set()
    while isinstance(t, str) and t not in BUILTIN_TYPES and t not in seen:
        seen.add(t)
        item = (defs or {}).get(t)
        if item is None or item.is_collection or item.components is not None:
            return None
        t = canonical(item.base)
    return t


def _utc_midnight(d: dt.date) -> dt.datetime:
    from .temporal import join, split  # a far date stays far
    base, shift, _ = split(d)
    return join(dt.datetime(base.year, base.month, base.day, tzinfo=dt.timezone.utc), shift)


def _coerce_members(v, t, defs):
    """Components of a structured item definition keep their declared types."""
    item = (defs or {}).get(t) if isinstance(t, str) else None
    if item is not None and item.components is not None and isinstance(v, dict):
        out = dict(v)
        for k, ct in item.components.items():
            out[k] = coerce(v.get(k), ct, defs)
        return out
    return v


def _is_list_type(t, defs) -> bool:
    if isinstance(t, tuple):
        return t[0] == "list"
    item = (defs or {}).get(t) if isinstance(t, str) else None
    return bool(item and item.is_collection)
