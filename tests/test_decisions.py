"""DMN decision tables, hit policies, DRDs and deploy-time checks: no DB, no Flask."""
import datetime as dt
import json
import statistics
import time

import pytest
from lxml import etree

from service.engine.decisions import (Decision, DecisionDefinitionError, DecisionEvaluationError, DecisionModel,
                                      DecisionRegistry, DecisionResult, MatchedRule, Problem, check_decisions,
                                      load_decisions)

DMN13 = "https://www.omg.org/spec/DMN/20191111/MODEL/"
DMN11 = "http://www.omg.org/spec/DMN/20151101/dmn.xsd"
DMN12 = "http://www.omg.org/spec/DMN/20180521/MODEL/"


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def table(inputs, outputs, rules, hit_policy="UNIQUE", aggregation=None, decision_id="d1",
          name="Test table", extra="", requires=()):
    """inputs: [(label, expression, typeRef, inputValues|None)]; outputs: [(name, typeRef, outputValues|None,
    default|None)]; rules: [(inputEntries, outputEntries, annotation|None)]."""
    agg = f' aggregation="{aggregation}"' if aggregation else ""
    ins = "".join(
        f'<input id="in{i}" label="{label}"><inputExpression id="ie{i}" typeRef="{tr}"><text>{esc(expr)}</text>'
        f'</inputExpression>' + (f"<inputValues><text>{esc(iv)}</text></inputValues>" if iv else "") + "</input>"
        for i, (label, expr, tr, iv) in enumerate(inputs, 1))
    outs = "".join(
        f'<output id="out{i}" name="{n}" typeRef="{tr}">'
        + (f"<outputValues><text>{esc(ov)}</text></outputValues>" if ov else "")
        + (f"<defaultOutputEntry><text>{esc(dv)}</text></defaultOutputEntry>" if dv else "") + "</output>"
        for i, (n, tr, ov, dv) in enumerate(outputs, 1))
    rs = ""
    for r, (ie, oe, ann) in enumerate(rules, 1):
        rs += f'<rule id="r{r}">' + (f"<description>{esc(ann)}</description>" if ann else "")
        rs += "".join(f'<inputEntry id="r{r}i{c}"><text>{esc(t)}</text></inputEntry>' for c, t in enumerate(ie, 1))
        rs += "".join(f'<outputEntry id="r{r}o{c}"><text>{esc(t)}</text></outputEntry>' for c, t in enumerate(oe, 1))
        rs += "</rule>"
    req = "".join(f'<informationRequirement><requiredDecision href="#{r}"/></informationRequirement>'
                  for r in requires)
    return (f'<decision id="{decision_id}" name="{name}">{req}<decisionTable id="t_{decision_id}" '
            f'hitPolicy="{hit_policy}"{agg}>{ins}{outs}{rs}</decisionTable></decision>{extra}')


def definitions(body, ns=DMN13):
    return etree.fromstring(f'<definitions xmlns="{ns}" id="defs" name="defs" namespace="http://example/dmn">'
                            f'{body}</definitions>'.encode())


def load(body, filename="test.dmn", ns=DMN13):
    return load_decisions(definitions(body, ns), filename)


def registry_for(*bodies):
    reg = DecisionRegistry()
    for i, body in enumerate(bodies):
        reg.add(load(body, f"f{i}.dmn"))
    return reg


# --------------------------------------------------------------------------- Somerset level of need

SOMERSET = table(
    inputs=[("Risk of significant harm", "risk_of_significant_harm", "boolean", None),
            ("Number of needs", "number_of_needs", "integer", None),
            ("Needs", "needs", "Any", None)],
    outputs=[("level", "string", '"universal","additional","complex","acute"', None)],
    rules=[
        (["true", "-", "-"], ['"acute"'], "Risk of significant harm: strategy discussion (s47)"),
        (["false", ">= 4", "-"], ['"complex"'], "Four or more needs: targeted family support"),
        (["false", "[2..3]", "-"], ['"additional"'], "Two or three needs: early help"),
        (["false", "< 2", 'list contains(?, "neglect")'], ['"additional"'], "Neglect is never universal"),
        (["false", "< 2", 'not(list contains(?, "neglect"))'], ['"universal"'], None),
    ],
    decision_id="level_of_need", name="Level of need")


@pytest.fixture
def somerset():
    return registry_for(SOMERSET)


@pytest.mark.parametrize("harm,count,needs,level,index", [
    (True, 0, [], "acute", 1),
    (True, 7, ["neglect"], "acute", 1),
    (False, 4, ["a", "b", "c", "d"], "complex", 2),
    (False, 2, ["a", "b"], "additional", 3),
    (False, 3.0, ["a", "b", "c"], "additional", 3),      # an integral float is an integer
    (False, 1, ["neglect"], "additional", 4),
    (False, 1, ["housing"], "universal", 5),
    (False, 0, [], "universal", 5),
])
def test_somerset_level_of_need(somerset, harm, count, needs, level, index):
    r = somerset.evaluate("level_of_need", {"risk_of_significant_harm": harm, "number_of_needs": count,
                                            "needs": needs})
    assert r.outputs == level
    assert [m.index for m in r.matched_rules] == [index]
    assert r.matched_rules[0].id == f"r{index}"
    assert r.matched_rules[0].outputs == {"level": level}
    assert r.inputs == {"Risk of significant harm": harm, "Number of needs": int(count), "Needs": needs}


def test_somerset_explanation_and_json(somerset):
    r = somerset.evaluate("level_of_need", {"risk_of_significant_harm": True, "number_of_needs": 0, "needs": []})
    assert r.decision_id == "level_of_need" and r.decision_name == "Level of need"
    assert r.matched_rules[0].annotation == "Risk of significant harm: strategy discussion (s47)"
    j = r.to_json()
    assert json.loads(json.dumps(j)) == j
    assert j["decision"] == "level_of_need"
    assert j["outputs"] == "acute"
    assert j["matched_rules"] == [{"id": "r1", "index": 1,
                                   "annotation": "Risk of significant harm: strategy discussion (s47)"}]
    assert j["inputs"]["Risk of significant harm"] is True


def test_somerset_rejects_wrong_types(somerset):
    with pytest.raises(DecisionEvaluationError) as e:
        somerset.evaluate("level_of_need", {"risk_of_significant_harm": False, "number_of_needs": "ten",
                                            "needs": []})
    assert str(e.value) == "input 'Number of needs' of table 'Level of need' expects a whole number, got 'ten'"
    assert e.value.decision_id == "level_of_need" and e.value.element == "in2"
    with pytest.raises(DecisionEvaluationError, match="expects a whole number, got 2.5"):
        somerset.evaluate("level_of_need", {"risk_of_significant_harm": False, "number_of_needs": 2.5, "needs": []})
    with pytest.raises(DecisionEvaluationError, match="'Risk of significant harm' .* expects a boolean"):
        somerset.evaluate("level_of_need", {"risk_of_significant_harm": "yes", "number_of_needs": 1, "needs": []})


def test_somerset_has_no_deploy_problems():
    assert check_decisions(load(SOMERSET)) == []


def test_missing_input_is_null_and_no_rule_matches(somerset):
    with pytest.raises(DecisionEvaluationError) as e:
        somerset.evaluate("level_of_need", {"number_of_needs": 1, "needs": []})
    msg = str(e.value)
    assert "no rule of table 'Level of need' matched" in msg
    assert "Risk of significant harm = None" in msg and "Number of needs = 1" in msg


# --------------------------------------------------------------------------- hit policies

def three_rules(hp, aggregation=None, outputs=None, out_cells=(("10", '"a"'), ("20", '"b"'), ("30", '"c"')),
                x_tests=(">= 1", ">= 2", ">= 3")):
    outputs = outputs or [("score", "number", None, None), ("label", "string", '"c","b","a"', None)]
    rules = [([t], list(o[:len(outputs)]), f"rule {i}") for i, (t, o) in enumerate(zip(x_tests, out_cells), 1)]
    return registry_for(table([("x", "x", "number", None)], outputs, rules, hit_policy=hp, aggregation=aggregation))


def test_unique_conflict_names_the_rules():
    reg = three_rules("UNIQUE")
    assert reg.evaluate("d1", {"x": 1}).outputs == {"score": 10, "label": "a"}
    with pytest.raises(DecisionEvaluationError) as e:
        reg.evaluate("d1", {"x": 5})
    assert "hit policy UNIQUE" in str(e.value)
    assert "rules 1 (r1), 2 (r2), 3 (r3)" in str(e.value)
    assert "x = 5" in str(e.value)


def test_any_conflict_only_when_outputs_differ():
    reg = three_rules("ANY")
    with pytest.raises(DecisionEvaluationError, match="hit policy ANY but rules 1 \\(r1\\), 2 \\(r2\\)"):
        reg.evaluate("d1", {"x": 2})
    same = three_rules("ANY", out_cells=(("10", '"a"'), ("10", '"a"'), ("30", '"c"')))
    r = same.evaluate("d1", {"x": 2})
    assert r.outputs == {"score": 10, "label": "a"}
    assert [m.index for m in r.matched_rules] == [1, 2]


def test_first():
    r = three_rules("FIRST").evaluate("d1", {"x": 5})
    assert r.outputs == {"score": 10, "label": "a"}
    assert [m.index for m in r.matched_rules] == [1]


def test_priority_uses_output_values_order():
    # outputValues "c","b","a": c has the highest priority
    r = three_rules("PRIORITY").evaluate("d1", {"x": 5})
    assert r.outputs == {"score": 30, "label": "c"}
    assert three_rules("PRIORITY").evaluate("d1", {"x": 2}).outputs == {"score": 20, "label": "b"}


def test_rule_order_and_output_order():
    assert three_rules("RULE ORDER").evaluate("d1", {"x": 5}).outputs == [
        {"score": 10, "label": "a"}, {"score": 20, "label": "b"}, {"score": 30, "label": "c"}]
    assert three_rules("OUTPUT ORDER").evaluate("d1", {"x": 5}).outputs == [
        {"score": 30, "label": "c"}, {"score": 20, "label": "b"}, {"score": 10, "label": "a"}]


def test_collect_and_aggregations():
    single = [("score", "number", None, None)]
    assert three_rules("COLLECT", outputs=single).evaluate("d1", {"x": 5}).outputs == [10, 20, 30]
    assert three_rules("COLLECT", outputs=single).evaluate("d1", {"x": 2}).outputs == [10, 20]
    assert three_rules("COLLECT", "SUM", outputs=single).evaluate("d1", {"x": 5}).outputs == 60
    assert three_rules("COLLECT", "MIN", outputs=single).evaluate("d1", {"x": 5}).outputs == 10
    assert three_rules("COLLECT", "MAX", outputs=single).evaluate("d1", {"x": 5}).outputs == 30
    assert three_rules("COLLECT", "COUNT", outputs=single).evaluate("d1", {"x": 5}).outputs == 3
    r = three_rules("COLLECT", "SUM", outputs=single).evaluate("d1", {"x": 5})
    assert [m.index for m in r.matched_rules] == [1, 2, 3]
    decimals = three_rules("COLLECT", "SUM", outputs=single, out_cells=(("0.1",), ("0.2",), ("0",)))
    assert decimals.evaluate("d1", {"x": 5}).outputs == 0.3


def test_multi_hit_no_match():
    single = [("score", "number", None, None)]
    assert three_rules("COLLECT", outputs=single).evaluate("d1", {"x": 0}).outputs == []
    assert three_rules("RULE ORDER", outputs=single).evaluate("d1", {"x": 0}).outputs == []
    assert three_rules("OUTPUT ORDER").evaluate("d1", {"x": 0}).outputs == []
    assert three_rules("COLLECT", "COUNT", outputs=single).evaluate("d1", {"x": 0}).outputs == 0
    assert three_rules("COLLECT", "SUM", outputs=single).evaluate("d1", {"x": 0}).outputs is None
    assert three_rules("COLLECT", "MAX", outputs=single).evaluate("d1", {"x": 0}).outputs is None


def test_single_output_shapes():
    single = [("score", "number", None, None)]
    assert three_rules("FIRST", outputs=single).evaluate("d1", {"x": 5}).outputs == 10
    assert three_rules("RULE ORDER", outputs=single).evaluate("d1", {"x": 5}).outputs == [10, 20, 30]


@pytest.mark.parametrize("hp", ["UNIQUE", "FIRST", "PRIORITY", "ANY"])
def test_single_hit_no_match_is_an_error(hp):
    with pytest.raises(DecisionEvaluationError) as e:
        three_rules(hp).evaluate("d1", {"x": 0})
    assert "no rule of table 'Test table' matched the inputs x = 0" in str(e.value)


def test_default_output_entry():
    reg = registry_for(table(
        [("Age", "age", "number", None)],
        [("status", "string", None, '"Declined"'), ("rate", "string", None, None)],
        [([">= 18"], ['"Approved"', '"Best"'], None)]))
    assert reg.evaluate("d1", {"age": 20}).outputs == {"status": "Approved", "rate": "Best"}
    r = reg.evaluate("d1", {"age": 10})
    assert r.outputs == {"status": "Declined", "rate": None}
    assert r.matched_rules == []


def test_collect_default_when_nothing_matches():
    reg = registry_for(table([("x", "x", "number", None)], [("n", "number", None, "0")],
                             [([">= 1"], ["5"], None)], hit_policy="COLLECT", aggregation="SUM"))
    assert reg.evaluate("d1", {"x": 0}).outputs == 0
    assert reg.evaluate("d1", {"x": 1}).outputs == 5


# --------------------------------------------------------------------------- typed inputs and outputs

def typed(type_ref, test, input_values=None):
    return registry_for(table([("Value", "v", type_ref, input_values)], [("ok", "boolean", None, 'false')],
                              [([test], ["true"], None)]))


@pytest.mark.parametrize("type_ref,test,value,expected", [
    ("number", "> 5", 6, True), ("number", "> 5", 5.5, True), ("integer", "> 5", 6.0, True),
    ("long", "5", 5, True), ("double", "< 0.5", 0.25, True),
    ("string", '"x"', "x", True), ("boolean", "true", True, True), ("boolean", "true", False, False),
    ("date", '< date("2024-01-01")', "2023-12-31", True),
    ("date", '< date("2024-01-01")', dt.date(2024, 1, 1), False),
    ("dateTime", '>= date and time("2024-01-01T10:00:00")', "2024-01-01T10:00:00", True),
    ("time", '< time("12:00:00")', "09:30:00", True),
    ("dayTimeDuration", '> duration("P2D")', "P3D", True),
    ("yearMonthDuration", '>= duration("P3M")', "P3M", True),
    ("Any", '"x"', "x", True),
    ("number", "> 5", None, False),                          # null is allowed and matches nothing
])
def test_typed_inputs(type_ref, test, value, expected):
    assert typed(type_ref, test).evaluate("d1", {"v": value}).outputs is expected


@pytest.mark.parametrize("type_ref,value,words", [
    ("number", "ten", "expects a number, got 'ten'"),
    ("number", True, "expects a number, got true"),
    ("integer", 2.5, "expects a whole number, got 2.5"),
    ("string", 5, "expects a string, got 5"),
    ("boolean", "true", "expects a boolean (true or false), got 'true'"),
    ("date", "31/12/2023", "expects a date (YYYY-MM-DD), got '31/12/2023'"),
    ("date", 20231231, "expects a date"),
    ("dayTimeDuration", "P3M", "expects a days-and-time duration"),
])
def test_wrong_input_type_names_the_input(type_ref, value, words):
    with pytest.raises(DecisionEvaluationError) as e:
        typed(type_ref, "-").evaluate("d1", {"v": value})
    assert str(e.value) == f"input 'Value' of table 'Test table' {words}" or words in str(e.value)
    assert "input 'Value' of table 'Test table'" in str(e.value)


def test_input_values_are_enforced():
    reg = typed("string", '"High"', input_values='"High","Low"')
    assert reg.evaluate("d1", {"v": "Low"}).outputs is False
    with pytest.raises(DecisionEvaluationError, match="input 'Value' of table 'Test table' is 'Medium', which is "
                                                      "not one of the allowed values"):
        reg.evaluate("d1", {"v": "Medium"})


def test_output_values_and_types_are_enforced():
    reg = registry_for(table([("x", "x", "number", None)], [("level", "string", '"low","high"', None)],
                             [(["< 0"], ['"medium"'], None), (["[0..10]"], ["42"], None), (["> 10"], ['"high"'], None)]))
    assert reg.evaluate("d1", {"x": 11}).outputs == "high"
    with pytest.raises(DecisionEvaluationError, match="not one of the outputValues"):
        reg.evaluate("d1", {"x": -1})
    with pytest.raises(DecisionEvaluationError, match="output 'level' of table 'Test table' expects a string, "
                                                      "rule 2 \\(r2\\) gives 42"):
        reg.evaluate("d1", {"x": 5})


def test_output_expressions_use_feel():
    reg = registry_for(table(
        [("Child age", "child.age", "number", None)],
        [("message", "string", None, None), ("next_review", "date", None, None), ("score", "number", None, None)],
        [(["-"], ['"Age " + string(child.age)', 'date(referral) + duration("P10D")', "child.age * 0.1"], None)]))
    r = reg.evaluate("d1", {"child": {"age": 12}, "referral": "2024-03-01"})
    assert r.outputs == {"message": "Age 12", "next_review": dt.date(2024, 3, 11), "score": 1.2}
    assert r.inputs == {"Child age": 12}
    assert r.to_json()["outputs"] == {"message": "Age 12", "next_review": "2024-03-11", "score": 1.2}


def test_input_label_falls_back_to_expression_text():
    body = ('<decision id="d" name="D"><decisionTable><input><inputExpression typeRef="number"><text>child.age'
            '</text></inputExpression></input><output name="o" typeRef="string"/><rule id="r1"><inputEntry>'
            '<text>-</text></inputEntry><outputEntry><text>"x"</text></outputEntry></rule></decisionTable></decision>')
    r = registry_for(body).evaluate("d", {"child": {"age": 3}})
    assert r.inputs == {"child.age": 3}
    assert r.outputs == "x"


# --------------------------------------------------------------------------- decision requirements

DRD = (
    table([("Age", "age", "number", None)], [("band", "string", None, None)],
          [(["< 5"], ['"early years"'], None), (["[5..17]"], ['"school age"'], None), ([">= 18"], ['"adult"'], None)],
          decision_id="age_band", name="Age band")
    + table([("Age band", "Age band", "string", None), ("Needs", "count(needs)", "number", None)],
            [("service", "string", None, None)],
            [(['"early years"', "-"], ['"health visiting"'], None),
             (['"school age"', ">= 2"], ['"early help"'], None),
             (['"school age"', "< 2"], ['"universal"'], None),
             (['"adult"', "-"], ['"adult services"'], None)],
            decision_id="service", name="Service", requires=["age_band"])
    + '<decision id="summary" name="Summary"><informationRequirement><requiredDecision href="#service"/>'
      '</informationRequirement><informationRequirement><requiredDecision href="#age_band"/>'
      '</informationRequirement><literalExpression><text>Service + " (" + age_band + ")"</text>'
      '</literalExpression></decision>'
)


def test_drd_two_decisions_in_one_file():
    reg = registry_for(DRD)
    r = reg.evaluate("service", {"age": 9, "needs": ["a", "b"]})
    assert r.outputs == "early help"
    assert r.inputs == {"Age band": "school age", "Needs": 2}
    assert [q.decision_id for q in r.required] == ["age_band"]
    assert r.required[0].outputs == "school age"
    assert r.to_json()["required"][0]["decision"] == "age_band"
    assert reg.evaluate("service", {"age": 2, "needs": []}).outputs == "health visiting"


def test_literal_expression_decision_uses_names_and_ids():
    reg = registry_for(DRD)
    r = reg.evaluate("summary", {"age": 30, "needs": []})
    assert r.outputs == "adult services (adult)"
    assert r.matched_rules == []


def test_required_decision_in_another_file():
    other = ('<decision id="eligible" name="Eligible"><informationRequirement><requiredDecision '
             'href="#age_band"/></informationRequirement><literalExpression><text>age_band != "adult"</text>'
             '</literalExpression></decision>')
    reg = DecisionRegistry()
    reg.add(load(other, "eligible.dmn"))
    with pytest.raises(DecisionEvaluationError, match="requires decision 'age_band', which is not deployed"):
        reg.evaluate("eligible", {"age": 3})
    reg.add(load(DRD, "bands.dmn"))
    assert reg.evaluate("eligible", {"age": 3}).outputs is True
    assert reg.evaluate("eligible", {"age": 30}).outputs is False


def test_multi_output_required_decision_is_a_context():
    body = (table([("x", "x", "number", None)], [("a", "number", None, None), ("b", "string", None, None)],
                  [(["-"], ["x + 1", '"y"'], None)], decision_id="inner", name="Inner")
            + '<decision id="outer" name="Outer"><informationRequirement><requiredDecision href="#inner"/>'
              '</informationRequirement><literalExpression><text>Inner.a * 2</text></literalExpression></decision>')
    assert registry_for(body).evaluate("outer", {"x": 1}).outputs == 4


def test_registry_rejects_duplicate_ids_across_files_and_replaces_same_file():
    reg = DecisionRegistry()
    reg.add(load(SOMERSET, "a.dmn"))
    with pytest.raises(DecisionDefinitionError) as e:
        reg.add(load(SOMERSET, "b.dmn"))
    assert e.value.problems[0].element == "level_of_need"
    assert "already defined in 'a.dmn'" in str(e.value)
    reg.add(load(SOMERSET, "a.dmn"))   # redeploying the same file replaces it
    assert "level_of_need" in reg and isinstance(reg.get("level_of_need"), Decision)
    assert "nope" not in reg
    with pytest.raises(DecisionEvaluationError, match="no decision with id 'nope'"):
        reg.evaluate("nope", {})


@pytest.mark.parametrize("ns", [DMN11, DMN12, DMN13, "https://www.omg.org/spec/DMN/20230324/MODEL/"])
def test_dmn_namespaces(ns):
    model = load(SOMERSET, ns=ns)
    assert isinstance(model, DecisionModel)
    assert model.filename == "test.dmn" and model.namespace == "http://example/dmn"
    d = model.decisions["level_of_need"]
    assert d.hit_policy == "UNIQUE" and len(d.rules) == 5 and len(d.inputs) == 3
    reg = DecisionRegistry()
    reg.add(model)
    assert reg.evaluate("level_of_need", {"risk_of_significant_harm": True, "number_of_needs": 0,
                                          "needs": []}).outputs == "acute"


def test_camunda_dmn11_integer_and_single_quotes_free_cells():
    # Camunda 7 modeler (DMN 1.1) writes typeRef="integer"; cells are plain FEEL
    body = table([("Score", "score", "integer", None)], [("band", "string", None, None)],
                 [(["< 10"], ['"low"'], None), ([">= 10"], ['"high"'], None)])
    reg = DecisionRegistry()
    reg.add(load(body, ns=DMN11))
    assert reg.evaluate("d1", {"score": 12}).outputs == "high"


# --------------------------------------------------------------------------- structural errors

@pytest.mark.parametrize("body,message", [
    ('<decision id="d" name="D"><variable name="D"/></decision>', "has no decisionTable or literalExpression"),
    ('<decision id="d" name="D"><decisionTable><input id="i1" label="Age"/><output name="o"/></decisionTable>'
     '</decision>', "input 'Age' has no inputExpression"),
    (table([("x", "x", "number", None)], [("o", "string", None, None)], [(["1", "2"], ['"a"'], None)]),
     "rule 1: has 2 input and 1 output entries, the table has 1 inputs and 1 outputs"),
    (table([("x", "x", "number", None)], [("o", "string", None, None)], [(["1"], ['"a"'], None)],
           hit_policy="SOMETIMES"), "unknown hitPolicy 'SOMETIMES'"),
    (table([("x", "x", "number", None)], [("o", "number", None, None)], [(["1"], ["1"], None)],
           hit_policy="COLLECT", aggregation="AVG"), "unknown aggregation 'AVG'"),
    (table([("x", "x", "number", None)], [("o", "number", None, None)], [(["1"], ["1"], None)],
           hit_policy="FIRST", aggregation="SUM"), "only allowed with hit policy COLLECT"),
    ("", "defines no <decision>"),
])
def test_structural_errors(body, message):
    with pytest.raises(DecisionDefinitionError) as e:
        load(body)
    assert any(message in p.message for p in e.value.problems), str(e.value)
    assert all(isinstance(p, Problem) and p.file == "test.dmn" for p in e.value.problems)
    assert message in str(e.value)


def test_not_a_dmn_file():
    with pytest.raises(DecisionDefinitionError, match="root element must be <definitions>"):
        load_decisions(etree.fromstring(b"<process/>"), "x.bpmn")


# --------------------------------------------------------------------------- deploy-time checks

def test_check_reports_unparsable_cells_with_rule_and_column():
    model = load(table([("Age", "age", "number", None), ("Risk", "risk", "string", None)],
                       [("o", "string", None, None)],
                       [([">= 18", '"high"'], ['"a"'], None),
                        (["[1..", '"low"'], ['"b"'], None),
                        (["< 18", "x ! y"], ['"c" +'], None)]))
    problems = check_decisions(model)
    assert [p.element for p in problems] == ["r2", "r3", "r3"]
    assert all(p.file == "test.dmn" for p in problems)
    assert "rule 2 (r2), input 'Age': '[1..'" in problems[0].message
    assert "rule 3 (r3), input 'Risk': 'x ! y'" in problems[1].message
    assert "rule 3 (r3), output 'o': '\"c\" +'" in problems[2].message
    # and evaluating the broken rule says which cell is broken
    reg = DecisionRegistry()
    reg.add(model)
    with pytest.raises(DecisionEvaluationError, match="rule 2: input entry '\\[1..' is not valid FEEL"):
        reg.evaluate("d1", {"age": 5, "risk": "low"})


def test_check_reports_unknown_functions():
    model = load(table([("x", "x", "number", None)], [("o", "string", None, None)],
                       [(['frobnicate(?)'], ['"a"'], None)]))
    [p] = check_decisions(model)
    assert "unknown function 'frobnicate'" in p.message and p.element == "r1"


def test_check_reports_unique_overlaps():
    model = load(table([("Age", "age", "number", None), ("Risk", "risk", "string", None)],
                       [("o", "string", None, None)],
                       [(["< 18", '"high"'], ['"a"'], None),
                        ([">= 18", '"high"'], ['"b"'], None),
                        (["[10..20]", '"high","low"'], ['"c"'], None),
                        (["> 30", "-"], ['"d"'], None),
                        (["? > 100", "-"], ['"e"'], None)]))        # undecidable: not reported
    problems = check_decisions(model)
    msgs = [p.message for p in problems]
    assert len(problems) == 3, msgs
    assert "rules 1 (r1) and 3 (r3) overlap" in msgs[0]
    assert "rules 2 (r2) and 3 (r3) overlap" in msgs[1]
    assert "rules 2 (r2) and 4 (r4) overlap" in msgs[2]
    assert problems[0].element == "r3"


def test_check_accepts_adjacent_ranges_and_distinct_values():
    model = load(table([("Age", "age", "number", None), ("Flag", "flag", "boolean", None)],
                       [("o", "string", None, None)],
                       [(["[0..5]", "true"], ['"a"'], None), (["]5..10]", "true"], ['"b"'], None),
                        (["[0..10]", "false"], ['"c"'], None), (["> 10", "-"], ['"d"'], None)]))
    assert check_decisions(model) == []


def test_check_priority_without_output_values():
    model = load(table([("x", "x", "number", None)], [("o", "string", None, None)],
                       [(["> 1"], ['"a"'], None)], hit_policy="PRIORITY"))
    [p] = check_decisions(model)
    assert "hit policy PRIORITY needs outputValues" in p.message and p.element == "d1"
    model = load(table([("x", "x", "number", None)], [("o", "string", None, None)],
                       [(["> 1"], ['"a"'], None)], hit_policy="OUTPUT ORDER"))
    assert "OUTPUT ORDER needs outputValues" in check_decisions(model)[0].message


def test_check_duplicate_rule_ids_and_bad_output_values():
    body = table([("x", "x", "number", None)], [("o", "string", '"a","b"', None)],
                 [(["1"], ['"a"'], None), (["2"], ['"z"'], None)], hit_policy="FIRST").replace('id="r2"', 'id="r1"')
    problems = check_decisions(load(body))
    msgs = [p.message for p in problems]
    assert any("rules 1 and 2 share the id 'r1'" in m for m in msgs), msgs
    assert any('"z" is not one of the outputValues' in m for m in msgs), msgs


def test_check_reports_cycles():
    body = ('<decision id="a" name="A"><informationRequirement><requiredDecision href="#b"/>'
            '</informationRequirement><literalExpression><text>B</text></literalExpression></decision>'
            '<decision id="b" name="B"><informationRequirement><requiredDecision href="#a"/>'
            '</informationRequirement><literalExpression><text>A</text></literalExpression></decision>')
    model = load(body)
    assert any("cycle" in p.message for p in check_decisions(model))
    reg = DecisionRegistry()
    reg.add(model)
    with pytest.raises(DecisionEvaluationError, match="cycle"):
        reg.evaluate("a", {})


# --------------------------------------------------------------------------- public types and performance

def test_public_dataclasses():
    r = three_rules("FIRST").evaluate("d1", {"x": 1})
    assert isinstance(r, DecisionResult) and isinstance(r.matched_rules[0], MatchedRule)
    assert r.matched_rules[0] == MatchedRule(id="r1", index=1, annotation="rule 1", outputs={"score": 10, "label": "a"})
    d = load(SOMERSET).decisions["level_of_need"]
    assert d.required == [] and d.aggregation is None and d.name == "Level of need"
    assert [o.name for o in d.outputs] == ["level"]
    assert d.rules[0].annotation.startswith("Risk of significant harm")


def test_twenty_rule_table_evaluates_well_under_a_millisecond():
    rules = [([f"[{i * 5}..{i * 5 + 5})", '"a","b"', "-"], [f'"band {i}"', f"{i}"], f"band {i}") for i in range(20)]
    reg = registry_for(table([("Score", "score", "number", None), ("Kind", "kind", "string", None),
                              ("Flag", "flag", "boolean", None)],
                             [("band", "string", None, None), ("n", "number", None, None)], rules))
    ctx = {"score": 97, "kind": "b", "flag": True}
    assert reg.evaluate("d1", ctx).outputs == {"band": "band 19", "n": 19}
    timings = []
    for _ in range(300):
        t0 = time.perf_counter()
        reg.evaluate("d1", ctx)
        timings.append(time.perf_counter() - t0)
    assert statistics.median(timings) < 0.001, statistics.median(timings)
