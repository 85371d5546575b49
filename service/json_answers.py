"""The service's JSON answers written by orjson: Flask's JSON, at a tenth of the cost.

An inbox page of 80 tasks (with their forms, 100 kB) took Flask's ``json.dumps`` about 1.2 ms to write, a seventh
of the request's CPU; orjson writes the same in 0.2 ms (``docs/performance.md``). The answer is Flask's own:
keys sorted, datetimes and dates as Flask writes them (its ``default``: an HTTP date), UUIDs, dataclasses,
decimals and ``__html__`` objects as Flask writes them. Two differences, both still valid JSON read the same by
any client: characters beyond ASCII are written as UTF-8, not ``\\uXXXX`` escapes, and a float that is not a
number (which Python's ``json`` writes as ``NaN``, not JSON at all) is written ``null``.

Only the compact answers of :meth:`~flask.json.provider.DefaultJSONProvider.response` (``jsonify``, a view's
dict) are written this way. Anything else asked of ``app.json.dumps`` (a page's ``tojson``, an indented answer
in debug mode) and anything orjson will not write (an integer beyond 64 bits) is Flask's as before.
"""
from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

#: What :meth:`~flask.json.provider.DefaultJSONProvider.response` asks for a compact answer.
_COMPACT = {"separators": (",", ":")}
#: Flask's choices: keys sorted, keys that are not strings written as strings, datetimes by Flask's ``default``.
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


class JSONAnswers(DefaultJSONProvider):
    """Flask's JSON provider, its compact answers written by orjson."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs == _COMPACT:
            try:
                return orjson.dumps(obj, default=self.default, option=_OPTIONS).decode()
            except orjson.JSONEncodeError:
                pass  # what orjson does not write is written as Flask writes it, or refused as Flask refuses it
        return super().dumps(obj, **kwargs)
