"""FEEL parser/interpreter (service.engine.decisions.feel): no DB, no Flask."""
import datetime as dt
from decimal import Decimal

import pytest

from service.engine.decisions.feel import (Expression, FeelSyntaxError, UnaryTests, YMDuration,
                                           intervals_overlap, to_json_value, to_python)


def ev(text, ctx=None, names=()):
    return Expression(text, names).evaluate(ctx or {})


def matches(text, value, ctx=None):
    return UnaryTests(text).matches(value, ctx or {})


# --------------------------------------------------------------------------- unary tests

@pytest.mark.parametrize("text,value,expected", [
    ("< 5", 4, True), ("< 5", 5, False), ("<= 5", 5, True), ("> 5", 5, False), (">= 8", 8, True),
    (">= 8", 7.99, False), ("= 3", 3, True), ("!= \"x\"", "y", True), ("!= \"x\"", "x", False),
    ("[1..5]", 1, True), ("[1..5]", 5, True), ("[1..5]", 5.5, False),
    ("]1..5[", 1, False), ("]1..5[", 5, False), ("]1..5[", 3, True),
    ("(1..5]", 1, False), ("(1..5]", 5, True), ("[1..5)", 5, False), ("[1..5)", 1, True),
    ("[1..5[", 5, False), ("]1..5]", 5, True),
    ('"a","b"', "b", True), ('"a","b"', "c", False), ("1,2,3", 2, True), ("1,2,3", 4, False),
    ("<10, >20", 25, True), ("<10, >20", 15, False),
    ('not("x")', "y", True), ('not("x")', "x", False), ("not(1, 2)", 3, True), ("not(1, 2)", 2, False),
    ("not([1..5])", 7, True), ("not(>= 18)", 17, True),
    ("-", "anything", True), ("", None, True), ("-", None, True),
    ('"Acute"', "Acute", True), ('"Acute"', "acute", False),
    ("5", 5.0, True), ("-5", -5, True), ("< -5", -6, True), ("2.50", 2.5, True),
    ("true", True, True), ("true", False, False), ("false", False, True), ("false", True, False),
    ("null", None, True), ("null", 0, False),
    ('date("2024-01-01")', dt.date(2024, 1, 1), True),
    ('< date("2024-01-01")', dt.date(2023, 6, 1), True),
    ('< date("2024-01-01")', "2023-06-01", True),      # ISO string read as a date when compared with one
    ('>= date("2024-01-01")', "2023-06-01", False),
    ('[date("2024-01-01")..date("2024-12-31")]', "2024-07-01", True),
    ('< date and time("2024-01-01T09:00:00")', dt.datetime(2024, 1, 1, 8, 0), True),
    ('> time("09:00:00")', dt.time(10, 0), True),
    ('> duration("P2D")', dt.timedelta(days=3), True),
    ('<= duration("P3M")', YMDuration(2), True), ('<= duration("P3M")', YMDuration(4), False),
    ("? > 5", 6, True), ("? > 5", 5, False), ("? * 2 = 10", 5, True),
    ('list contains(?, "neglect")', ["neglect", "housing"], True),
    ('list contains(?, "neglect")', ["housing"], False),
    ("count(?) >= 3", ["a", "b", "c"], True),
    ('starts with(?, "AB")', "ABC123", True),
    ('upper case(?) = "X"', "x", True),
    ("[1,2,3]", 2, True),                                   # a list expression tests membership
])
def test_unary_tests(text, value, expected):
    assert matches(text, value) is expected


@pytest.mark.parametrize("text,value", [
    ("< 5", None), (">= 8", None), ("[1..5]", None), ('"a"', 1), ("< 5", "abc"), ('< date("2024-01-01")', 5),
])
def test_null_and_type_mismatch_never_match(text, value):
    # comparisons with null or across types are null in FEEL: the rule does not match
    assert matches(text, value) is not True


def test_unary_tests_may_refer_to_other_names():
    assert matches("[low..high]", 5, {"low": 1, "high": 9}) is True
    assert matches("[low..high]", 10, {"low": 1, "high": 9}) is False
    assert matches("> limit", 5, {"limit": None}) is None


def test_unary_tests_with_string_containing_brackets_and_dots():
    assert matches('"]a..b["', "]a..b[") is True
    assert matches('"not(x)"', "not(x)") is True


# --------------------------------------------------------------------------- expressions

def test_numbers_are_decimal():
    assert ev("0.1 + 0.2") == Decimal("0.3")
    assert ev("0.1 + 0.2 = 0.3") is True
    assert to_python(ev("10 / 4")) == 2.5
    assert to_python(ev("10 / 5")) == 2 and isinstance(to_python(ev("10 / 5")), int)
    assert ev("2 ** 3") == 8
    assert ev("1 / 0") is None
    assert ev("-x", {"x": 3}) == -3
    assert ev("1 + 2 * 3 - 4 / 2") == 5
    assert ev("(1 + 2) * 3") == 9


def test_strings():
    assert ev('"a" + "b"') == "ab"
    assert ev('"say \\"hi\\""') == 'say "hi"'
    assert ev('"a" = "a"') is True
    assert ev('"a" < "b"') is True
    assert ev('"a" + 1') is None


def test_paths_and_contexts():
    ctx = {"child": {"age": 7, "address": {"postcode": "TA1 1AA"}}, "needs": ["a", "b"]}
    assert ev("child.age", ctx) == 7
    assert ev("child.address.postcode", ctx) == "TA1 1AA"
    assert ev("child.missing", ctx) is None
    assert ev("nobody.age", ctx) is None
    assert ev("{a: 1, b: a + 1}.b") == 2
    assert ev('{"full name": "x"}') == {"full name": "x"}
    assert ev("needs[1]", ctx) == "a"
    assert ev("needs[-1]", ctx) == "b"
    assert ev("[1, 2, 3][item > 1]") == [2, 3]
    assert ev("[{a: 1}, {a: 2}][a = 2].a") == [2]


def test_null_propagation_and_three_valued_logic():
    assert ev("x + 1", {"x": None}) is None
    assert ev("x < 1", {"x": None}) is None
    assert ev("null = null") is True
    assert ev("1 = null") is False
    assert ev("1 != null") is True
    assert ev("true and null") is None
    assert ev("false and null") is False
    assert ev("true or null") is True
    assert ev("false or null") is None
    assert ev('1 = "1"') is None


def test_if_then_else_and_logic():
    assert ev('if age >= 18 then "adult" else "child"', {"age": 17}) == "child"
    assert ev('if age >= 18 then "adult" else "child"', {"age": 18}) == "adult"
    assert ev('if x then "y" else "n"', {"x": None}) == "n"  # null condition takes the else branch
    assert ev("a > 1 and b < 2", {"a": 2, "b": 1}) is True
    assert ev("a > 1 or b < 2", {"a": 0, "b": 5}) is False
    assert ev("x between 1 and 5", {"x": 5}) is True
    assert ev("x in [1..5]", {"x": 6}) is False
    assert ev("x in (1, 2, 3)", {"x": 2}) is True
    assert ev("x in ]1..5[", {"x": 5}) is False
    assert ev("some n in [1, 5] satisfies n > 4") is True
    assert ev("every n in [1, 5] satisfies n > 4") is False
    assert ev("for n in [1, 2] return n * 10") == [10, 20]


def test_dates_times_durations():
    assert ev('date("2024-02-01") > date("2024-01-31")') is True
    assert ev('date(2024, 2, 29)') == dt.date(2024, 2, 29)
    assert ev('date("2024-02-30")') is None
    assert ev('date and time("2024-01-01T10:30:00")') == dt.datetime(2024, 1, 1, 10, 30)
    assert ev('time("10:30:00")') == dt.time(10, 30)
    assert ev('date("2024-03-01") - date("2024-02-01")') == dt.timedelta(days=29)
    assert ev('date("2024-01-31") + duration("P1M")') == dt.date(2024, 2, 29)
    assert ev('date("2024-01-01") + duration("P2D")') == dt.date(2024, 1, 3)
    assert ev('duration("P3M")') == YMDuration(3)
    assert ev('duration("P1Y2M")').total_months == 14
    assert ev('duration("P2D")') == dt.timedelta(days=2)
    assert ev('duration("PT36H") = duration("P1DT12H")') is True
    assert ev('duration("P1Y") > duration("P11M")') is True
    assert ev('duration("P1M") = duration("P30D")') is None  # the two kinds do not compare
    assert ev('duration("P1Y2D")') is None
    assert ev('years and months duration(date("2010-05-03"), date("2024-05-02")).years') == 13
    assert ev('years and months duration(date("2010-05-03"), date("2024-05-03")).years') == 14
    assert ev('date("2024-05-03").year') == 2024
    assert ev('dob < date("2010-01-01")', {"dob": "2009-12-31"}) is True  # ISO string vs date
    assert ev('@"2024-01-01"') == dt.date(2024, 1, 1)


def test_builtin_functions():
    assert ev('string(1.50)') == "1.5"
    assert ev('string(3)') == "3"
    assert ev('number("12.5")') == Decimal("12.5")
    assert ev('not(true)') is False
    assert ev('abs(-2)') == 2
    assert ev('floor(1.7)') == 1 and ev('ceiling(1.2)') == 2 and ev("floor(-1.5)") == -2
    assert ev('min([3, 1, 2])') == 1 and ev('max(3, 1, 2)') == 3
    assert ev('sum([1, 2, 3.5])') == Decimal("6.5")
    assert ev('count([1, 2])') == 2
    assert ev('mean([1, 2, 3])') == 2
    assert ev('contains("foobar", "oba")') is True
    assert ev('starts with("foobar", "foo")') is True
    assert ev('ends with("foobar", "bar")') is True
    assert ev('upper case("abc")') == "ABC" and ev('lower case("ABC")') == "abc"
    assert ev('string length("abcd")') == 4
    assert ev('substring("foobar", 4)') == "bar" and ev('substring("foobar", 1, 3)') == "foo"
    assert ev('flatten([["w", "x"], "y", ["z"]])') == ["w", "x", "y", "z"]
    assert ev('list contains([1, 2], 2)') is True
    assert ev('decimal(1 / 3, 2)') == Decimal("0.33")
    assert ev('distinct values([1, 2, 1])') == [1, 2]
    assert ev('string join(["a", "b"], ", ")') == "a, b"
    assert ev('sum([])') is None
    assert ev('upper case(5)') is None


def test_names_with_spaces_are_declared():
    assert ev("Level of need + 1", {"Level of need": 2}, names=["Level of need"]) == 3
    assert ev('Approval Status = "Approved"', {"Approval Status": "Approved"}, names=["Approval Status"]) is True
    # a built-in name with spaces does not clash with the keyword `and`
    assert ev('date and time("2024-01-01T00:00:00") > date and time("2023-01-01T00:00:00")') is True


@pytest.mark.parametrize("text", [
    "1 +", "if x then 1", "[1..", '"unterminated', "a ! b", ")", "x.", "1 2",
])
def test_syntax_errors(text):
    with pytest.raises(FeelSyntaxError):
        Expression(text)


@pytest.mark.parametrize("text", ['>= ', "[1..5", "not(", '"a",'])
def test_unary_syntax_errors(text):
    with pytest.raises(FeelSyntaxError):
        UnaryTests(text)


def test_no_python_evaluation():
    # Python-isms are not FEEL: they either do not parse or reach nothing
    with pytest.raises(FeelSyntaxError):
        Expression('__import__("os").system("true")')   # unknown function
    with pytest.raises(FeelSyntaxError):
        Expression('eval("1")')
    assert ev("x.__class__", {"x": "s"}) is None
    assert ev("x.__dict__", {"x": {}}) is None
    with pytest.raises(FeelSyntaxError):
        Expression("lambda: 1")


def test_to_json_value():
    assert to_json_value(ev('date("2024-01-02")')) == "2024-01-02"
    assert to_json_value(ev('duration("P2D")')) == "P2D"
    assert to_json_value(ev('duration("PT1H30M")')) == "PT1H30M"
    assert to_json_value(ev('duration("P1Y3M")')) == "P1Y3M"
    assert to_json_value(ev('-duration("P2D")')) == "-P2D"
    assert to_json_value(ev("[1, 2.5]")) == [1, 2.5]


def test_static_intervals_for_overlap_analysis():
    lt18 = UnaryTests("< 18").static_intervals()
    ge18 = UnaryTests(">= 18").static_intervals()
    assert not any(intervals_overlap(a, b) for a in lt18 for b in ge18)
    a = UnaryTests("[1..5]").static_intervals()
    b = UnaryTests("]5..10]").static_intervals()
    c = UnaryTests("[5..10]").static_intervals()
    assert not any(intervals_overlap(x, y) for x in a for y in b)
    assert any(intervals_overlap(x, y) for x in a for y in c)
    s1, s2 = UnaryTests('"a","b"').static_intervals(), UnaryTests('"b"').static_intervals()
    assert any(intervals_overlap(x, y) for x in s1 for y in s2)
    assert not any(intervals_overlap(x, y) for x in s1 for y in UnaryTests('"c"').static_intervals())
    assert UnaryTests("-").static_intervals() == [(None, True, None, True)]
    assert UnaryTests("? > 5").static_intervals() is None      # undecidable
    assert UnaryTests("> limit").static_intervals() is None
    t, f = UnaryTests("true").static_intervals(), UnaryTests("false").static_intervals()
    assert not any(intervals_overlap(x, y) for x in t for y in f)
    neq = UnaryTests('!= "x"').static_intervals()
    assert not any(intervals_overlap(x, y) for x in neq for y in UnaryTests('"x"').static_intervals())


def test_deeply_nested_text_is_rejected_not_a_crash():
    assert ev("1+" * 100 + "1") == 101
    with pytest.raises(FeelSyntaxError, match="nested too deeply"):
        Expression("1+" * 3000 + "1")
    with pytest.raises(FeelSyntaxError, match="nested too deeply"):
        UnaryTests("[" * 1000 + "]" * 1000)
