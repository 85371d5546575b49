"""FEEL text to a tuple AST: a hand-written lexer and precedence-climbing parser (DMN 1.5 chapter 10).

Names may contain spaces (``Monthly Salary``, ``date and time``), which no context-free lexer can tell
from keywords; the parser is given the names in scope (model variables, context keys and parameters it
has seen, built-in function and parameter names) and reads the longest of them at a name position.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Iterable

from .lexicon import KEYWORDS, MAX_DEPTH, NAME, NUMBER, PUNCT, TYPE_NAMES, WS, name_pattern, unescape
from .temporal import parse_temporal


class FeelSyntaxError(Exception):
    """A FEEL text that does not parse (or calls an unknown function)."""

    def __init__(self, text: str, message: str):
        self.text = text
        self.message = message
        super().__init__(f"{message} in FEEL {text!r}")


class Parser:
    """Parses one FEEL text; ``names`` are the multi-word (or otherwise unusual) names in scope."""

    def __init__(self, text: str, names: Iterable[str] = (), functions: Iterable[str] = ()):
        self.text = text
        self.pos = 0
        self.depth = 0
        self.names: dict[str, list[str]] = {}
        self.functions = set(functions)
        self.declared: set[str] = set()
        self.unsorted: set[str] = set()
        for n in list(names) + TYPE_NAMES + [f for f in self.functions if not NAME.fullmatch(f)]:
            self.declare(n)

    def declare(self, name: str) -> None:
        self.declared.add(name)
        if name and not NAME.fullmatch(name):
            bucket = self.names.setdefault(name[0], [])
            if name not in bucket:
                bucket.append(name)
                self.unsorted.add(name[0])

    # ------------------------------------------------------------------ lexing

    def error(self, message: str):
        return FeelSyntaxError(self.text, f"{message} at position {self.pos}")

    def skip(self) -> None:
        self.pos = WS.match(self.text, self.pos).end()

    def peek(self):
        """The next token as (kind, value) without consuming it; kind is num/str/at/name/punct/eof."""
        self.skip()
        t, p = self.text, self.pos
        if p >= len(t):
            return "eof", None
        c = t[p]
        if c == '"':
            m = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S).match(t, p)
            if not m:
                raise self.error("unterminated string")
            return "str", m
        if c == "@" and t.startswith('"', p + 1):
            m = re.compile(r'@"((?:[^"\\]|\\.)*)"').match(t, p)
            if not m:
                raise self.error("unterminated @ literal")
            return "at", m
        m = NUMBER.match(t, p)
        if m and not t.startswith("..", p):
            return "num", m
        m = NAME.match(t, p)
        if m:
            return "name", m
        for punct in PUNCT:
            if t.startswith(punct, p):
                return "punct", punct
        raise self.error(f"unexpected character {c!r}")

    def at(self, *puncts: str) -> bool:
        kind, v = self.peek()
        return kind == "punct" and v in puncts

    def at_word(self, *words: str) -> bool:
        kind, v = self.peek()
        return kind == "name" and v.group() in words

    def take(self, punct: str) -> None:
        if not self.at(punct):
            raise self.error(f"expected {punct!r}")
        self.pos += len(punct)

    def take_word(self, word: str) -> None:
        if not self.at_word(word):
            raise self.error(f"expected {word!r}")
        self.pos += len(word)

    def read_name(self, allow_keyword: bool = False) -> str:
        """The longest declared name starting here, else one identifier."""
        kind, m = self.peek()
        first = self.text[self.pos] if self.pos < len(self.text) else ""
        if first in self.unsorted:
            self.names[first].sort(key=len, reverse=True)
            self.unsorted.discard(first)
        for cand in self.names.get(first, ()):
            found = name_pattern(cand).match(self.text, self.pos)
            if found:
                self.pos = found.end()
                return cand
        if kind != "name" or (m.group() in KEYWORDS and not allow_keyword):
            raise self.error("expected a name")
        self.pos = m.end()
        return m.group()

    def read_member_name(self) -> str:
        """A name after a dot: declared names, else words up to the next keyword (``.time offset``)."""
        name = self.read_name(allow_keyword=True)
        while True:
            save = self.pos
            kind, m = self.peek()
            if kind != "name" or m.group() in KEYWORDS or self.pos == save:
                self.pos = save
                return name
            self.pos = m.end()
            name += " " + m.group()

    # ------------------------------------------------------------------ entry points

    def parse_expression(self):
        e = self.expression()
        if self.peek()[0] != "eof":
            raise self.error("unexpected text")
        return e

    def parse_unary_tests(self):
        """Decision-table input entry: ``-``, ``not(tests)`` or a comma list of positive unary tests."""
        self.skip()
        if self.peek()[0] == "eof":
            return ("any",)
        if self.at("-"):
            save = self.pos
            self.pos += 1
            if self.peek()[0] == "eof":
                return ("any",)
            self.pos = save
        if self.at_word("not"):
            save = self.pos
            self.pos += 3
            if self.at("("):
                self.pos += 1
                tests = self.unary_test_list(")")
                self.take(")")
                if self.peek()[0] == "eof":
                    return ("not", tests)
            self.pos = save
        tests = self.unary_test_list(None)
        if self.peek()[0] != "eof":
            raise self.error("unexpected text")
        return ("tests", tests)

    def unary_test_list(self, closer):
        tests = [self.unary_test()]
        while self.at(","):
            self.pos += 1
            tests.append(self.unary_test())
        return tests

    def unary_test(self):
        kind, v = self.peek()
        if kind == "punct" and v in ("<", "<=", ">", ">=", "=", "!="):
            self.pos += len(v)
            return ("ut", v, self.additive())
        return ("expr", self.expression())

    # ------------------------------------------------------------------ expressions

    def expression(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FeelSyntaxError(self.text, "expression nested too deeply")
        try:
            kind, m = self.peek()
            if kind == "name":
                word = m.group()
                if word in ("for", "some", "every") and not self._declared_here(word):
                    return self.iteration(word)
                if word == "if" and not self._declared_here(word):
                    return self.conditional()
            return self.disjunction()
        finally:
            self.depth -= 1

    def _declared_here(self, word: str) -> bool:
        return any(self.text.startswith(n, self.pos) and n != word for n in self.names.get(word[0], ()))

    def iteration(self, word: str):
        self.pos += len(word)
        contexts = []
        while True:
            var = self.read_name()
            self.declare(var)
            self.take_word("in")
            lo = self.expression_no_iter()
            if self.at(".."):
                self.pos += 2
                lo = ("irange", lo, self.expression_no_iter())
            contexts.append((var, lo))
            if not self.at(","):
                break
            self.pos += 1
        if word == "for":
            self.declare("partial")
            self.take_word("return")
            return ("for", contexts, self.expression())
        self.take_word("satisfies")
        return (word, contexts, self.expression())

    def expression_no_iter(self):
        return self.disjunction()

    def conditional(self):
        self.pos += 2
        cond = self.expression()
        self.take_word("then")
        then = self.expression()
        self.take_word("else")
        return ("if", cond, then, self.expression())

    def disjunction(self):
        left = self.conjunction()
        while self.at_word("or"):
            self.pos += 2
            left = ("or", left, self.conjunction())
        return left

    def conjunction(self):
        left = self.comparison()
        while self.at_word("and"):
            self.pos += 3
            left = ("and", left, self.comparison())
        return left

    def comparison(self):
        left = self.additive()
        while True:
            kind, v = self.peek()
            if kind == "punct" and v in ("=", "!=", "<", "<=", ">", ">="):
                self.pos += len(v)
                left = ("cmp", v, left, self.additive())
            elif kind == "name" and v.group() == "between":
                self.pos += 7
                lo = self.additive()
                self.take_word("and")
                left = ("between", left, lo, self.additive())
            elif kind == "name" and v.group() == "in":
                self.pos += 2
                left = ("in", left, self.in_tests())
            elif kind == "name" and v.group() == "instance":
                self.pos += 8
                self.take_word("of")
                left = ("inst", left, self.type_spec())
            else:
                return left

    def in_tests(self):
        """The right of ``in``: one positive unary test, or a parenthesised list of them."""
        if self.at("("):
            save = self.pos
            try:
                self.pos += 1
                tests = self.unary_test_list(")")
                self.take(")")
                if len(tests) > 1 or tests[0][0] == "ut":
                    return tests
            except FeelSyntaxError:
                pass
            self.pos = save
        return [self.unary_test()]

    def additive(self):
        left = self.multiplicative()
        while self.at("+", "-"):
            op = self.peek()[1]
            self.pos += 1
            left = ("bin", op, left, self.multiplicative())
        return left

    def multiplicative(self):
        left = self.power()
        while self.at("*", "/"):
            op = self.peek()[1]
            self.pos += 1
            left = ("bin", op, left, self.power())
        return left

    def power(self):
        left = self.unary()
        while self.at("**"):
            self.pos += 2
            left = ("bin", "**", left, self.unary())
        return left

    def unary(self):
        if self.at("-"):
            self.pos += 1
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise FeelSyntaxError(self.text, "expression nested too deeply")
            inner = self.unary()
            self.depth -= 1
            if inner[0] == "num":
                return ("num", -inner[1])
            return ("neg", inner)
        return self.postfix(self.primary())

    def postfix(self, e, brackets: bool = True):
        while True:
            if self.at("."):
                self.pos += 1
                e = ("path", e, self.read_member_name())
            elif brackets and self.at("["):
                self.pos += 1
                cond = self.expression()
                self.take("]")
                e = ("filter", e, cond)
            elif self.at("("):
                e = self.invocation(e)
            else:
                return e

    def invocation(self, callee):
        self.pos += 1
        args, named = [], None
        if self.at(")"):
            self.pos += 1
            return ("call", callee, args, named)
        save = self.pos
        try:
            key = self.read_name(allow_keyword=True)
            is_named = self.at(":")
        except FeelSyntaxError:
            is_named = False
        self.pos = save
        if is_named:
            named = []
            while True:
                key = self.read_name(allow_keyword=True)
                self.take(":")
                named.append((key, self.expression()))
                if not self.at(","):
                    break
                self.pos += 1
        else:
            args.append(self.expression())
            while self.at(","):
                self.pos += 1
                args.append(self.expression())
        self.take(")")
        if callee[0] == "name" and callee[1] not in self.declared and callee[1] not in self.functions:
            raise FeelSyntaxError(self.text, f"unknown function {callee[1]!r}")
        return ("call", callee, args, named)

    # ------------------------------------------------------------------ primaries

    def primary(self):
        kind, m = self.peek()
        if kind == "num":
            self.pos = m.end()
            try:
                return ("num", Decimal(m.group()))
            except InvalidOperation:
                raise self.error("bad number")
        if kind == "str":
            self.pos = m.end()
            return ("str", unescape(m.group(1)))
        if kind == "at":
            self.pos = m.end()
            value = parse_temporal(unescape(m.group(1)))
            if value is None:
                raise self.error(f"not a date, time or duration: {m.group()}")
            return ("const", value)
        if kind == "punct":
            return self.punct_primary(m)
        if kind == "eof":
            raise self.error("unexpected end of text")
        return self.name_primary(m)

    def punct_primary(self, p: str):
        if p == "(":
            self.pos += 1
            e = self.expression()
            if self.at(".."):
                return self.range_rest(e, False)
            self.take(")")
            return e
        if p == "[":
            self.pos += 1
            if self.at("]"):
                self.pos += 1
                return ("list", [])
            first = self.expression()
            if self.at(".."):
                return self.range_rest(first, True)
            items = [first]
            while self.at(","):
                self.pos += 1
                items.append(self.expression())
            self.take("]")
            return ("list", items)
        if p == "]":
            self.pos += 1
            return self.range_rest(self.endpoint(), False)
        if p == "{":
            return self.context()
        if p == "?":
            self.pos += 1
            return ("input",)
        if p in ("<", "<=", ">", ">=", "=", "!="):
            self.pos += len(p)
            return ("ut", p, self.endpoint())
        raise self.error(f"unexpected {p!r}")

    def endpoint(self):
        return self.postfix(self.unary_endpoint(), brackets=False)

    def unary_endpoint(self):
        if self.at("-"):
            self.pos += 1
            inner = self.unary_endpoint()
            return ("num", -inner[1]) if inner[0] == "num" else ("neg", inner)
        return self.primary()

    def range_rest(self, lo, lo_closed: bool):
        self.take("..")
        hi = self.endpoint()
        if self.at("]"):
            self.pos += 1
            return ("range", lo, lo_closed, hi, True)
        if self.at(")", "["):
            self.pos += 1
            return ("range", lo, lo_closed, hi, False)
        raise self.error("expected the end of a range")

    def context(self):
        self.pos += 1
        entries = []
        if self.at("}"):
            self.pos += 1
            return ("ctx", entries)
        while True:
            kind, m = self.peek()
            if kind == "str":
                self.pos = m.end()
                key = unescape(m.group(1))
            else:
                key = self.read_context_key()
            if any(k == key for k, _ in entries):
                raise self.error(f"duplicate context key {key!r}")
            self.declare(key)
            self.take(":")
            entries.append((key, self.expression()))
            if not self.at(","):
                break
            self.pos += 1
        self.take("}")
        return ("ctx", entries)

    def read_context_key(self) -> str:
        """A context key may be any words up to the colon (``{first name: ...}``)."""
        m = re.compile(r"[^:,{}\"]+?(?=\s*:)").match(self.text, self.pos)
        if not m or not m.group().strip():
            raise self.error("expected a context key")
        self.pos = m.end()
        return m.group().strip()

    def name_primary(self, m):
        word = m.group()
        if word in ("true", "false") and not self._declared_here(word):
            self.pos = m.end()
            return ("const", word == "true")
        if word == "null":
            self.pos = m.end()
            return ("const", None)
        if word == "function" and not self._declared_here(word):
            return self.function_literal()
        if word in ("for", "some", "every", "if") and not self._declared_here(word):
            return self.expression()
        if word == "not" and self.text.startswith("(", WS.match(self.text, m.end()).end()):
            self.pos = m.end()
            return self.invocation(("name", "not"))
        return ("name", self.read_name())

    def function_literal(self):
        self.pos += len("function")
        self.take("(")
        params, types = [], []
        while not self.at(")"):
            name = self.read_name(allow_keyword=True)
            self.declare(name)
            params.append(name)
            if self.at(":"):
                self.pos += 1
                types.append(self.type_spec())
            else:
                types.append(None)
            if not self.at(","):
                break
            self.pos += 1
        self.take(")")
        if self.at_word("external"):
            self.pos += len("external")
            return ("external", params, self.expression())
        return ("fn", params, types, self.expression())

    # ------------------------------------------------------------------ types

    def type_spec(self):
        """A type: a name (possibly qualified or with spaces), list<T>, context<k: T>, range<T>, function<T>->T."""
        name = self.read_name(allow_keyword=True)
        while self.at("."):
            self.pos += 1
            name += "." + self.read_name(allow_keyword=True)
        if name in ("list", "range") and self.at("<"):
            self.pos += 1
            inner = self.type_spec()
            self.take(">")
            return (name, inner)
        if name == "context" and self.at("<"):
            self.pos += 1
            fields = []
            while True:
                key = self.read_name(allow_keyword=True)
                self.take(":")
                fields.append((key, self.type_spec()))
                if not self.at(","):
                    break
                self.pos += 1
            self.take(">")
            return ("context", tuple(fields))
        if name == "function" and self.at("<"):
            self.pos += 1
            params = []
            while not self.at(">"):
                params.append(self.type_spec())
                if not self.at(","):
                    break
                self.pos += 1
            self.take(">")
            self.take("->")
            return ("function", tuple(params), self.type_spec())
        return name
