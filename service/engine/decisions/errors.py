"""The decision engine's errors: a model that cannot be used, and an evaluation that cannot finish."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    element: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}" + (f" [{self.element}]" if self.element else "")
        return f"{where}: {self.message}"


class DecisionDefinitionError(Exception):
    """A DMN file that cannot be used; ``problems`` says why."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems) or "invalid decision model")

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class DecisionEvaluationError(Exception):
    """A decision that cannot produce a result for the given context."""

    def __init__(self, decision_id: str, element: str | None, message: str):
        self.decision_id = decision_id
        self.element = element
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message
