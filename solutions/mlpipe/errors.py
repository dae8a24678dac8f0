"""The pipeline's errors: problems the user can fix, each told in one sentence.

Every stage raises a subclass of :class:`PipelineError`, so the command line
catches one type, prints the sentence and exits with code 2. Each subclass
also keeps the built-in base it always had (``ValueError`` for bad input,
``RuntimeError`` for a system that does not answer), so code that catches
those still does.
"""

from __future__ import annotations

from typing import Any


class PipelineError(Exception):
    """A problem the user can fix; the message is one sentence."""


class ParamsError(PipelineError, ValueError):
    """A params file that cannot be used; the message is one sentence."""


class DataError(PipelineError, ValueError):
    """A data file that cannot be used; the message is one sentence."""


class ValidationError(PipelineError, ValueError):
    """Data that failed validation; the message names every failed check.

    Attributes:
        result: The :class:`mlpipe.validate.ValidationResult` that failed.
    """

    def __init__(self, result: Any) -> None:
        self.result = result
        details = "; ".join(f"{check.name}: {check.message}" for check in result.failed)
        super().__init__(
            f"Data failed {len(result.failed)} validation check(s), so training stops: {details}"
        )


class TrackingError(PipelineError, RuntimeError):
    """A tracking or registry problem the user can fix; the message is one sentence."""


class ServeError(PipelineError, RuntimeError):
    """The API cannot start or serve (a model, a store, a setting); one sentence."""
