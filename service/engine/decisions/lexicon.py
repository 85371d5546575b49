"""FEEL's words (DMN 1.5 10.3.1): keywords, names, numbers, punctuation and string escapes."""
from __future__ import annotations

import functools
import re

KEYWORDS = {"for", "in", "return", "if", "then", "else", "some", "every", "satisfies", "and", "or",
            "between", "instance", "of", "true", "false", "null", "function", "external"}
TYPE_NAMES = ["days and time duration", "years and months duration", "date and time", "dayTimeDuration",
              "yearMonthDuration", "dateTime"]
MAX_DEPTH = 150

WS = re.compile(r"(?:\s|/\*.*?\*/|//[^\n]*)*", re.S)
NUMBER = re.compile(r"(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?")
NAME = re.compile(r"(?:[^\W\d]|[\U00010000-\U000EFFFF])[\w'\U00010000-\U000EFFFF]*")
PUNCT = ["..", "**", "<=", ">=", "!=", "->", ".", ",", "(", ")", "[", "]", "{", "}", ":", "*", "/", "+", "-",
          "<", ">", "=", "?"]
ESC = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'", "b": "\b", "f": "\f"}


def unescape(s: str) -> str:
    """The FEEL string escapes, including \\uXXXX (with surrogate pairs) and \\U00XXXXXX."""
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c != "\\" or i + 1 == len(s):
            out.append(c)
            i += 1
            continue
        n = s[i + 1]
        if n == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", s[i + 2:i + 6]):
            out.append(chr(int(s[i + 2:i + 6], 16)))
            i += 6
        elif n == "U" and re.fullmatch(r"[0-9a-fA-F]{6}", s[i + 2:i + 8]):
            out.append(chr(int(s[i + 2:i + 8], 16)))
            i += 8
        else:
            out.append(ESC.get(n, "\\" + n))
            i += 2
    text = "".join(out)
    return text.encode("utf-16", "surrogatepass").decode("utf-16") if re.search("[\ud800-\udfff]", text) else text


@functools.lru_cache(maxsize=4096)
def name_pattern(name: str) -> re.Pattern:
    """A declared name as written, any whitespace between its words, not followed by more of a name."""
    words = name.split()
    tail = r"(?![\w'])" if re.match(r"[\w']", name[-1]) else ""
    return re.compile(r"\s+".join(re.escape(w) for w in words) + tail)
