"""Speed of `seqbench prepare enwik8` from a local zip, and of loading the 96M-byte graves2013
training stream as a torch tensor, against baselines measured in the same run.

    python benchmarks/bench_enwik8.py [--zip enwik8.zip] [--runs 5]

Without --zip, a 100,000,000-byte enwik8-shaped file is generated and zipped first (the real one
is not available on the project's machines; generation is not timed, and the zip is cached in the
temp folder for the next run). With the official enwik8.zip, its checksum is verified as usual.

Baselines: reading the zip's bytes, and unzipping it with the standard library (the floor for
prepare); reading the first 96,000,000 bytes of the unzipped file into memory (the floor for
loading). Quoted numbers are medians, with the page cache warm (every run after the first).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from timing import median_time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zip", default=None, help="enwik8.zip (default: a generated enwik8-shaped zip)")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    logging.getLogger("seqbench").setLevel(logging.ERROR)  # the "not the official file" warning, every run

    from seqbench.data.enwik8 import SIZE, ZIP_SHA256, prepare_enwik8, write_synthetic_zip
    from seqbench.data.base import sha256_file

    if args.zip:
        zpath = Path(args.zip)
    else:
        zpath = Path(tempfile.gettempdir()) / "seqbench-bench-enwik8-synthetic-100M.zip"
        if not zpath.is_file():
            print(f"generating {zpath} (100,000,000 bytes, not timed) ...", flush=True)
            part = zpath.with_suffix(".part")
            write_synthetic_zip(part, SIZE, seed=0)
            os.replace(part, zpath)
    official = sha256_file(zpath) == ZIP_SHA256
    kwargs = {"sha256": ZIP_SHA256 if official else None}

    tmp = Path(tempfile.mkdtemp(prefix="seqbench-bench-"))
    raw = tmp / "enwik8"
    try:
        with zipfile.ZipFile(zpath) as zf:
            raw.write_bytes(zf.read("enwik8"))
        read_zip, _ = median_time(zpath.read_bytes, args.runs)
        unzip, _ = median_time(lambda: zipfile.ZipFile(zpath).read("enwik8"), args.runs)
        prep, prep_all = median_time(lambda: prepare_enwik8(zpath, tmp / "out", quiet=True, **kwargs), args.runs)
        info = prepare_enwik8(zpath, tmp / "out", quiet=True, **kwargs).info

        import torch  # imported before timing: the load, not the import, is measured

        import seqbench
        from seqbench.data.streams import load_tokens

        def read_raw():
            with open(raw, "rb") as f:
                return torch.frombuffer(bytearray(f.read(96_000_000)), dtype=torch.uint8)

        def load():
            ds = seqbench.load_dataset("enwik8", "graves2013", "train", root=tmp / "out")
            return load_tokens(ds)

        floor_load, _ = median_time(read_raw, args.runs)
        ld, ld_all = median_time(load, args.runs)
        t = load()
        assert t.shape == (96_000_000,) and t.dtype == torch.uint8
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    what = "official enwik8.zip" if official else "generated enwik8-shaped zip"
    print(f"enwik8 ({what}, {zpath.stat().st_size:,} bytes; {args.runs} runs, medians; {os.cpu_count()} CPUs)")
    print(f"  distinct byte values: {info['content']['distinct_bytes']}")
    print(f"  floor: read the zip's bytes                          {read_zip:7.3f} s")
    print(f"  floor: unzip with the standard library (zipfile)     {unzip:7.3f} s")
    print(f"  seqbench prepare enwik8 (both configs, 5 files)      {prep:7.3f} s   "
          f"= {prep / unzip:.2f} x the unzip floor, {prep / read_zip:.0f} x the read floor")
    print(f"    runs: {', '.join(f'{x:.2f}' for x in prep_all)} s   (target: <= 5 s)")
    print("Loading graves2013/train (96,000,000 bytes) as a torch.uint8 tensor")
    print(f"  floor: read 96,000,000 bytes of the raw file         {floor_load:7.3f} s")
    print(f"  load_dataset + load_tokens (Parquet, zero-copy)      {ld:7.3f} s   = {ld / floor_load:.2f} x the read floor")
    print(f"    runs: {', '.join(f'{x:.3f}' for x in ld_all)} s   (target: <= 1 s)")


if __name__ == "__main__":
    main()
