"""Shared fixtures: tests never touch the user's caches, and real-data tests skip cleanly."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("SEQBENCH_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
IAM_SOURCE = SHARED_DATA / "iam-ondb"
PTB_SOURCE = SHARED_DATA / "ptb"


def pytest_configure(config):
    # The tests run with the CPU threads seqbench's commands use (1 unless $SEQBENCH_THREADS says otherwise), so
    # a run trained in this process and one trained by a `seqbench` subprocess are bit-identical: with 2 threads
    # on a busy machine the math libraries adapt to the load and the last bits of the weights differ.
    from seqbench.devices import set_threads

    set_threads()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("seqbench-home")
    monkeypatch.setenv("SEQBENCH_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield home


@pytest.fixture(scope="session")
def iam_root(tmp_path_factory) -> Path:
    """A prepared IAM-shaped sample that seqbench generates (2 forms per split list): the datasets root."""
    from seqbench.data.iam.prepare import prepare_iam
    from seqbench.data.iam.synthetic import make_sample

    d = tmp_path_factory.mktemp("iam")
    make_sample(d / "src", forms_per_split=2)
    prepare_iam(d / "src", d / "datasets", quiet=True, workers=1)
    return d / "datasets"


@pytest.fixture(scope="session")
def ptb_root(tmp_path_factory) -> Path:
    """A small corpus in Mikolov's PTB file format (repetitive, so dynamic evaluation has something to learn)."""
    import random

    from seqbench.data.ptb import prepare_ptb

    d = tmp_path_factory.mktemp("ptb")
    src = d / "src"
    src.mkdir()
    rng = random.Random(0)
    words = "the a cat dog sat on mat <unk> N ran".split()
    for split, n in (("train", 60), ("valid", 20), ("test", 30)):
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(n)]
        if split == "test":
            lines = ["the cat sat on the mat"] * n
        (src / f"ptb.{split}.txt").write_text("".join(f" {ln} \n" for ln in lines))
        (src / f"ptb.char.{split}.txt").write_text("".join(" _ ".join(" ".join(w) for w in ln.split()) + "\n"
                                                           for ln in lines))
    prepare_ptb(src, d / "datasets", quiet=True)
    return d / "datasets"


@pytest.fixture(scope="session")
def real_iam(tmp_path_factory) -> tuple[Path, dict]:
    """The real IAM-OnDB prepared once for the session from ../shared/data (datasets root, info.json); tests
    that need it are marked ``data``. Other real datasets may be prepared into the same root."""
    from seqbench.data.iam.prepare import prepare_iam

    root = tmp_path_factory.mktemp("real")
    report = prepare_iam(IAM_SOURCE, root, quiet=True)
    return root, report.info


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "data" in item.keywords:
            needs = item.get_closest_marker("data").kwargs.get("path", IAM_SOURCE)
            if not Path(needs).exists():
                item.add_marker(pytest.mark.skip(reason=f"real data not found at {needs} (../shared/data)"))
        if "gpu" in item.keywords:
            try:
                import torch

                ok = torch.cuda.is_available()
            except Exception:  # pragma: no cover
                ok = False
            if not ok:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


class FullDiskFile:
    """A file object whose every write finds the disk full (ENOSPC); the rest is the wrapped file's."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        import errno

        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.f.close()

    def __getattr__(self, k):
        return getattr(self.f, k)


@pytest.fixture
def full_disk_file():
    """The class of a file whose writes find the disk full, to patch into os.fdopen / open."""
    return FullDiskFile
