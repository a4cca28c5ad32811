"""Speed of `seqbench prepare iam` and of loading the graves2013 training split, against baselines
measured in the same run.

    python benchmarks/bench_iam_prepare.py [--source ../shared/data/iam-ondb] [--runs 5]

Baselines: merely decompressing lineStrokes-all.tar.gz with the standard library's gzip (the floor
the issue names), and with ISA-L (what prepare uses). Quoted numbers are medians.
"""
from __future__ import annotations

import argparse
import gzip
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

from timing import median_time


def _drain(f) -> int:
    n = 0
    while True:
        b = f.read(1 << 20)
        if not b:
            return n
        n += len(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "iam-ondb"))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    src = Path(args.source)
    arc = src / "lineStrokes-all.tar.gz"
    if not arc.is_file():
        sys.exit(f"{arc} not found: pass --source with the IAM-OnDB files")

    from isal import igzip

    from seqbench.data.iam.prepare import prepare_iam

    floor_gzip, _ = median_time(lambda: _drain(gzip.open(arc, "rb")), args.runs)
    floor_isal, _ = median_time(lambda: _drain(igzip.open(arc, "rb")), args.runs)
    tmp = Path(tempfile.mkdtemp(prefix="seqbench-bench-"))
    try:
        prep, prep_all = median_time(lambda: prepare_iam(src, tmp, quiet=True), args.runs)
        prep1, _ = median_time(lambda: prepare_iam(src, tmp, quiet=True, workers=1), 1)

        import pyarrow.parquet as pq
        import torch  # noqa: F401  (imported before timing: the load, not the import, is measured)

        import seqbench

        path = tmp / "iam-ondb" / "1.0.0" / "graves2013" / "train.parquet"
        raw_read, _ = median_time(lambda: path.read_bytes(), args.runs)
        arrow, _ = median_time(lambda: pq.read_table(path, memory_map=True), args.runs)
        os.environ["SEQBENCH_HOME"] = str(tmp / "home")  # the torch cache goes here and is removed with tmp
        split = lambda: seqbench.load_dataset("iam-ondb", "graves2013", "train", root=tmp)  # noqa: E731
        load, _ = median_time(lambda: split().to_torch(cache=False), args.runs)
        split().to_torch()  # writes the cache
        cached, _ = median_time(lambda: split().to_torch(), args.runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"IAM-OnDB prepare ({args.runs} runs, medians; {__import__('os').cpu_count()} CPUs)")
    print(f"  floor: gunzip lineStrokes-all.tar.gz, stdlib gzip   {floor_gzip:7.2f} s")
    print(f"  floor: gunzip lineStrokes-all.tar.gz, ISA-L          {floor_isal:7.2f} s")
    print(f"  seqbench prepare iam (all CPUs)                      {prep:7.2f} s   "
          f"= {prep / floor_gzip:.2f} x the stdlib gunzip floor, {prep / floor_isal:.1f} x the ISA-L floor")
    print(f"    runs: {', '.join(f'{t:.2f}' for t in prep_all)} s")
    print(f"  seqbench prepare iam (1 worker, 1 run)               {prep1:7.2f} s   ({prep1 / prep:.2f} x slower)")
    print(f"  peak RSS: main {peak_self:.0f} MiB, largest worker {peak_child:.0f} MiB")
    print("Loading graves2013/train (10,741 lines)")
    print(f"  floor: read the Parquet file's bytes                 {raw_read:7.3f} s")
    print(f"  pyarrow table (memory-mapped)                        {arrow:7.3f} s")
    print(f"  torch tensors, cleaned + normalised (to_torch)       {load:7.3f} s   = {load / raw_read:.1f} x the read floor")
    print(f"  the same from seqbench's torch cache (later loads)   {cached:7.3f} s   = {cached / raw_read:.1f} x the read floor")


if __name__ == "__main__":
    main()
