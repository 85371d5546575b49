"""How much time and memory one engine step may use, and the guards that hold every evaluation to it.

A step is one action on a case (start it, complete a task, fire its timers, deliver a message, retry):
the engine runs until the case waits again. Every expression and script evaluated in that step shares
one :class:`Budget`. A timer cannot interrupt Python while it holds the GIL inside one C operation
(``3 ** 2 ** 40`` or ``'x' * 10 ** 10`` runs to the end and stalls every thread, the timer thread
included), so the limits are enforced *before* the costly operation: expressions and scripts are
rewritten (:class:`Bounding`) so that arithmetic on numbers and sequences, f-strings, ``%`` formatting,
slicing, method calls that grow text or lists, iteration and every ``while`` body go through the guards
below, which check the size of what would be made and the time spent against the step's budget.

Memory is counted as the estimated size of everything the guarded operations make in the step (freed
or not), so it over-counts rather than under-counts; what unguarded operations make is bounded by the
loop limit times a small constant.
"""
from __future__ import annotations

import ast
import gc
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

#: How deep an expression or script may nest (operators, brackets, blocks): deeper fails at deploy, not
#: with a RecursionError in the compiler. Source is compiled once and cached, so this is not per step.
SOURCE_NESTING = 100


@dataclass(frozen=True)
class Limits:
    """What one engine step may use. ``step_seconds`` and ``memory_mb`` come from the service's config."""

    step_seconds: float = 2.0
    memory_mb: int = 256
    max_digits: int = 10_000
    max_loops: int = 1_000_000
    max_depth: int = 100

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Limits:
        """Limits from ``ENGINE_STEP_SECONDS`` and ``ENGINE_STEP_MEMORY_MB`` (defaults where absent)."""
        return cls(step_seconds=float(config.get("ENGINE_STEP_SECONDS", cls.step_seconds)),
                   memory_mb=int(config.get("ENGINE_STEP_MEMORY_MB", cls.memory_mb)))

    @property
    def max_bytes(self) -> int:
        return self.memory_mb * 1024 * 1024

    @property
    def max_bits(self) -> int:
        return math.ceil(self.max_digits * math.log2(10))


DEFAULT_LIMITS = Limits()


class LimitExceeded(Exception):
    """A step went over one of its limits; the message says which, in words."""


class Deadline:
    """A time limit counted in the CPU time of the thread that spends it, not in the time that passes.

    A step stalled by a busy or paused machine (other processes, a virtual machine's host, swapping) has
    not run away, and must not fail: an urgent referral refused because the server was busy is a child's
    referral delayed. A runaway spends CPU. The thread's CPU clock is a system call (about 1 µs), so the
    cheap wall clock is read first: CPU time never runs ahead of it, so the CPU clock is only read once the
    wall clock says the time is up, and then the wall deadline moves on by the CPU time still left.

    Nor is the garbage collector's full collection the step's time: it walks every object of the process,
    however little the step made, and a large process can spend seconds in one. The time this thread spent
    in full collections (:func:`full_collection_seconds`) is left out.
    """

    __slots__ = ("wall", "cpu", "collecting")

    def __init__(self, seconds: float) -> None:
        self.wall = time.monotonic() + seconds
        self.cpu = time.thread_time() + seconds
        self.collecting = full_collection_seconds()

    def passed(self) -> bool:
        """Whether the thread has spent its time."""
        if time.monotonic() <= self.wall:
            return False
        left = self.cpu + (full_collection_seconds() - self.collecting) - time.thread_time()
        if left < 0:
            return True
        self.wall = time.monotonic() + left
        return False


_collecting = threading.local()  # per thread: the collector runs in the thread whose allocation set it off


def full_collection_seconds() -> float:
    """The CPU time this thread has spent in the garbage collector's full collections."""
    return getattr(_collecting, "seconds", 0.0)


def _time_full_collections(phase: str, info: dict[str, int]) -> None:
    # Called for every collection (under one a completion, measured); only full ones are timed.
    if info["generation"] != 2:
        return
    if phase == "start":
        _collecting.began = time.thread_time()
    else:
        _collecting.seconds = full_collection_seconds() + time.thread_time() - _collecting.began


gc.callbacks.append(_time_full_collections)


class Budget:
    """What the step in progress has used: time, loop iterations and memory."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.max_bytes, self.max_bits = limits.max_bytes, limits.max_bits  # read on every guarded operation
        self.deadline = Deadline(limits.step_seconds)
        self.loops = 0
        self.bytes = 0
        self.what = "step"  # "script" or "expression" while one runs: the messages name it
        self.breach: str | None = None
        self._next_clock_check = 0

    def fail(self, message: str) -> None:
        # Remembered: a script that catches the error still cannot go on, and is reported when it ends.
        self.breach = self.breach or message
        raise LimitExceeded(self.breach)

    def tick(self) -> None:
        """Check the clock (and a breach the script swallowed)."""
        if self.breach:
            raise LimitExceeded(self.breach)
        if self.deadline.passed():
            self.fail(f"the {self.what} ran for more than {self.limits.step_seconds:g} s")

    def count(self, iterations: int = 1) -> None:
        """Count loop iterations (or items a built-in function will go through)."""
        self.loops += iterations
        if self.loops > self.limits.max_loops:
            self.fail(f"the {self.what} loops more than {self.limits.max_loops:,} times")
        if self.loops >= self._next_clock_check:  # every iteration would double the cost of a tight loop
            self._next_clock_check = self.loops + 1000
            self.tick()

    def charge(self, size: int) -> None:
        """Count ``size`` bytes about to be made; refuse before making them if the step would go over.

        No clock check here: code without loops is short, and loops check the clock as they count.
        """
        self.bytes += max(size, 0)
        if self.bytes > self.max_bytes:
            self.fail(f"the {self.what} needs more than {self.limits.memory_mb:,} MB of memory")

    def check_bits(self, bits: int) -> None:
        if bits > self.max_bits:
            self.fail(f"the {self.what} made a number with more than {self.limits.max_digits:,} digits")
        self.charge(bits // 8)


_BUDGET: ContextVar[Budget | None] = ContextVar("engine_step_budget", default=None)


@contextmanager
def step(limits: Limits | None = None) -> Iterator[Budget]:
    """Run the body as one engine step; inside a step already running, share its budget."""
    budget = _BUDGET.get()
    if budget is not None:
        yield budget
        return
    budget = Budget(limits or DEFAULT_LIMITS)
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


class evaluating:  # noqa: N801 - used as a function: ``with evaluating("script") as budget``
    """Evaluate a script or an expression within the step in progress (or a step of its own).

    A class, not a generator: it wraps every condition the engine evaluates, and costs a tenth as much.
    """

    __slots__ = ("what", "budget", "outer", "token")

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> Budget:
        budget, self.token = _BUDGET.get(), None
        if budget is None:
            budget = Budget(DEFAULT_LIMITS)
            self.token = _BUDGET.set(budget)
        self.budget, self.outer, budget.what = budget, budget.what, self.what
        return budget

    def __exit__(self, kind, error, traceback) -> None:
        self.budget.what = self.outer
        if self.token is not None:
            _BUDGET.reset(self.token)
        if kind is None and self.budget.breach:  # swallowed by the script's own try/except
            raise LimitExceeded(self.budget.breach)


def current() -> Budget:
    """The budget of the step in progress; a guard called outside any step gets a fresh default one."""
    return _BUDGET.get() or Budget(DEFAULT_LIMITS)


# --------------------------------------------------------------------------- sizes

def _char_width(text: str) -> int:
    return 1 if text.isascii() else 4


def size_of(value: Any) -> int:
    """Bytes a str, bytes or container takes itself (not what it refers to)."""
    return sys.getsizeof(value) if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)) else 0


def measure(value: Any, budget: Budget) -> int:
    """An upper bound on the length of ``repr(value)``; refuses values nested deeper than the limit.

    Walks without recursion and visits at most ``max_loops`` items, so a value built to be expensive
    to print or store (``[big] * 10**6``, a list a million deep, a list holding itself) is refused,
    not converted.
    """
    limits, total, visited, pending = budget.limits, 0, 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > limits.max_depth:
            budget.fail(f"the {budget.what} nests values more than {limits.max_depth} deep")
        if total > limits.max_bytes:
            budget.fail(f"the {budget.what} needs more than {limits.memory_mb:,} MB of memory")
        if isinstance(item, (str, bytes)):
            total += len(item) * 4 + 3  # an escape such as \x00 takes four characters
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() * 30103 // 100000 + 2
        elif isinstance(item, (Mapping, list, tuple, set, frozenset)):
            visited += len(item)
            if visited > limits.max_loops:
                budget.fail(f"the {budget.what} made a value of more than {limits.max_loops:,} items")
            parts = [p for pair in item.items() for p in pair] if isinstance(item, Mapping) else item
            total += 2 + 2 * len(parts)
            pending += [(part, depth + 1) for part in parts]
        else:
            total += 64  # a float, a date, a range: short reprs
    return total


def check_value(value: Any, budget: Budget) -> None:
    """Refuse a value too deep or too big to keep in the case data (it is stored as JSON)."""
    if measure(value, budget) > budget.limits.max_bytes:
        budget.fail(f"the {budget.what} needs more than {budget.limits.memory_mb:,} MB of memory")


# --------------------------------------------------------------------------- guards

def _int_bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


def _pow_bits(base: int, exponent: int) -> int:
    if abs(base) <= 1 or exponent <= 0:
        return 1
    return math.ceil(exponent * math.log2(abs(base))) + 1


def _repeat_size(sequence: Any, times: Any) -> int:
    width = _char_width(sequence) if isinstance(sequence, str) else 1 if isinstance(sequence, bytes) else 8
    return max(int(times), 0) * len(sequence) * width


_SEQUENCES = (str, bytes, list, tuple)
_WIDTHS = re.compile(r"\d+")
_PERCENT_SPEC = re.compile(r"%[-#0 +(\w)]*[*\d.]*[a-zA-Z%]")


def bound_op(op: str, left: Any, right: Any) -> Any:
    """``left op right`` for the operators that can make huge values, after checking what they make."""
    budget = current()
    if op == "**" and isinstance(left, int) and isinstance(right, int):
        budget.check_bits(_pow_bits(left, right))
    elif op == "<<" and isinstance(left, int) and isinstance(right, int) and right > 0:
        budget.check_bits(_int_bits(left) + right)
    elif op == "*":
        if isinstance(left, int) and isinstance(right, int) and not isinstance(left, bool):
            budget.check_bits(_int_bits(left) + _int_bits(right))
        elif isinstance(left, _SEQUENCES) and isinstance(right, int):
            budget.charge(_repeat_size(left, right))
        elif isinstance(right, _SEQUENCES) and isinstance(left, int):
            budget.charge(_repeat_size(right, left))
    elif op == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        budget.charge(size_of(left) + size_of(right))
    elif op == "%" and isinstance(left, (str, bytes)):
        budget.charge(_percent_size(left, right, budget))
    result = _OPERATIONS[op](left, right)
    if isinstance(result, int) and op in ("+", "-"):
        budget.check_bits(_int_bits(result))
    return result


def _percent_size(template: str | bytes, args: Any, budget: Budget) -> int:
    """An upper bound on the length of ``template % args``: the text, the values and every width asked for."""
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    specs = _PERCENT_SPEC.findall(text)
    widths = sum(int(w) for spec in specs for w in _WIDTHS.findall(spec))
    if any("*" in spec for spec in specs):  # widths taken from the values themselves
        values = args if isinstance(args, tuple) else (args,)
        widths += sum(abs(v) for v in values if isinstance(v, int))
    return (len(text) + measure(args, budget) + widths) * 4


_OPERATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "**": lambda a, b: a ** b,
    "<<": lambda a, b: a << b, "%": lambda a, b: a % b,
}
_BINOP_SYMBOLS = {ast.Add: "+", ast.Mult: "*", ast.Pow: "**", ast.LShift: "<<", ast.Mod: "%"}


def loop_tick() -> None:
    """Called at the top of every ``while`` body."""
    current().count()


def counted(iterable: Iterable) -> Iterator:
    """Iterate, counting every item against the step's loop limit."""
    budget = current()
    for item in iterable:
        budget.count()
        yield item


def consumed(iterable: Any) -> Any:
    """What a built-in function will go through in C: counted up front when its size is known."""
    if isinstance(iterable, (str, bytes, list, tuple, dict, set, frozenset, range)):
        current().count(len(iterable))
        return iterable
    return counted(iterable)


def guarded_range(*args: int) -> range:
    numbers = range(*args)
    budget = current()
    if len(numbers) > budget.limits.max_loops:
        budget.fail(f"the {budget.what} loops more than {budget.limits.max_loops:,} times "
                    f"(a range of {len(numbers):,} numbers)")
    return numbers


def guarded_pow(base: Any, exponent: Any, modulus: Any = None) -> Any:
    if modulus is None:
        return bound_op("**", base, exponent)
    current().check_bits(_int_bits(exponent))  # modular: the result is no bigger than the modulus
    return pow(base, exponent, modulus)


def guarded_repr(value: Any) -> str:
    current().charge(measure(value, current()))
    return repr(value)


def guarded_getitem(container: Any, key: Any) -> Any:
    """``container[key]``; a slice copies, so its size is charged first."""
    if isinstance(key, slice) and isinstance(container, _SEQUENCES):
        width = _char_width(container) if isinstance(container, str) else 1 if isinstance(container, bytes) else 8
        current().charge(len(range(*key.indices(len(container)))) * width)
    return container[key]


def guarded_fstring(*parts: str) -> str:
    """An f-string's pieces, already formatted by :func:`guarded_format`, joined once their size is known."""
    current().charge(sum(len(part) for part in parts))
    return "".join(parts)


def guarded_format(value: Any, conversion: int, spec: str) -> str:
    """One ``{value!r:spec}`` of an f-string, refused when it would be too long to make."""
    budget = current()
    widths = sum(int(w) for w in _WIDTHS.findall(spec))
    as_is = isinstance(value, str) and conversion in (-1, ord("s"))  # text goes in unchanged: the join counts it
    budget.charge((0 if as_is else measure(value, budget)) + widths * 4)
    if conversion == ord("r"):
        value = repr(value)
    elif conversion == ord("s"):
        value = str(value)
    elif conversion == ord("a"):
        value = ascii(value)
    return format(value, spec)


def consuming(function: Callable[..., Any]) -> Callable[..., Any]:
    """A built-in (``sorted``, ``min``, ``any``...) whose walk over one iterable counts as a loop."""
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if len(args) == 1:
            args = (consumed(args[0]),)
        result = function(*args, **kwargs)
        if function is sorted:  # the others return an item already counted, or a bool
            current().charge(size_of(result))
        return result
    guarded.__name__ = function.__name__
    return guarded


def guarded_sum(iterable: Iterable, start: Any = 0) -> Any:
    """``sum``; adding up lists or tuples goes through :func:`bound_op`, since each sum copies them."""
    if isinstance(start, (int, float)) and not isinstance(start, bool):
        total = sum(consumed(iterable), start)
        current().check_bits(_int_bits(total))
        return total
    total = start
    for item in counted(iterable):
        total = bound_op("+", total, item)
    return total


class _TextType(type):
    """Makes :class:`GuardedStr` stand for ``str`` in ``isinstance`` checks."""

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, str)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, str)


class GuardedStr(str, metaclass=_TextType):
    """``str`` for scripts and expressions: ``str(value)`` is refused when the text would be too long."""

    def __new__(cls, *args: Any, **kwargs: Any) -> str:  # type: ignore[misc]
        if len(args) == 1 and not kwargs and not isinstance(args[0], str):  # str(text) is the text itself
            current().charge(measure(args[0], current()))
        return str(*args, **kwargs)


#: Methods of text and containers that make their result from an iterable argument (counted first).
_CONSUMING_METHODS = {"join", "extend", "update", "union", "intersection", "difference", "symmetric_difference",
                      "fromkeys", "intersection_update", "difference_update", "symmetric_difference_update",
                      "issubset", "issuperset", "isdisjoint"}
_GROWING = (str, bytes, list, tuple, dict, set, frozenset)
#: Methods that hand back something already held (charging it again would count it twice).
_RETURNS_HELD = {"get", "pop", "popitem", "setdefault"}


def bounded_method(owner: Any, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """A method of text or a container, checked before it runs and charged for what it returns."""
    unbound = isinstance(owner, type)

    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = current()
        this, rest = (args[0], args[1:]) if unbound and args else (owner, args)
        if name in _CONSUMING_METHODS and rest:
            materialised = list(consumed(rest[0])) if name == "join" else consumed(rest[0])
            rest = (materialised, *rest[1:])
            if name == "join":
                budget.charge(sum(len(p) for p in materialised if isinstance(p, (str, bytes)))
                              + len(this) * max(len(materialised) - 1, 0))
        elif isinstance(this, (str, bytes)):
            budget.charge(_text_method_size(this, name, rest, kwargs))
        result = method(*((this, *rest) if unbound else rest), **kwargs)
        if result is not this and name not in _RETURNS_HELD:
            budget.charge(size_of(result))
        return result

    return guarded


def _text_method_size(text: str | bytes, name: str, args: tuple, kwargs: dict) -> int:
    """An upper bound on what a text method makes, for the methods that can make more than they read."""
    if name in ("ljust", "rjust", "center", "zfill") and args and isinstance(args[0], int):
        return max(args[0], len(text)) * 4
    if name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        hits = text.count(old) if old else len(text) + 1
        if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0:
            hits = min(hits, args[2])
        return (len(text) + hits * max(len(new) - len(old), 0)) * 4
    if name == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        return (len(text) + text.count("\t" if isinstance(text, str) else b"\t") * max(int(tab), 0)) * 4
    if name == "translate" and args and isinstance(args[0], Mapping):  # one character can become a long text
        longest = max((len(v) for v in args[0].values() if isinstance(v, (str, bytes))), default=1)
        return len(text) * max(longest, 1) * 4
    if name in ("split", "rsplit", "splitlines", "partition", "rpartition"):
        return (len(text) // 2 + 1) * 64  # at worst a piece every other character, each a new object
    return 0


def guarded_getattr(factory: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap RestrictedPython's ``_getattr_`` so methods of text and containers are bounded."""
    def getattr_(owner: Any, name: str, *default: Any) -> Any:
        value = factory(owner, name, *default)
        growing = isinstance(owner, _GROWING) or (isinstance(owner, type) and issubclass(owner, _GROWING))
        return bounded_method(owner, name, value) if growing and callable(value) else value
    return getattr_


# --------------------------------------------------------------------------- rewriting source

def check_nesting(tree: ast.AST, source: str, what: str) -> None:
    """Refuse source nested deeper than :data:`SOURCE_NESTING` (without recursing, so it cannot overflow)."""
    pending = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if depth > SOURCE_NESTING:
            raise LimitExceeded(f"the {what} is nested more than {SOURCE_NESTING} deep")
        pending += [(child, depth + 1) for child in ast.iter_child_nodes(node)]


def _call(name: str, *args: ast.expr, at: ast.AST) -> ast.Call:
    """A call of a guard, placed where ``at`` is (RestrictedPython compiles without filling in places)."""
    call = ast.copy_location(ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=list(args), keywords=[]), at)
    return ast.fix_missing_locations(call)


class Bounding:
    """Rewrites of the operations that can be costly, shared by expressions and by the script policy."""

    @staticmethod
    def binop(node: ast.BinOp) -> ast.AST:
        symbol = _BINOP_SYMBOLS.get(type(node.op))
        if symbol is None:
            return node
        return _call("_bound_op_", ast.Constant(symbol), node.left, node.right, at=node)

    @staticmethod
    def joined_str(node: ast.JoinedStr) -> ast.AST:
        return _call("_fstring_", *node.values, at=node)

    @staticmethod
    def formatted_value(node: ast.FormattedValue) -> ast.AST:
        spec = node.format_spec if node.format_spec is not None else ast.Constant("")
        return _call("_format_", node.value, ast.Constant(node.conversion), spec, at=node)

    @staticmethod
    def while_(node: ast.While) -> ast.AST:
        node.body.insert(0, ast.copy_location(ast.Expr(_call("_loop_", at=node)), node))
        return node

    @staticmethod
    def starred(node: ast.Starred) -> ast.AST:
        if isinstance(node.ctx, ast.Load):
            node.value = _call("_consumed_", node.value, at=node)
        return node


class BoundingTransformer(ast.NodeTransformer):
    """The rewrites of :class:`Bounding` for a vetted expression."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        return Bounding.binop(node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        self.generic_visit(node)
        return Bounding.formatted_value(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        self.generic_visit(node)
        return Bounding.joined_str(node)


#: The guards every rewritten expression or script may call, by the names the rewrites use.
GUARDS: dict[str, Any] = {
    "_bound_op_": bound_op, "_fstring_": guarded_fstring, "_format_": guarded_format, "_loop_": loop_tick,
    "_consumed_": consumed,
}

#: Built-ins replaced by bounded ones (for both expressions and scripts).
BOUNDED_BUILTINS: dict[str, Any] = {
    "str": GuardedStr, "repr": guarded_repr, "range": guarded_range, "pow": guarded_pow, "sum": guarded_sum,
    **{f.__name__: consuming(f) for f in (sorted, min, max, any, all)},
}
