"""Decisions as the DMN standard says: every hit policy at its boundary, DRDs by output names (Camunda's
dinnerDecisions), boxed expressions, knowledge models, decision services and typed JSON. No DB, no Flask."""
import datetime as dt
from decimal import Decimal

import pytest
from lxml import etree

from service.engine.decisions import (DecisionEvaluationError, DecisionRegistry, check_decisions, from_json,
                                      load_decisions, to_json)

DMN15 = "https://www.omg.org/spec/DMN/20230324/MODEL/"


def model(body: str, strict: bool = True, name: str = "m.dmn"):
    root = etree.fromstring(f'<definitions xmlns="{DMN15}" id="defs" name="defs" namespace="http://example/m">'
                            f'{body}</definitions>'.encode())
    return load_decisions(root, name, strict=strict)


def registry(body: str, strict: bool = True) -> DecisionRegistry:
    reg = DecisionRegistry(strict=strict)
    reg.add(model(body, strict))
    return reg


def hit_table(hit_policy: str, rules, aggregation: str = "", output_values: str = "") -> str:
    """x in, one number out; rules: [(input entry, output entry)]."""
    agg = f' aggregation="{aggregation}"' if aggregation else ""
    ov = f"<outputValues><text>{output_values}</text></outputValues>" if output_values else ""
    rs = "".join(f'<rule id="r{i}"><inputEntry><text>{t}</text></inputEntry>'
                 f'<outputEntry><text>{o}</text></outputEntry></rule>' for i, (t, o) in enumerate(rules, 1))
    return (f'<decision id="d" name="D"><decisionTable hitPolicy="{hit_policy}"{agg}>'
            f'<input id="i"><inputExpression typeRef="number"><text>x</text></inputExpression></input>'
            f'<output id="o" name="o" typeRef="number">{ov}</output>{rs}</decisionTable></decision>')


TWO_MATCH = [("&lt; 10", "1"), ("&lt; 20", "2"), ("&gt;= 20", "3")]   # x = 5 matches rules 1 and 2


@pytest.mark.parametrize("strict", [True, False])
def test_unique_with_exactly_two_matching_rules_fails(strict):
    reg = registry(hit_table("UNIQUE", TWO_MATCH), strict)
    assert reg.evaluate("d", {"x": 15}).outputs == 2          # exactly one: fine
    if strict:
        with pytest.raises(DecisionEvaluationError, match="hit policy UNIQUE but rules 1 \\(r1\\), 2 \\(r2\\)"):
            reg.evaluate("d", {"x": 5})
    else:
        assert reg.evaluate("d", {"x": 5}).value is None     # the standard's error is null


@pytest.mark.parametrize("strict", [True, False])
def test_any_with_two_matching_rules_agreeing_and_differing(strict):
    same = registry(hit_table("ANY", [("&lt; 10", "1"), ("&lt; 20", "1")]), strict)
    assert same.evaluate("d", {"x": 5}).outputs == 1
    differ = registry(hit_table("ANY", TWO_MATCH), strict)
    if strict:
        with pytest.raises(DecisionEvaluationError, match="hit policy ANY"):
            differ.evaluate("d", {"x": 5})
    else:
        assert differ.evaluate("d", {"x": 5}).value is None


@pytest.mark.parametrize("hit_policy,aggregation,expected", [
    ("FIRST", "", 1), ("RULE ORDER", "", [1, 2]), ("COLLECT", "", [1, 2]), ("COLLECT", "SUM", 3),
    ("COLLECT", "MIN", 1), ("COLLECT", "MAX", 2), ("COLLECT", "COUNT", 2),
])
def test_multiple_hit_policies_with_two_matching_rules(hit_policy, aggregation, expected):
    assert registry(hit_table(hit_policy, TWO_MATCH, aggregation)).evaluate("d", {"x": 5}).outputs == expected


def test_priority_and_output_order_follow_output_values_not_rule_order():
    rules = [("&lt; 10", "1"), ("&lt; 20", "2")]
    assert registry(hit_table("PRIORITY", rules, output_values="2,1")).evaluate("d", {"x": 5}).outputs == 2
    assert registry(hit_table("OUTPUT ORDER", rules, output_values="2,1")).evaluate("d", {"x": 5}).outputs == [2, 1]


def test_no_matching_rule_is_null_in_standard_mode_and_an_error_in_strict():
    assert registry(hit_table("UNIQUE", TWO_MATCH), strict=False).evaluate("d", {"x": None}).value is None
    with pytest.raises(DecisionEvaluationError, match="no rule of table"):
        registry(hit_table("UNIQUE", TWO_MATCH)).evaluate("d", {"x": None})
    assert registry(hit_table("COLLECT", TWO_MATCH, "COUNT")).evaluate("d", {"x": None}).outputs == 0


DINNER = """
<decision id="dishDecision" name="Dish">
  <informationRequirement><requiredDecision href="#seasonDecision"/></informationRequirement>
  <informationRequirement><requiredDecision href="#guestCountDecision"/></informationRequirement>
  <decisionTable id="dishTable">
    <input id="i1" label="Season"><inputExpression typeRef="string"><text>season</text></inputExpression></input>
    <input id="i2" label="How many guests"><inputExpression typeRef="integer"><text>guestCount</text></inputExpression></input>
    <output id="o1" label="Dish" name="desiredDish" typeRef="string"/>
    <rule id="a"><inputEntry><text>"Winter"</text></inputEntry><inputEntry><text>&lt;= 8</text></inputEntry><outputEntry><text>"Spareribs"</text></outputEntry></rule>
    <rule id="b"><inputEntry><text>"Winter"</text></inputEntry><inputEntry><text>&gt; 8</text></inputEntry><outputEntry><text>"Pasta"</text></outputEntry></rule>
    <rule id="c"><inputEntry><text>"Summer"</text></inputEntry><inputEntry><text>&gt; 10</text></inputEntry><outputEntry><text>"Light salad"</text></outputEntry></rule>
    <rule id="d"><inputEntry><text>"Summer"</text></inputEntry><inputEntry><text>&lt;= 10</text></inputEntry><outputEntry><text>"Beans salad"</text></outputEntry></rule>
    <rule id="e"><inputEntry><text>"Spring"</text></inputEntry><inputEntry><text>&lt; 10</text></inputEntry><outputEntry><text>"Stew"</text></outputEntry></rule>
    <rule id="f"><inputEntry><text>"Spring"</text></inputEntry><inputEntry><text>&gt;= 10</text></inputEntry><outputEntry><text>"Steak"</text></outputEntry></rule>
  </decisionTable>
</decision>
<decision id="seasonDecision" name="Season">
  <decisionTable id="seasonTable">
    <input id="i3" label="Weather in Celsius"><inputExpression typeRef="integer"><text>temperature</text></inputExpression></input>
    <output id="o2" label="season" name="season" typeRef="string"/>
    <rule id="g"><inputEntry><text>&gt; 30</text></inputEntry><outputEntry><text>"Summer"</text></outputEntry></rule>
    <rule id="h"><inputEntry><text>&lt;= 0</text></inputEntry><outputEntry><text>"Winter"</text></outputEntry></rule>
    <rule id="k"><inputEntry><text>]0..30]</text></inputEntry><outputEntry><text>"Spring"</text></outputEntry></rule>
  </decisionTable>
</decision>
<decision id="guestCountDecision" name="Guest Count">
  <decisionTable id="guestCountTable">
    <input id="i4" label="Type of day"><inputExpression typeRef="string"><text>dayType</text></inputExpression></input>
    <output id="o3" label="Guest Count" name="guestCount" typeRef="integer"/>
    <rule id="m"><inputEntry><text>"Weekday"</text></inputEntry><outputEntry><text>4</text></outputEntry></rule>
    <rule id="n"><inputEntry><text>"Holiday"</text></inputEntry><outputEntry><text>10</text></outputEntry></rule>
    <rule id="p"><inputEntry><text>"Weekend"</text></inputEntry><outputEntry><text>15</text></outputEntry></rule>
  </decisionTable>
</decision>"""


@pytest.mark.parametrize("temperature,day,dish", [
    (-5, "Weekday", "Spareribs"), (-5, "Weekend", "Pasta"), (35, "Weekend", "Light salad"),
    (35, "Holiday", "Beans salad"), (20, "Weekday", "Stew"), (20, "Holiday", "Steak"),
])
def test_required_decisions_are_available_by_their_output_names(temperature, day, dish):
    # Camunda's dinnerDecisions: the Dish table reads `season` and `guestCount`, the outputs' names
    reg = registry(DINNER)
    assert reg.evaluate("dishDecision", {"temperature": temperature, "dayType": day}).outputs == dish


def test_a_required_decisions_output_wins_over_case_data_of_the_same_name():
    reg = registry(DINNER)
    assert reg.evaluate("dishDecision", {"temperature": 35, "dayType": "Weekend", "season": "Winter"}).outputs \
        == "Light salad"


BOXED = """
<businessKnowledgeModel id="bkm" name="Monthly payment">
  <encapsulatedLogic>
    <formalParameter name="amount" typeRef="number"/><formalParameter name="rate" typeRef="number"/>
    <formalParameter name="term" typeRef="number"/>
    <literalExpression><text>(amount * rate / 12) / (1 - (1 + rate / 12) ** -term)</text></literalExpression>
  </encapsulatedLogic>
</businessKnowledgeModel>
<decision id="loan" name="Loan">
  <knowledgeRequirement><requiredKnowledge href="#bkm"/></knowledgeRequirement>
  <context>
    <contextEntry><variable name="principal"/><literalExpression><text>600000</text></literalExpression></contextEntry>
    <contextEntry><variable name="payment"/>
      <invocation><literalExpression><text>Monthly payment</text></literalExpression>
        <binding><parameter name="amount"/><literalExpression><text>principal</text></literalExpression></binding>
        <binding><parameter name="rate"/><literalExpression><text>0.0375</text></literalExpression></binding>
        <binding><parameter name="term"/><literalExpression><text>360</text></literalExpression></binding>
      </invocation></contextEntry>
    <contextEntry><literalExpression><text>decimal(payment, 2)</text></literalExpression></contextEntry>
  </context>
</decision>
<decision id="big" name="Big ones">
  <variable name="Big ones" typeRef="tNumbers"/>
  <filter><in><list><literalExpression><text>1</text></literalExpression><literalExpression><text>5</text></literalExpression>
    <literalExpression><text>9</text></literalExpression></list></in>
    <match><literalExpression><text>item &gt; 3</text></literalExpression></match></filter>
</decision>
<itemDefinition name="tNumbers" isCollection="true"><typeRef>number</typeRef></itemDefinition>
<decisionService id="svc" name="Loan service"><outputDecision href="#loan"/></decisionService>"""


def test_boxed_context_invocation_and_knowledge_model():
    reg = registry(BOXED, strict=False)
    assert reg.evaluate("loan").value == Decimal("2778.69")
    assert reg.evaluate("big").value == [5, 9]


def test_decision_service_evaluates_its_output_decision():
    reg = registry(BOXED, strict=False)
    result = reg.evaluate_decision_service("svc", {})
    assert result.value == Decimal("2778.69") and [r.decision_id for r in result.required] == ["loan"]
    with pytest.raises(DecisionEvaluationError, match="no decision service"):
        reg.evaluate_decision_service("nope", {})


def test_standard_mode_accepts_a_decision_without_logic_and_without_an_id():
    reg = registry('<decision name="Nothing"><variable name="Nothing"/></decision>', strict=False)
    assert reg.evaluate("Nothing").value is None


def test_typed_outputs_are_coerced_in_standard_mode():
    body = ('<decision id="d" name="D"><variable name="D" typeRef="number"/>'
            '<literalExpression><text>"not a number"</text></literalExpression></decision>')
    assert registry(body, strict=False).evaluate("d").value is None
    with pytest.raises(DecisionEvaluationError, match="expects a number"):
        registry(body).evaluate("d")


def test_boxed_expressions_with_invalid_feel_are_reported_at_deploy():
    body = ('<decision id="d" name="D"><context><contextEntry><variable name="a"/>'
            '<literalExpression><text>1 +</text></literalExpression></contextEntry></context></decision>')
    assert any("'a'" in p.message for p in check_decisions(model(body)))


def test_typed_json_round_trip():
    value = {"when": dt.date(2024, 5, 1), "n": Decimal("0.1"), "third": Decimal(1) / Decimal(3),
             "items": [Decimal(1), None, "x"], "@type": "mine"}
    out = to_json(value)
    assert out["value"]["when"] == {"@type": "date", "value": "2024-05-01"}
    assert out["value"]["n"] == 0.1 and out["value"]["third"]["@type"] == "number"
    assert from_json(out) == value
    assert from_json({"@type": "days and time duration", "value": "P2D"}) == dt.timedelta(days=2)
    with pytest.raises(ValueError):
        from_json({"@type": "date", "value": "2024-02-30"})


def test_a_date_given_for_a_date_and_time_is_midnight_utc():
    body = ('<inputData id="i" name="When"><variable name="When" typeRef="dateTime"/></inputData>'
            '<decision id="d" name="D"><informationRequirement><requiredInput href="#i"/></informationRequirement>'
            '<literalExpression><text>When</text></literalExpression></decision>')
    value = registry(body, strict=False).evaluate("d", {"When": dt.date(2024, 5, 1)}).value
    assert value == dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
