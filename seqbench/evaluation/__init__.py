"""Evaluation: ``evaluate`` a model on a prepared split, result records, and reports beside the paper's numbers.

>>> import seqbench
>>> result = seqbench.evaluate("zoo:synth-3layer")           # doctest: +SKIP
>>> result.save("runs/synth-3layer.json")                     # doctest: +SKIP
>>> print(report(["runs/synth-3layer.json"]).markdown)        # doctest: +SKIP
"""
from __future__ import annotations

from seqbench.evaluation.records import EvalResult, RecordError


def evaluate(*args, **kwargs) -> EvalResult:
    """See :func:`seqbench.evaluation.evaluator.evaluate` (imports torch on first use)."""
    from seqbench.evaluation.evaluator import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def report(paths, **kwargs):
    """See :func:`seqbench.evaluation.reporting.report`."""
    from seqbench.evaluation.reporting import report as _report

    return _report(paths, **kwargs)


__all__ = ["evaluate", "report", "EvalResult", "RecordError"]
