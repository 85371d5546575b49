"""DMN 1.3 decisions with a real FEEL interpreter.

Replaces SpiffWorkflow's DMN engine, which has no FEEL (cells are run as Python).
Typical use::

    model = load_decisions(root, "level-of-need.dmn")   # DecisionDefinitionError if broken
    problems = check_decisions(model)                    # deploy-time checks, [] when fine
    registry.add(model)
    result = registry.evaluate("level_of_need", case_data)
    result.outputs, result.matched_rules, result.to_json()
"""
from .engine import DecisionEvaluationError, DecisionRegistry, DecisionResult, MatchedRule
from .feel import FeelSyntaxError
from .model import (Decision, DecisionDefinitionError, DecisionModel, Problem, check_decisions,
                    load_decisions)

__all__ = [
    "load_decisions",
    "DecisionModel",
    "Decision",
    "DecisionRegistry",
    "DecisionResult",
    "MatchedRule",
    "DecisionDefinitionError",
    "Problem",
    "DecisionEvaluationError",
    "check_decisions",
    "FeelSyntaxError",
]
