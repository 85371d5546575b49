"""DMN 1.5 decisions with a FEEL interpreter of its own (no Python eval).

Typical use::

    model = load_decisions(root, "level-of-need.dmn")   # DecisionDefinitionError if broken
    problems = check_decisions(model)                    # deploy-time checks, [] when fine
    registry.add(model)
    result = registry.evaluate("level_of_need", case_data)
    result.outputs, result.matched_rules, result.to_json()

``DecisionRegistry(strict=False)`` evaluates exactly as the DMN standard says (a table that cannot decide
gives null); the default, strict, makes that an error naming the table, rules and inputs.
"""
from .engine import DecisionRegistry, DecisionResult, MatchedRule
from .errors import DecisionDefinitionError, DecisionEvaluationError, Problem
from .feel import FeelSyntaxError, Limits
from .typed_json import TypedJsonError, from_json, to_json
from .model import (BusinessKnowledgeModel, Decision, DecisionModel, DecisionService, InputData, check_decisions,
                    load_decisions)

__all__ = [
    "load_decisions",
    "DecisionModel",
    "Decision",
    "InputData",
    "BusinessKnowledgeModel",
    "DecisionService",
    "DecisionRegistry",
    "DecisionResult",
    "MatchedRule",
    "DecisionDefinitionError",
    "Problem",
    "DecisionEvaluationError",
    "check_decisions",
    "FeelSyntaxError",
    "Limits",
    "to_json",
    "from_json",
    "TypedJsonError",
]
