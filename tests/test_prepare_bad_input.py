"""prepare on hostile or broken inputs and environments: every case is a recorded skip/flag or a SeqbenchError
naming the file, never a traceback, a hang, a half-written output or a silently wrong dataset.

Small synthetic inputs only (made here, in tmp). Cases that would read without bound if they regressed
(/dev/zero, a FIFO) run in a subprocess with a time limit and an address-space limit, so a regression fails
the test instead of filling the machine's memory.
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import seqbench
from seqbench.data.iam import prepare as prep_mod
from seqbench.data.iam.prepare import prepare_iam
from seqbench.data.iam.synthetic import make_sample
from seqbench.errors import BadInputError, OutputPathError, SeqbenchError

PY = sys.executable
LINUX = sys.platform.startswith("linux")


def _prepare(src, out, **kw):
    kw.setdefault("quiet", True)
    kw.setdefault("workers", 1)
    return prepare_iam(src, out, **kw)


def _cli(*args):
    from seqbench.cli.main import cli

    return CliRunner().invoke(cli, list(args))


def _leftovers(root: Path) -> list[Path]:
    """Temporary or half-swapped folders a prepare may have left next to its datasets."""
    return [p for p in root.rglob("*") if p.name.startswith((".tmp-", ".old-"))] if root.exists() else []


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _limits(fsize: int | None = None):
    """preexec_fn: at most 6 GiB of address space (a read without bound fails fast), optional file size limit."""
    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit is EFBIG, not a kill
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return apply


def _cli_subprocess(args: list[str], timeout: float = 120, fsize: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "seqbench.cli.main", *args], capture_output=True, text=True, timeout=timeout,
                          env=_env(), preexec_fn=_limits(fsize))


def _set_points(xml: bytes, pts: list[tuple[int, int]]) -> bytes:
    """The line file with one stroke holding exactly ``pts``."""
    head = xml[: xml.index(b"<StrokeSet>") + len(b"<StrokeSet>")]
    tail = xml[xml.index(b"</StrokeSet>"):]
    body = "".join(f'\n      <Point x="{x}" y="{y}" time="{100 + k / 100:.2f}"/>' for k, (x, y) in enumerate(pts))
    return head + (f'\n    <Stroke colour="black" start_time="100.00" end_time="{100 + (len(pts) - 1) / 100:.2f}">'
                   f"{body}\n    </Stroke>\n  ").encode() + tail


def _line_files(src: Path) -> list[Path]:
    return sorted((src / "lineStrokes").rglob("*.xml"))


# ------------------------------------------------------------------ 1. a line of one point


def test_one_point_line_is_a_recorded_skip_not_an_abort(tmp_path):
    src = tmp_path / "src"
    make_sample(src, extracted=True)
    victim = _line_files(src)[0]  # a00-000u-01: a trainset form, so it reaches the statistics
    victim.write_bytes(_set_points(victim.read_bytes(), [(1000, 1100)]))
    rep = _prepare(src, tmp_path / "out")
    (skip,) = [s for s in rep.info["skipped"] if s["id"] == victim.stem]
    assert skip["file"] == str(victim) and "1 point" in skip["reason"]
    ids = seqbench.load_dataset("iam-ondb", "graves2013", "train", root=tmp_path / "out").to_torch().ids
    assert victim.stem not in ids and f"{victim.stem[:-1]}2" in ids  # its neighbours keep their text alignment
    with pytest.raises(BadInputError, match=rf"{re.escape(str(victim))}: .*1 point"):
        _prepare(src, tmp_path / "strict", strict=True)
    r = _cli("prepare", "iam", "--source", str(src), "--out", str(tmp_path / "cli"), "-q", "--workers", "1")
    assert r.exit_code == 0 and "skipped 1" in r.output, r.output
    r = _cli("prepare", "iam", "--source", str(src), "--out", str(tmp_path / "cli"), "-q", "--workers", "1", "--strict")
    assert r.exit_code == 1 and victim.name in r.output and "Traceback" not in r.output


def test_torch_view_names_a_line_with_too_few_points(tmp_path):
    """A dataset written by another tool (or an older prepare) with a 1-point line: the error names line and file."""
    src = tmp_path / "src"
    make_sample(src)
    _prepare(src, tmp_path / "out")
    split = seqbench.load_dataset("iam-ondb", "graves2013", "valid", root=tmp_path / "out")
    t = split.to_arrow()
    rows = t.to_pylist()
    for k in ("x", "y", "t", "eos"):
        rows[1][k] = rows[1][k][:1]
    rows[1]["eos"] = [True]
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), split.path)
    split = seqbench.load_dataset("iam-ondb", "graves2013", "valid", root=tmp_path / "out")
    with pytest.raises(SeqbenchError, match=rf"{rows[1]['id']}.*{re.escape(str(split.path))}"):
        split.to_torch(cache=False)


# ------------------------------------------------------------------ 2. a full disk


def _dying_write(real, fail_at: int):
    calls = {"n": 0}

    def write(ids, lines, meta, path):
        calls["n"] += 1
        if calls["n"] == fail_at:
            Path(path).write_bytes(b"PAR1 half a file")
            raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")  # pyarrow's
        return real(ids, lines, meta, path)
    return write


def test_disk_full_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    src = tmp_path / "src"
    make_sample(src)
    out = tmp_path / "out"
    dest = out / "iam-ondb" / "1.0.0"
    real = prep_mod._write
    monkeypatch.setattr(prep_mod, "_write", _dying_write(real, 2))
    with pytest.raises(OutputPathError) as e:
        _prepare(src, out)
    msg = str(e.value)
    assert str(dest) in msg and "No space left on device" in msg and "--out" in msg and "free" in msg
    assert not dest.exists() and not _leftovers(out)
    # the CLI says it in one paragraph, without a traceback
    monkeypatch.setattr(prep_mod, "_write", _dying_write(real, 2))
    r = _cli("prepare", "iam", "--source", str(src), "--out", str(out), "-q", "--workers", "1")
    assert r.exit_code == 1 and r.output.startswith("error: ") and "No space left" in r.output
    assert "Traceback" not in r.output and not _leftovers(out)


def test_disk_full_on_rerun_keeps_the_previous_copy(tmp_path, monkeypatch):
    src = tmp_path / "src"
    make_sample(src)
    first = _prepare(src, tmp_path / "out").info["fingerprint"]
    monkeypatch.setattr(prep_mod, "_write", _dying_write(prep_mod._write, 5))
    with pytest.raises(OutputPathError, match="unchanged"):
        _prepare(src, tmp_path / "out")
    info = json.loads((tmp_path / "out" / "iam-ondb" / "1.0.0" / "info.json").read_text())
    assert info["fingerprint"] == first and not _leftovers(tmp_path / "out")


def test_disk_full_in_ptb_prepare_too(tmp_path, monkeypatch):
    from test_ptb import write_tiny

    import pyarrow.parquet as pqm

    src = write_tiny(tmp_path / "src")

    def full(table, where, **kw):
        Path(where).write_bytes(b"PAR1")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pqm, "write_table", full)
    from seqbench.data.ptb import prepare_ptb

    with pytest.raises(OutputPathError, match=r"No space left on device .*ptb"):
        prepare_ptb(src, tmp_path / "out")
    assert not (tmp_path / "out" / "ptb" / "1.0.0").exists() and not _leftovers(tmp_path / "out")


@pytest.mark.skipif(not LINUX, reason="RLIMIT_FSIZE / SIGXFSZ semantics")
def test_a_real_pyarrow_write_failure_is_a_clear_cli_error(tmp_path):
    """A file size limit makes pyarrow's own writer fail mid-file (EFBIG), as a full disk does (ENOSPC)."""
    src = tmp_path / "src"
    make_sample(src)
    out = tmp_path / "out"
    r = _cli_subprocess(["prepare", "iam", "--source", str(src), "--out", str(out), "-q", "--workers", "1"],
                        fsize=12_000)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: ") and "File too large" in r.stderr
    assert str(out / "iam-ondb" / "1.0.0") in r.stderr
    assert not (out / "iam-ondb" / "1.0.0").exists() and not _leftovers(out)


# ------------------------------------------------------------------ 3. killing prepare ends its workers


SLOW_PREPARE = r"""
import pathlib, signal, sys, time
# Ctrl-C as in a terminal: a test run started in the background (`cmd &`) inherits SIGINT ignored, and so would
# this process (seen: the prepare ran to completion and exited 0)
signal.signal(signal.SIGINT, signal.default_int_handler)
import seqbench.data.iam.prepare as p
real = p._parse_batch
p._BATCH = 1
def slow(items):
    pathlib.Path(sys.argv[3]).touch()
    time.sleep(5.0)  # long enough that the kill always lands while parsing, even on a slow machine
    return real(items)
p._parse_batch = slow
p.prepare_iam(sys.argv[1], sys.argv[2], workers=2, quiet=True)
"""


def _children(pid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _wait_for(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.mark.skipif(not LINUX, reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["TERM", "INT", "KILL"])
def test_killing_prepare_ends_its_worker_processes(tmp_path, sig):
    src = tmp_path / "src"
    make_sample(src, forms_per_split=3)
    ready = tmp_path / "ready"
    proc = subprocess.Popen([PY, "-c", SLOW_PREPARE, str(src), str(tmp_path / "out"), str(ready)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kids: list[int] = []
    try:
        assert _wait_for(ready.exists, 90), "the workers never started"
        # the first worker can start parsing before the pool has forked the second (seen on a loaded machine)
        assert _wait_for(lambda: len(_children(proc.pid)) >= 2, 30), _children(proc.pid)
        kids = _children(proc.pid)
        os.kill(proc.pid, sig)
        proc.wait(timeout=30)
        assert proc.returncode != 0
        assert _wait_for(lambda: not any(_alive(k) for k in kids), 15), [k for k in kids if _alive(k)]
        if sig != signal.SIGKILL:
            assert b"Traceback" not in proc.stderr.read() or sig == signal.SIGINT
    finally:
        for k in kids:  # a regression must not leave orphans behind on the machine
            if _alive(k):
                os.kill(k, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ 4. concurrent prepares into one home


HELD_PREPARE = r"""
import pathlib, sys, time
import seqbench.data.iam.prepare as p
real = p._write
def held(ids, lines, meta, path):
    pathlib.Path(sys.argv[3]).touch()
    go, t0 = pathlib.Path(sys.argv[4]), time.time()
    while not go.exists() and time.time() - t0 < 120:
        time.sleep(0.05)
    return real(ids, lines, meta, path)
p._write = held
print(p.prepare_iam(sys.argv[1], sys.argv[2], workers=1, quiet=True).info["fingerprint"])
"""


@contextlib.contextmanager
def _held(tmp_path: Path):
    """A prepare of a generated sample into tmp_path/out, started in a subprocess and held inside its temporary
    folder until the block touches ``go`` (or kills it): yields (src, out, proc, go). On leaving, the
    subprocess is released, and killed if it still runs."""
    src, out = tmp_path / "src", tmp_path / "out"
    make_sample(src)
    ready, go = tmp_path / "ready", tmp_path / "go"
    proc = subprocess.Popen([PY, "-c", HELD_PREPARE, str(src), str(out), str(ready), str(go)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(ready.exists, 90), proc.stderr.read() if proc.poll() is not None else "not started"
        yield src, out, proc, go
    finally:
        go.touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_second_prepare_never_deletes_a_live_ones_temporary_folder(tmp_path):
    with _held(tmp_path) as (src, out, proc, go):
        (theirs,) = [p for p in (out / "iam-ondb").iterdir() if p.name.startswith(".tmp-")]
        mine = _prepare(src, out)  # the second prepare, into the same root, while the first is writing
        assert theirs.is_dir(), "the second prepare deleted the first one's temporary folder"
        go.touch()
        stdout, stderr = proc.communicate(timeout=90)
        assert proc.returncode == 0, stderr
        assert stdout.strip() == mine.info["fingerprint"]  # both whole, same bytes
        info = json.loads((out / "iam-ondb" / "1.0.0" / "info.json").read_text())
        assert info["fingerprint"] == mine.info["fingerprint"] and not _leftovers(out)


def test_the_temporary_folder_of_a_dead_prepare_is_cleaned_up(tmp_path):
    with _held(tmp_path) as (src, out, proc, go):
        proc.kill()  # SIGKILL: no cleanup of its own
        proc.wait(timeout=30)
    assert _leftovers(out)
    _prepare(src, out)
    assert not _leftovers(out)


# ------------------------------------------------------------------ 5. non-regular and huge source files


HUGE = 17 << 20  # over the 16 MiB limit of a line stroke file (the largest official one is 105 kB)


@pytest.mark.skipif(not LINUX, reason="/dev/zero and FIFOs")
def test_non_regular_and_huge_files_in_an_extracted_source(tmp_path):
    src = tmp_path / "src"
    make_sample(src, extracted=True)
    lines = _line_files(src)
    zero, fifo, huge = lines[1], lines[4], lines[7]
    zero.unlink()
    zero.symlink_to("/dev/zero")
    fifo.unlink()
    os.mkfifo(fifo)
    with open(huge, "r+b") as f:
        f.truncate(HUGE)  # sparse: no disk used
    text = sorted((src / "ascii").rglob("*.txt"))[-1]
    text.unlink()
    text.symlink_to("/dev/zero")
    out = tmp_path / "out"
    t0 = time.monotonic()
    r = _cli_subprocess(["prepare", "iam", "--source", str(src), "--out", str(out), "-q", "--workers", "2"])
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 100
    info = json.loads((out / "iam-ondb" / "1.0.0" / "info.json").read_text())
    reasons = {s["file"]: s["reason"] for s in info["skipped"]}
    assert "symbolic link to /dev/zero" in reasons[str(zero)] and "character device" in reasons[str(zero)]
    assert "named pipe" in reasons[str(fifo)]
    assert f"{HUGE:,} bytes" in reasons[str(huge)] and "limit" in reasons[str(huge)]
    assert any(str(text) in s["file"] and "character device" in s["reason"] for s in info["skipped"])
    assert any(text.stem in f["reason"] and "character device" in f["reason"] for f in info["flagged"])
    r = _cli_subprocess(["prepare", "iam", "--source", str(src), "--out", str(out), "-q", "--strict"])
    assert r.returncode == 1 and "Traceback" not in r.stderr and "not a regular file" in r.stderr


@pytest.mark.skipif(not LINUX, reason="/dev/zero")
def test_an_archive_or_split_list_that_is_not_a_regular_file(tmp_path):
    src = tmp_path / "src"
    make_sample(src)
    arc = src / "lineStrokes-all.tar.gz"
    arc.unlink()
    arc.symlink_to("/dev/zero")
    r = _cli_subprocess(["prepare", "iam", "--source", str(src), "--out", str(tmp_path / "out"), "-q"], timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{arc}: not a regular file" in r.stderr and "character device" in r.stderr
    arc.unlink()
    make_sample(src)
    lst = src / "splits" / "testset_v.txt"
    lst.unlink()
    lst.symlink_to("/dev/zero")
    r = _cli_subprocess(["prepare", "iam", "--source", str(src), "--out", str(tmp_path / "out"), "-q"], timeout=60)
    assert r.returncode == 1 and f"{lst}: not a regular file" in r.stderr, r.stderr


def _repack(arc: Path, extra: list[tarfile.TarInfo], data: dict[str, bytes]) -> None:
    with tarfile.open(arc, "r:gz") as tf:
        members = [(m, tf.extractfile(m).read() if m.isfile() else None) for m in tf]
    with tarfile.open(arc, "w:gz", compresslevel=1) as tf:
        for m, d in members:
            tf.addfile(m, io.BytesIO(d) if d is not None else None)
        for m in extra:
            tf.addfile(m, io.BytesIO(data[m.name]) if m.name in data else None)


def test_non_regular_and_huge_archive_members(tmp_path):
    src = tmp_path / "src"
    make_sample(src)
    link = tarfile.TarInfo("lineStrokes/a09/a09-000/a09-000-01.xml")
    link.type, link.linkname = tarfile.SYMTYPE, "/dev/zero"
    big = tarfile.TarInfo("lineStrokes/a09/a09-000/a09-000-02.xml")
    big.size = HUGE
    _repack(src / "lineStrokes-all.tar.gz", [link, big], {big.name: b"\0" * HUGE})
    rep = _prepare(src, tmp_path / "out")
    reasons = {s["file"].split(":", 1)[1]: s["reason"] for s in rep.info["skipped"]}
    assert "symbolic link to /dev/zero" in reasons[link.name]
    assert f"{HUGE:,} bytes" in reasons[big.name] and "limit" in reasons[big.name]
    with pytest.raises(BadInputError, match="a09-000-01.xml"):
        _prepare(src, tmp_path / "strict", strict=True)


def test_ptb_and_enwik8_sources_that_are_not_regular_files(tmp_path):
    from test_ptb import write_tiny

    from seqbench.data.enwik8 import prepare_enwik8
    from seqbench.data.ptb import prepare_ptb

    src = write_tiny(tmp_path / "ptb")
    (src / "ptb.valid.txt").unlink()
    os.mkfifo(src / "ptb.valid.txt")
    with pytest.raises(BadInputError, match=r"ptb\.valid\.txt: not a regular file.*named pipe"):
        prepare_ptb(src, tmp_path / "out")
    os.mkfifo(tmp_path / "enwik8")
    with pytest.raises(BadInputError, match=r"enwik8: not a regular file.*named pipe"):
        prepare_enwik8(tmp_path, tmp_path / "out")
    big = tmp_path / "big" / "enwik8"
    big.parent.mkdir()
    with open(big, "wb") as f:
        f.truncate(2 << 30)  # sparse 2 GiB: refused by size before a byte is read
    with pytest.raises(BadInputError, match=r"2,147,483,648 bytes"):
        prepare_enwik8(big, tmp_path / "out")
    with pytest.raises(BadInputError, match=r"2,147,483,648 bytes.*limit"):
        prepare_enwik8(big, tmp_path / "out", sha256=None, size=None)


# ------------------------------------------------------------------ 6. no silently wrong dataset


def test_a_second_transcript_for_a_form_is_flagged_naming_both(tmp_path):
    src = tmp_path / "src"
    make_sample(src, extracted=True)
    real = sorted((src / "ascii").rglob("*.txt"))[0]
    form = real.stem
    other = src / "ascii" / "zz" / f"{form}.txt"
    other.parent.mkdir()
    other.write_text("CSR:\n\nnot the text\nof these\nlines\n")
    rep = _prepare(src, tmp_path / "out")
    df = seqbench.load_dataset("iam-ondb", "official", "train", root=tmp_path / "out").to_pandas()
    rows = df[df["form"] == form]
    assert len(rows) == 3 and rows["text"].isna().all()
    assert rows["text_note"].str.contains(real.name).all()
    (flag,) = [f for f in rep.info["flagged"] if form in f["reason"] and "two transcription" in f["reason"]]
    assert str(real.relative_to(src)) in flag["reason"] and str(other.relative_to(src)) in flag["reason"]
    with pytest.raises(BadInputError, match=rf"two transcription files for form {form}"):
        _prepare(src, tmp_path / "strict", strict=True)
    # an identical copy is no ambiguity: the text is kept, the copy is noted
    other.write_bytes(real.read_bytes())
    rep = _prepare(src, tmp_path / "same")
    df = seqbench.load_dataset("iam-ondb", "official", "train", root=tmp_path / "same").to_pandas()
    assert df[df["form"] == form]["text"].notna().all()
    assert any("identical" in f["reason"] and form in f["reason"] for f in rep.info["flagged"])


def test_two_writer_ids_for_a_form_are_not_silently_replaced(tmp_path):
    src = tmp_path / "src"
    make_sample(src, extracted=True)
    real = sorted((src / "original").rglob("*.xml"))[0]
    copy = src / "original" / "zz" / real.parent.name / real.name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(re.sub(rb'writerID="\d+"', b'writerID="99999"', real.read_bytes()))
    rep = _prepare(src, tmp_path / "out")
    dfs = [seqbench.load_dataset("iam-ondb", "official", s, root=tmp_path / "out").to_pandas()
           for s in ("train", "valid1", "valid2", "test", "unassigned")]
    assert not any((d["writer_id"] == "99999").any() for d in dfs)
    assert any("99999" in n["reason"] for n in rep.info["writer_id_notes"])
    assert any("99999" in f["reason"] for f in rep.info["flagged"])


def test_a_split_list_whose_forms_are_all_missing_is_refused(tmp_path):
    src = tmp_path / "src"
    make_sample(src)
    lst = src / "splits" / "testset_v.txt"
    lst.write_text(" q99-000\n q99-001\n")
    with pytest.raises(BadInputError, match=rf"{re.escape(str(lst))}: none of its 2 form\(s\) .*official/valid1"):
        _prepare(src, tmp_path / "out")
    assert not (tmp_path / "out" / "iam-ondb" / "1.0.0").exists() and not _leftovers(tmp_path / "out")
    r = _cli("prepare", "iam", "--source", str(src), "--out", str(tmp_path / "out"), "-q", "--workers", "1")
    assert r.exit_code == 1 and "testset_v.txt" in r.output and "Traceback" not in r.output


def test_lines_whose_points_are_all_equal(tmp_path):
    src = tmp_path / "src"
    make_sample(src, extracted=True)
    files = _line_files(src)
    files[0].write_bytes(_set_points(files[0].read_bytes(), [(500, 500)] * 5))
    rep = _prepare(src, tmp_path / "one")  # one such line: kept and flagged; the statistics are fine
    assert any(f["id"] == files[0].stem and "same place" in f["reason"] for f in rep.info["flagged"])
    st = rep.info["configs"]["graves2013"]["offset_stats"]["graves2013-offsets-v1"]
    assert all(np.isfinite(v) for v in st.values()) and st["std_dx"] > 0
    with pytest.raises(BadInputError, match="same place"):
        _prepare(src, tmp_path / "strict", strict=True)
    for f in files:  # every line: the offsets have no spread, normalising would divide by 0
        f.write_bytes(_set_points(f.read_bytes(), [(500, 500)] * 5))
    with pytest.raises(BadInputError, match=r"trainset\.txt.*std_dx.*0"):
        _prepare(src, tmp_path / "all")
    assert not (tmp_path / "all" / "iam-ondb" / "1.0.0").exists() and not _leftovers(tmp_path / "all")


def test_a_line_off_the_whiteboard_is_refused_and_never_reaches_the_statistics(tmp_path):
    """One line with int32-extreme coordinates made std_dx 49 million (every other line then normalised to near
    zero); it is now a recorded skip, and the statistics are those of the other lines."""
    src = tmp_path / "src"
    make_sample(src, extracted=True)
    clean = _prepare(src, tmp_path / "clean").info["configs"]["graves2013"]["offset_stats"]["graves2013-offsets-v1"]
    victim = _line_files(src)[0]  # a trainset form: it reaches the statistics
    victim.write_bytes(_set_points(victim.read_bytes(), [(1000, 1100), (2147483647, -2147483648), (1010, 1120)]))
    rep = _prepare(src, tmp_path / "out")
    (skip,) = [s for s in rep.info["skipped"] if s["id"] == victim.stem]
    assert "off the whiteboard" in skip["reason"]
    st = rep.info["configs"]["graves2013"]["offset_stats"]["graves2013-offsets-v1"]
    assert st["std_dx"] < 10 * clean["std_dx"] and st["std_dy"] < 10 * clean["std_dy"]
    with pytest.raises(BadInputError, match="off the whiteboard"):
        _prepare(src, tmp_path / "strict", strict=True)


def test_a_utf8_transcript_is_stored_as_written(tmp_path):
    """A transcript saved as UTF-8 (é as two bytes) was decoded as ISO-8859-1 and stored as 'thÃ©'."""
    src = tmp_path / "src"
    make_sample(src, extracted=True)
    txt = sorted((src / "ascii").rglob("*.txt"))[0]
    raw = txt.read_bytes()
    head, body = raw.split(b"CSR:", 1)
    lines = body.split(b"\n")
    k = next(i for i, ln in enumerate(lines) if ln.strip())
    lines[k] = "thé café".encode("utf-8")
    txt.write_bytes(head + b"CSR:" + b"\n".join(lines))
    _prepare(src, tmp_path / "out")
    texts = []
    for split in ("train", "valid", "unassigned"):
        try:
            texts += seqbench.load_dataset("iam-ondb", "graves2013", split, root=tmp_path / "out").to_arrow() \
                .column("text").to_pylist()
        except SeqbenchError:
            pass
    assert "thé café" in texts and not any("Ã" in (t or "") for t in texts)
    # an ISO-8859-1 file (the official encoding) still reads as ISO-8859-1
    from seqbench.data.iam.transcripts import parse_csr

    assert parse_csr(b"CSR:\n\nth\xe9 caf\xe9\n") == ["thé café"]
    assert parse_csr("CSR:\n\nthé café\n".encode("utf-8")) == ["thé café"]


def test_non_finite_statistics_are_never_used():
    from seqbench.data.iam.transform import DegenerateStatisticsError, Flat, OffsetStats, OffsetTransform

    tr = OffsetTransform()
    flat = Flat.from_lines([{"x": np.array([1, 1, 1]), "y": np.array([2, 2, 2]), "t": np.array([0, 0.01, 0.02]),
                             "eos": np.array([0, 0, 1], bool)}])
    with pytest.raises(DegenerateStatisticsError, match="std_dx"):
        tr.fit(flat)
    bad = OffsetStats(mean_dx=0.0, std_dx=0.0, mean_dy=0.0, std_dy=1.0, n_lines=1, n_offsets=2)
    with pytest.raises(DegenerateStatisticsError):
        tr.apply(flat, bad)
    nan = OffsetStats(mean_dx=float("nan"), std_dx=1.0, mean_dy=0.0, std_dy=1.0, n_lines=1, n_offsets=2)
    with pytest.raises(DegenerateStatisticsError):
        tr.apply(flat, nan)


def test_info_json_never_holds_nan(tmp_path):
    from seqbench.data.base import dump_json

    with pytest.raises(SeqbenchError, match="not a finite number"):
        dump_json({"std": float("nan")}, tmp_path / "info.json")
    assert not (tmp_path / "info.json").exists()


def test_whitespace_only_ptb_file_is_refused(tmp_path):
    from test_ptb import write_tiny

    from seqbench.data.ptb import prepare_ptb

    src = write_tiny(tmp_path / "src")
    (src / "ptb.test.txt").write_text("  \n \n")
    (src / "ptb.char.test.txt").write_text("  \n \n")
    with pytest.raises(BadInputError, match=r"ptb\.test\.txt: .*no words"):
        prepare_ptb(src, tmp_path / "out")
    assert not (tmp_path / "out" / "ptb").exists() or not any((tmp_path / "out" / "ptb").iterdir())
    r = _cli("prepare", "ptb", "--source", str(src), "--out", str(tmp_path / "out"))
    assert r.exit_code == 1 and "ptb.test.txt" in r.output and "Traceback" not in r.output


def test_two_different_copies_in_a_ptb_archive_are_refused(tmp_path):
    from test_ptb import write_tiny

    from seqbench.data.ptb import prepare_ptb

    src = write_tiny(tmp_path / "src")
    tgz = tmp_path / "simple-examples.tgz"
    with tarfile.open(tgz, "w:gz") as tf:
        for f in sorted(src.iterdir()):
            tf.add(f, arcname=f"./simple-examples/data/{f.name}")
        other = b" the cat \n a mat \n"
        ti = tarfile.TarInfo("./copy/data/ptb.valid.txt")
        ti.size = len(other)
        tf.addfile(ti, io.BytesIO(other))
    with pytest.raises(BadInputError, match=r"copy/data/ptb\.valid\.txt.*simple-examples/data/ptb\.valid\.txt"):
        prepare_ptb(tgz, tmp_path / "out")


def test_enwik8_sample_too_small_for_its_splits_is_refused(tmp_path):
    from seqbench.data.enwik8 import prepare_enwik8

    raw = tmp_path / "enwik8"
    raw.write_bytes(b"<mediawiki" + b"x" * 5)  # 15 bytes: standard/valid would be 0 bytes
    with pytest.raises(BadInputError, match=r"standard/valid .*0 bytes"):
        prepare_enwik8(raw, tmp_path / "out", sha256=None, size=None)
    assert not (tmp_path / "out" / "enwik8" / "1.0.0").exists()


# ------------------------------------------------------------------ 7. lines without text


def test_require_text_drops_lines_without_text_and_counts_them(tmp_path):
    from seqbench.data.iam.torch import collate

    src = tmp_path / "src"
    make_sample(src, extracted=True, mismatch_form="a00-002w")  # a testset_v form: 3 lines, text null
    csr = sorted((src / "ascii").rglob("a00-003x.txt"))[0]  # the other testset_v form: one empty line
    body = csr.read_text().split("CSR:\n\n")
    words = body[1].split("\n")
    words[1] = ""
    csr.write_text(body[0] + "CSR:\n\n" + "\n".join(words))
    rep = _prepare(src, tmp_path / "out")
    assert any("a00-003x-02" == f["id"] and "empty" in f["reason"] for f in rep.info["flagged"])
    ds = seqbench.load_dataset("iam-ondb", "graves2013", "valid", root=tmp_path / "out")
    everything = ds.to_torch()
    assert everything.dropped == 0 and len(everything) == len(ds) == 6
    tds = ds.to_torch(require_text=True)
    assert tds.dropped == 4 and len(tds) == 2
    assert sorted(tds.dropped_ids) == ["a00-002w-01", "a00-002w-02", "a00-002w-03", "a00-003x-02"]
    assert tds.ids == ["a00-003x-01", "a00-003x-03"]
    items = [tds[i] for i in range(len(tds))]
    assert all(it["text"] and len(it["chars"]) for it in items)
    ref = {everything[i]["id"]: everything[i]["strokes"] for i in range(len(everything))}
    for it in items:
        assert it["strokes"].equal(ref[it["id"]])
    assert tds.lengths().tolist() == [len(it["strokes"]) for it in items]
    batch = collate(items)
    assert batch["char_mask"].sum(1).min() > 0
    with pytest.raises(IndexError):
        tds[2]
    cached = ds.to_torch(require_text=True)  # from the cache: the same selection
    assert cached.ids == tds.ids and cached.dropped == 4
