"""Real IAM-OnDB (../shared/data/iam-ondb): exact counts and an independent point-by-point check."""
from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import seqbench
from conftest import IAM_SOURCE

pytestmark = [pytest.mark.data(path=IAM_SOURCE), pytest.mark.slow]


@pytest.fixture(scope="module")
def prepared(real_iam):
    return real_iam  # prepared once per session (conftest), shared with the zoo's real-data checks


def test_official_counts(prepared):
    _, info = prepared
    off = info["configs"]["official"]["splits"]
    assert (off["train"]["lines"], off["valid1"]["lines"], off["valid2"]["lines"], off["test"]["lines"]) == (
        5364, 1438, 1518, 3859)
    assert off["unassigned"]["lines"] == 16
    assert (off["train"]["forms"], off["valid1"]["forms"], off["valid2"]["forms"], off["test"]["forms"]) == (
        775, 192, 216, 544)
    assert info["totals"] == {"line_files": 12195, "lines": 12195, "strokes": 303676, "points": 7656867}
    assert info["expected_counts"]["match"] is True
    assert info["skipped"] == []
    g = info["configs"]["graves2013"]["splits"]
    assert g["train"]["lines"] == 10741 and g["valid"]["lines"] == 1438


def test_text_alignment_and_writers(prepared):
    root, info = prepared
    df = seqbench.load_dataset("iam-ondb", "official", "unassigned", root=root).to_pandas()
    assert sorted(df["form"].unique()) == ["z00-001", "z01-000", "z01-000z"]
    notes = [f["reason"] for f in info["flagged"] if "transcription lines" in f["reason"]]
    assert any("a08-551z has 9 line files but 8" in n for n in notes)
    assert any("z01-000z" in n for n in notes)
    train = seqbench.load_dataset("iam-ondb", "graves2013", "train", root=root).to_pandas()
    first = train.set_index("id").loc["a01-000u-01"]
    assert first["text"] == "A MOVE to stop Mr . Gaitskell"
    a08 = train[train["form"] == "a08-551z"]
    if len(a08):
        assert a08["text"].isna().all()
    assert train["writer_id"].notna().mean() > 0.7  # the original XML subset covers 1,587 of 1,907 forms


def test_points_match_an_independent_parse(prepared):
    """Several lines, point by point, against the stdlib's ElementTree reading the archive itself."""
    root, _ = prepared
    want = {"a01-000u-01", "a08-551z-09", "h07-469z-05", "z01-000z-08", "r06-000-01"}
    ref = {}
    with tarfile.open(IAM_SOURCE / "lineStrokes-all.tar.gz", "r:gz") as tf:
        for m in tf:
            lid = m.name.rsplit("/", 1)[-1][:-4]
            if m.isfile() and lid in want:
                tree = ET.fromstring(tf.extractfile(m).read())
                pts = [(int(p.get("x")), int(p.get("y")), float(p.get("time")), i == len(s) - 1)
                       for s in tree.iter("Stroke") for i, p in enumerate(s.iter("Point"))]
                ref[lid] = pts
    assert ref
    rows = {}
    for split in ("train", "valid1", "valid2", "test", "unassigned"):
        t = seqbench.load_dataset("iam-ondb", "official", split, root=root).to_arrow()
        for r in t.filter(np.isin(t.column("id").to_numpy(zero_copy_only=False), list(ref))).to_pylist():
            rows[r["id"]] = r
    assert set(rows) == set(ref)
    for lid, pts in ref.items():
        r = rows[lid]
        assert list(zip(r["x"], r["y"], r["t"], r["eos"])) == pts, lid


def test_graves2013_vs_rnnlib_list(prepared):
    """Documented difference: the rnnlib fork's list adds 8 unlisted lines and omits a08-551z-09."""
    root, _ = prepared
    lst = IAM_SOURCE / "splits" / "graves2013-rnnlib" / "training_set.txt"
    theirs = {ln.strip().rsplit("/", 1)[-1][:-4] for ln in lst.read_text().splitlines() if ln.strip()}
    ours = set(seqbench.load_dataset("iam-ondb", "graves2013", "train", root=root).to_arrow().column("id").to_pylist())
    assert len(theirs) == 10748 and len(ours) == 10741
    assert sorted(theirs - ours) == ["z00-001-01"] + [f"z01-000-0{i}" for i in range(1, 8)]
    assert sorted(ours - theirs) == ["a08-551z-09"]


def test_offset_stats_and_torch_load(prepared):
    root, info = prepared
    st = info["configs"]["graves2013"]["offset_stats"]["graves2013-offsets-v1"]
    assert st["n_lines"] == 10741 and 30 < st["std_dx"] < 60 and 30 < st["std_dy"] < 60
    assert st["removed_spikes"] + st["split_strokes"] + st["interpolated_points"] > 0
    ds = seqbench.load_dataset("iam-ondb", "graves2013", "valid", root=root).to_torch()
    assert len(ds) == 1438 and ds[0]["strokes"].shape[1] == 3


def test_fast_path_equals_full_lxml_parse_on_real_files():
    """Every 20th real line file: the canonical fast path and a full lxml parse agree exactly."""
    from seqbench.data.iam.strokes import _parse_fast, _parse_lxml

    checked = 0
    with tarfile.open(IAM_SOURCE / "lineStrokes-all.tar.gz", "r:gz") as tf:
        for k, m in enumerate(m for m in tf if m.isfile()):
            if k % 20:
                continue
            data = tf.extractfile(m).read()
            fast, full = _parse_fast(data), _parse_lxml(data)
            assert fast is not None, m.name
            for attr in ("x", "y", "t", "eos"):
                assert np.array_equal(getattr(fast, attr), getattr(full, attr)), (m.name, attr)
            checked += 1
    assert checked > 600


def test_synthesis_recipes_leave_out_the_lines_without_text(prepared):
    """The 9 a08-551z lines have no transcription: synthesis trains on the other 10,732 of graves2013/train."""
    from seqbench.training import get_recipe
    from seqbench.training.data import make_batches

    root, _ = prepared
    for name in ("iam-synthesis-3x400", "iam-synthesis-3x400-fast", "iam-synthesis-3x400-awn"):
        rec = get_recipe(name).replace(**{"data.root": str(root)})
        items = make_batches(rec.data, "train", train=True, seed=0).items
        assert len(items) == 10_732 and items.dropped == 9
        assert all(i.startswith("a08-551z") for i in items.dropped_ids)
    pred = get_recipe("iam-prediction-3x400").replace(**{"data.root": str(root)})
    assert len(make_batches(pred.data, "train", train=True, seed=0).items) == 10_741
