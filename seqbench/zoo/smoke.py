"""The generated IAM-shaped sample that the zoo's smoke models are evaluated on (no download, no license).

``seqbench.data.iam.synthetic.make_sample`` writes archives in the official layout; ``prepare_iam`` turns them
into a prepared dataset under ``$SEQBENCH_HOME/samples/iam-sample-f{forms}-s{seed}/``, once. The numbers of a
smoke model are about this sample only: a smoke run, not a benchmark.

>>> root = ensure_sample(forms_per_split=3)  # doctest: +SKIP
>>> seqbench.load_dataset("iam-ondb", "graves2013", "valid", root=root)  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from seqbench.paths import seqbench_home

log = logging.getLogger(__name__)


def ensure_sample(forms_per_split: int = 3, seed: int = 0) -> Path:
    """The datasets root holding the prepared sample (made on first use, then reused)."""
    from seqbench.data.base import dataset_dir, get_spec

    root = seqbench_home() / "samples" / f"iam-sample-f{forms_per_split}-s{seed}"
    if (dataset_dir(get_spec("iam-ondb"), root) / "info.json").is_file():
        return root
    from seqbench.data.iam.prepare import prepare_iam
    from seqbench.data.iam.synthetic import make_sample

    root.parent.mkdir(parents=True, exist_ok=True)
    src = Path(tempfile.mkdtemp(prefix=".src-", dir=root.parent))
    try:
        make_sample(src, forms_per_split=forms_per_split, seed=seed)
        prepare_iam(src, root, quiet=True, workers=1)  # atomic: the folder appears whole or not at all
    finally:
        shutil.rmtree(src, ignore_errors=True)
    log.info("prepared the generated IAM sample under %s", root)
    return root


__all__ = ["ensure_sample"]
