"""`seqbench train` under torchrun: two CPU processes (gloo) give the same network as one process."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch

from seqbench.models.io import load_state
from seqbench.training import train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("recipe,extra", [("tiny-prediction", {}), ("tiny-text", {}),
                                          ("tiny-synthesis", {"data.chunk": 9}),  # truncated BPTT: state carried
                                          ("tiny-prediction", {"ema": 0.5})])  # validated on the weight average
def test_two_processes_match_one(tmp_path, recipe, extra):
    steps = ["--max-steps", "6", "--set", "eval_every=3", *[a for k, v in extra.items() for a in ("--set", f"{k}={v}")]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEQBENCH_DDP_BACKEND": "gloo"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "seqbench.cli.main", "train", "--recipe", recipe,
           "--out", str(tmp_path / "ddp"), "-q", *steps]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = train(recipe, tmp_path / "one", max_steps=6, overrides={"eval_every": 3, **extra}, quiet=True)
    finally:
        torch.set_num_threads(n)
    a, b = load_state(tmp_path / "ddp" / "last"), load_state(tmp_path / "one" / "last")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    import json

    va = [json.loads(x)["loss"] for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
          if '"valid"' in x]
    vb = [h["loss"] for h in one.history if h["event"] == "valid"]
    assert va == pytest.approx(vb, rel=1e-5)
