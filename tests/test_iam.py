"""IAM-OnDB prepare -> Parquet -> load -> torch batch, on small archives the tests make themselves."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

import seqbench
from seqbench.data.iam import prepare as prep_mod
from seqbench.data.iam.prepare import prepare_iam
from seqbench.data.iam.strokes import LineError, _parse_fast, _parse_lxml, parse_line_xml
from seqbench.data.iam.synthetic import make_sample
from seqbench.errors import BadInputError, DataNotPrepared, ManualDownloadRequired, UnknownNameError


@pytest.fixture()
def sample(tmp_path):
    src = tmp_path / "src"
    counts = make_sample(src, forms_per_split=2, corrupt_line="a00-001v-02", mismatch_form="a00-002w")
    return src, counts


def _prepare(src, tmp_path, **kw):
    kw.setdefault("quiet", True)
    kw.setdefault("workers", 1)
    return prepare_iam(src, tmp_path / "out", **kw)


def test_prepare_end_to_end(sample, tmp_path):
    src, counts = sample
    rep = _prepare(src, tmp_path, workers=2)
    info = rep.info
    off = info["configs"]["official"]["splits"]
    assert off["train"]["lines"] == counts["per_list"]["trainset"]
    assert off["valid1"]["lines"] == counts["per_list"]["testset_v"]
    assert off["valid2"]["lines"] == counts["per_list"]["testset_t"]
    assert off["test"]["lines"] == counts["per_list"]["testset_f"]
    assert off["unassigned"]["lines"] == counts["unassigned"] > 0
    g = info["configs"]["graves2013"]["splits"]
    assert g["train"]["lines"] == off["train"]["lines"] + off["valid2"]["lines"] + off["test"]["lines"]
    assert g["valid"]["lines"] == off["valid1"]["lines"]
    assert info["totals"]["points"] == counts["points"] and info["totals"]["strokes"] == counts["strokes"]
    assert info["expected_counts"]["match"] is False  # a sample, not the official release
    # the corrupt line is skipped with its reason, naming the archive member
    (skip,) = info["skipped"]
    assert skip["id"] == "a00-001v-02" and "malformed XML" in skip["reason"]
    assert "lineStrokes-all.tar.gz:lineStrokes/a00/a00-001/a00-001v-02.xml" in skip["file"]
    # plain pyarrow and pandas read the files
    path = rep.path / "graves2013" / "train.parquet"
    t = pq.read_table(path)
    assert t.schema.names == ["id", "form", "writer_id", "text", "text_note", "x", "y", "t", "eos"]
    df = pd.read_parquet(path)
    assert len(df) == g["train"]["lines"] and df["id"].is_monotonic_increasing
    row = df.iloc[0]
    assert row["eos"][-1] and len(row["x"]) == len(row["y"]) == len(row["t"]) == len(row["eos"])
    assert t.schema.metadata[b"seqbench.config"] == b"graves2013"
    # writer ids where the original XML has them, null elsewhere
    assert df["writer_id"].notna().any() and df["writer_id"].isna().any()


def test_count_mismatch_gives_null_text_with_reason(sample, tmp_path):
    src, _ = sample
    rep = _prepare(src, tmp_path)
    df = seqbench.load_dataset("iam-ondb", "official", "valid1", root=tmp_path / "out").to_pandas()
    bad = df[df["form"] == "a00-002w"]
    assert len(bad) == 3 and bad["text"].isna().all()
    assert bad["text_note"].str.contains("3 line files but 2 transcription lines").all()
    good = df[df["form"] != "a00-002w"]
    assert good["text"].notna().all() and good["text_note"].isna().all()
    assert any("a00-002w" in f["reason"] for f in rep.info["flagged"])


def test_load_to_torch_batch(sample, tmp_path):
    from seqbench.data.iam.torch import collate

    src, _ = sample
    _prepare(src, tmp_path)
    ds = seqbench.load_dataset("iam-ondb", "graves2013", "train", root=tmp_path / "out")
    tds = ds.to_torch()
    assert len(tds) == len(ds)
    batch = collate([tds[i] for i in range(3)])
    B, T, _ = batch["inputs"].shape
    assert B == 3 and batch["targets"].shape == (B, T, 3)
    lengths = batch["mask"].sum(1)
    assert int(lengths.max()) == T
    # inputs are the null vector then the targets shifted by one
    assert (batch["inputs"][:, 0] == 0).all()
    assert np.allclose(batch["inputs"][0, 1 : int(lengths[0])], batch["targets"][0, : int(lengths[0]) - 1])
    assert (batch["targets"][~batch["mask"]] == 0).all()
    # line of N points -> N-1 offsets (no point of this sample needs cleaning)
    n_points = len(ds[0]["x"])
    assert int(lengths[0]) == n_points - 1
    assert batch["chars"].shape[0] == 3 and batch["char_mask"].any()
    # normalised with the training split's statistics
    allsteps = tds.data
    assert abs(float(allsteps[:, 0].mean())) < 1e-3 and abs(float(allsteps[:, 0].std()) - 1) < 1e-2


def test_torch_cache_gives_the_same_tensors_and_recovers_from_damage(sample, tmp_path, caplog):
    from seqbench.data.iam.transform import OffsetStats
    from seqbench.paths import seqbench_home

    src, _ = sample
    _prepare(src, tmp_path)
    load = lambda **kw: seqbench.load_dataset("iam-ondb", "graves2013", "train", root=tmp_path / "out").to_torch(**kw)  # noqa: E731
    ref = load(cache=False)
    cache_dir = seqbench_home() / "cache" / "iam-torch"
    assert not cache_dir.exists() or not list(cache_dir.iterdir())  # cache=False writes nothing
    first = load()
    files = list(cache_dir.glob("*.npz"))
    assert len(files) == 1 and not list(cache_dir.glob(".*tmp*"))  # no temporary file left
    second = load()  # from the cache
    for got in (first, second):
        assert torch.equal(got.data, ref.data) and torch.equal(got.offsets, ref.offsets)
        assert got.ids == ref.ids and got.texts == ref.texts
    # other statistics, another cache entry (never the old tensors)
    st = ref.stats
    other = OffsetStats.from_dict({**st.to_dict(), "mean_dx": st.mean_dx + 1})
    shifted = load(stats=other)
    assert len(list(cache_dir.glob("*.npz"))) == 2 and not torch.equal(shifted.data, ref.data)
    # a damaged cache file is recomputed with a warning, and rewritten whole
    files[0].write_bytes(files[0].read_bytes()[:100])
    with caplog.at_level("WARNING"):
        again = load()
    assert torch.equal(again.data, ref.data) and "unreadable cache" in caplog.text
    assert load().data.shape == ref.data.shape


def test_strict_fails_on_corrupt_file_and_writes_nothing(sample, tmp_path):
    src, _ = sample
    with pytest.raises(BadInputError, match=r"a00-001v-02\.xml.*malformed XML"):
        _prepare(src, tmp_path, strict=True)
    out = tmp_path / "out" / "iam-ondb"
    assert not (out / "1.0.0").exists()
    assert not list(out.glob(".tmp-*"))


def test_interrupted_run_leaves_nothing_and_rerun_works(sample, tmp_path, monkeypatch):
    src, _ = sample
    calls = {"n": 0}
    real = prep_mod._write

    def dying_write(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(prep_mod, "_write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        _prepare(src, tmp_path)
    out = tmp_path / "out" / "iam-ondb"
    assert not (out / "1.0.0").exists()
    monkeypatch.setattr(prep_mod, "_write", real)
    rep = _prepare(src, tmp_path)
    assert (rep.path / "info.json").is_file()
    assert not list(out.glob(".tmp-*")) and not list(out.glob(".old-*"))


def test_two_runs_are_byte_identical(sample, tmp_path):
    src, _ = sample
    a = _prepare(src, tmp_path / "a").path
    b = _prepare(src, tmp_path / "b", workers=2).path
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_extracted_folders_equal_archives(tmp_path):
    make_sample(tmp_path / "arch", seed=3)
    make_sample(tmp_path / "dirs", seed=3, extracted=True)
    a = _prepare(tmp_path / "arch", tmp_path / "a").info
    b = _prepare(tmp_path / "dirs", tmp_path / "b").info
    for config in a["configs"]:
        for split, s in a["configs"][config]["splits"].items():
            assert s["sha256"] == b["configs"][config]["splits"][split]["sha256"]


def test_leading_space_split_lists(sample):
    src, counts = sample
    assert (src / "splits" / "trainset.txt").read_text().startswith(" ")
    from seqbench.data.iam.sources import read_split_list

    assert read_split_list(src / "splits" / "trainset.txt") == counts["lists"]["trainset"]


def test_missing_and_empty_split_lists(sample, tmp_path):
    src, _ = sample
    (src / "splits" / "testset_t.txt").unlink()
    with pytest.raises(ManualDownloadRequired, match=r"testset_t\.txt.*\n(.|\n)*seqbench prepare iam --source"):
        _prepare(src, tmp_path)
    (src / "splits" / "testset_t.txt").write_text("\n  \n")
    with pytest.raises(BadInputError, match=r"testset_t\.txt: the split list is empty"):
        _prepare(src, tmp_path)


def test_missing_source_names_every_file_and_where_to_register(tmp_path):
    with pytest.raises(ManualDownloadRequired) as e:
        _prepare(tmp_path, tmp_path)
    msg = str(e.value)
    for needed in ("lineStrokes-all.tar.gz", "ascii-all.tar.gz", "trainset.txt", "testset_f.txt",
                   "fki.tic.heia-fr.ch", "seqbench prepare iam --source"):
        assert needed in msg


def test_unsafe_archive_entries_are_skipped_and_recorded(tmp_path):
    good = (tmp_path / "x").write_bytes(b"") or b"<x/>"
    make_sample(tmp_path / "src", extra_members=[("/etc/evil.xml", good), ("../../evil.xml", good)])
    rep = _prepare(tmp_path / "src", tmp_path)
    reasons = [s for s in rep.info["skipped"] if "absolute or '..'" in s["reason"]]
    assert {r["file"].split(":", 1)[1] for r in reasons} == {"/etc/evil.xml", "../../evil.xml"}
    with pytest.raises(BadInputError, match=r"evil\.xml"):
        _prepare(tmp_path / "src", tmp_path, strict=True)


def test_truncated_archive_is_a_clear_error(sample, tmp_path):
    src, _ = sample
    arc = src / "lineStrokes-all.tar.gz"
    arc.write_bytes(arc.read_bytes()[: arc.stat().st_size // 2])
    with pytest.raises(BadInputError, match=r"lineStrokes-all\.tar\.gz: the archive is truncated or corrupt"):
        _prepare(src, tmp_path)


def test_truncated_archive_read_by_a_worker_process_is_a_clear_error(sample, tmp_path):
    """The transcriptions are read in a worker process: its error must cross the process boundary whole."""
    import pickle

    e = BadInputError("a.tar.gz", "broken", "do this")
    back = pickle.loads(pickle.dumps(e))
    assert str(back) == str(e) and (back.path, back.problem, back.hint) == ("a.tar.gz", "broken", "do this")
    src, _ = sample
    arc = src / "ascii-all.tar.gz"
    arc.write_bytes(arc.read_bytes()[:100])
    with pytest.raises(BadInputError, match=r"ascii-all\.tar\.gz: the archive is truncated or corrupt"):
        _prepare(src, tmp_path, workers=2)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.parquet"))


def test_missing_transcription_file(tmp_path):
    src = tmp_path / "src"
    make_sample(src, extracted=True)
    victim = next((src / "ascii").rglob("*.txt"))
    form = victim.stem
    victim.unlink()
    rep = _prepare(src, tmp_path)
    df = pd.concat(
        seqbench.load_dataset("iam-ondb", "official", s, root=tmp_path / "out").to_pandas()
        for s in ("train", "valid1", "valid2", "test", "unassigned")
    )
    rows = df[df["form"] == form]
    assert len(rows) and rows["text"].isna().all()
    assert rows["text_note"].str.contains("no transcription file").all()
    with pytest.raises(BadInputError, match="no transcription file"):
        _prepare(src, tmp_path, strict=True)


LINE = b"""<?xml version="1.0" encoding="ISO-8859-1"?>
<WhiteboardCaptureSession>
  <WhiteboardDescription><SensorLocation corner="top_left"/></WhiteboardDescription>
  <StrokeSet>
    <Stroke colour="black" start_time="1.00" end_time="1.03">
      <Point x="10" y="20" time="1.00"/>
      <Point x="12" y="25" time="1.02"/>
      <Point x="15" y="30" time="1.03"/>
    </Stroke>
    <Stroke colour="black" start_time="1.50" end_time="1.50">
      <Point x="40" y="22" time="1.50"/>
    </Stroke>
  </StrokeSet>
</WhiteboardCaptureSession>
"""


def test_fast_and_lxml_paths_agree():
    a, b = _parse_fast(LINE), _parse_lxml(LINE)
    assert a is not None and a.fast and not b.fast
    for k in ("x", "y", "t", "eos"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    assert a.x.tolist() == [10, 12, 15, 40] and a.eos.tolist() == [False, False, True, True]
    assert a.t.tolist() == [1.0, 1.02, 1.03, 1.5] and a.x.dtype == np.int32


def test_non_canonical_but_valid_xml_takes_the_lxml_path():
    variant = LINE.replace(b'<Point x="12" y="25" time="1.02"/>', b'<Point time="1.02" y="25" x="12" />')
    variant = variant.replace(b"<StrokeSet>", b"<StrokeSet><!-- a comment -->")
    p = parse_line_xml(variant)
    assert not p.fast and p.x.tolist() == [10, 12, 15, 40]


@pytest.mark.parametrize(
    "old,new,message",
    [
        (b'x="12"', b'x="1two"', r"point 2 of stroke 1 \(line 7\): x='1two' is not an integer"),
        (b' time="1.02"', b"", r"point 2 of stroke 1 \(line 7\) has no 'time' attribute"),
        (b"</WhiteboardCaptureSession>", b"", r"malformed XML"),
        (b"<StrokeSet>", b"<StrokeSet><StrokeSet>", r"malformed XML"),
    ],
)
def test_bad_line_files_get_clear_errors(old, new, message):
    with pytest.raises(LineError, match=message):
        parse_line_xml(LINE.replace(old, new, 1))


def test_stroke_without_points_is_dropped_and_flagged():
    empty = LINE.replace(b"  </StrokeSet>", b'    <Stroke colour="black" start_time="2" end_time="2"></Stroke>\n  </StrokeSet>')
    p = parse_line_xml(empty)
    assert p.x.tolist() == [10, 12, 15, 40] and p.warnings == ["stroke 3 has no points (dropped; nothing else changed)"]


def test_stroke_without_points_in_prepare_is_flagged_or_strict(tmp_path):
    src = tmp_path / "src"
    make_sample(src, extracted=True)
    f = next((src / "lineStrokes").rglob("*.xml"))
    f.write_bytes(f.read_bytes().replace(b"  </StrokeSet>", b'    <Stroke colour="black" start_time="2" end_time="2"></Stroke>\n  </StrokeSet>'))
    rep = _prepare(src, tmp_path)
    assert any("has no points" in fl["reason"] and fl["id"] == f.stem for fl in rep.info["flagged"])
    with pytest.raises(BadInputError, match=f"{f.name}.*has no points"):
        _prepare(src, tmp_path, strict=True)


def test_load_errors_are_clear(sample, tmp_path):
    with pytest.raises(DataNotPrepared, match="seqbench prepare iam --source DIR"):
        seqbench.load_dataset("iam-ondb", "graves2013", "train")
    with pytest.raises(UnknownNameError, match="Did you mean 'graves2013'"):
        seqbench.load_dataset("iam-ondb", "graves2012", "train")
    with pytest.raises(UnknownNameError, match="Did you mean 'iam-ondb'"):
        seqbench.load_dataset("iam-ondbb")
    with pytest.raises(UnknownNameError, match="split of iam-ondb/graves2013"):
        seqbench.load_dataset("iam-ondb", "graves2013", "test")


def test_cli_prepare_and_info(sample, tmp_path):
    from click.testing import CliRunner

    from seqbench.cli.main import cli

    src, _ = sample
    r = CliRunner().invoke(cli, ["prepare", "iam", "--source", str(src), "--out", str(tmp_path / "o"), "-q", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "graves2013: train" in r.output and "skipped 1" in r.output
    r = CliRunner().invoke(cli, ["info", "iam-ondb", "--root", str(tmp_path / "o")])
    assert r.exit_code == 0 and json.loads(r.output)["dataset"] == "iam-ondb"
    r = CliRunner().invoke(cli, ["prepare", "iam", "--source", str(tmp_path / "nothing")])
    assert r.exit_code == 1 and "error: IAM-OnDB source files are missing" in r.output
    assert "Traceback" not in r.output
