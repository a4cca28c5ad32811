"""IAM On-Line Handwriting Database: prepare, load, and the model-ready transform."""
from __future__ import annotations

from seqbench.data.iam.spec import EXPECTED, SPEC

__all__ = ["SPEC", "EXPECTED", "prepare_iam"]


def prepare_iam(*args, **kwargs):
    """See :func:`seqbench.data.iam.prepare.prepare_iam`."""
    from seqbench.data.iam.prepare import prepare_iam as _prepare

    return _prepare(*args, **kwargs)
