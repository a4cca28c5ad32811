"""enwik8 on generated enwik8-shaped files: exact splits, byte-exact loading, bad input, atomic output."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import seqbench
from seqbench.data.base import dataset_dir
from seqbench.data.enwik8 import SPEC, prepare_enwik8, split_bounds, synthetic_enwik8, write_synthetic_zip
from seqbench.data.streams import TokenStream, load_tokens
from seqbench.errors import BadInputError

SIZE = 2_500_000  # small (fast), yet the train splits span several 1 MB Parquet rows
SAMPLE = {"sha256": None, "size": None}  # not the official file: skip its checksum and length


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, bytes]:
    d = tmp_path_factory.mktemp("enwik8-src")
    path = write_synthetic_zip(d / "enwik8.zip", SIZE, seed=1)
    with zipfile.ZipFile(path) as zf:
        data = zf.read("enwik8")
    return path, data


def test_not_prepared_says_what_to_run():
    with pytest.raises(seqbench.SeqbenchError, match="Run: seqbench prepare enwik8"):
        seqbench.load_dataset("enwik8", "standard", "test")


def test_split_bounds_are_graves_and_standard():
    b = split_bounds(100_000_000)
    assert b["graves2013"] == {"train": (0, 96_000_000), "valid": (96_000_000, 100_000_000)}
    assert b["standard"] == {"train": (0, 90_000_000), "valid": (90_000_000, 95_000_000),
                             "test": (95_000_000, 100_000_000)}
    small = split_bounds(1001)
    assert small["standard"]["test"][1] == 1001 and small["graves2013"]["train"] == (0, 960)


def test_prepare_and_load_byte_exact(corpus):
    path, data = corpus
    info = prepare_enwik8(path, **SAMPLE, quiet=True).info
    assert info["content"] == {"bytes": SIZE, "sha256": info["content"]["sha256"], "distinct_bytes": len(set(data))}
    assert not info["verified"] and not info["expected_counts"]["match"]
    for config, splits in split_bounds(SIZE).items():
        for split, (start, end) in splits.items():
            s = info["configs"][config]["splits"][split]
            assert (s["start"], s["end"], s["bytes"]) == (start, end, end - start)
            assert s["distinct_bytes"] == len(set(data[start:end]))
            ds = seqbench.load_dataset("enwik8", config=config, split=split)
            t = load_tokens(ds)
            assert t.dtype == torch.uint8 and bytes(t.numpy()) == data[start:end]
            assert len(ds) == s["rows"] == -(-(end - start) // 1_000_000)
    ds = seqbench.load_dataset("enwik8", "graves2013", "train")
    t = load_tokens(ds)
    buf = ds.to_arrow().column("bytes").chunks[0].buffers()[2]
    assert t.data_ptr() == buf.address  # zero-copy: the tensor is the decoded Arrow buffer
    row = ds[1]
    assert row["offset"] == 1_000_000 and row["bytes"] == data[1_000_000:2_000_000]


def test_streams_cover_the_split(corpus):
    path, data = corpus
    prepare_enwik8(path, **SAMPLE, quiet=True)
    ds = seqbench.load_dataset("enwik8", "standard", "test")
    s = ds.to_torch(batch_size=8, window=100, reset_every=100)  # the paper's enwik8 setting
    assert isinstance(s, TokenStream)
    windows = list(s)
    assert sum(w.n_predictions for w in windows) == 125_000 - 1
    assert [w.index for w in windows if w.reset] == list(range(0, len(windows), 100))


def test_raw_file_and_folder_sources(tmp_path, corpus):
    _, data = corpus
    (tmp_path / "enwik8").write_bytes(data)
    a = prepare_enwik8(tmp_path / "enwik8", tmp_path / "a", **SAMPLE, quiet=True).info
    b = prepare_enwik8(tmp_path, tmp_path / "b", **SAMPLE, quiet=True).info
    assert a["fingerprint"] == b["fingerprint"]
    assert a["sources"]["enwik8"]["kind"] == "raw"


def test_deterministic_bytes(tmp_path, corpus):
    path, _ = corpus
    a = prepare_enwik8(path, tmp_path / "a", **SAMPLE, quiet=True)
    b = prepare_enwik8(path, tmp_path / "b", **SAMPLE, quiet=True)
    assert a.info["fingerprint"] == b.info["fingerprint"]
    for f in ("info.json", "graves2013/train.parquet", "standard/test.parquet"):
        assert (a.path / f).read_bytes() == (b.path / f).read_bytes()


def _nothing_written() -> None:
    d = dataset_dir(SPEC)
    assert not d.exists()
    if d.parent.exists():
        assert not list(d.parent.glob(".tmp-*"))


def test_wrong_checksum(corpus):
    path, _ = corpus
    with pytest.raises(BadInputError, match=r"enwik8\.zip: sha256 is [0-9a-f]{64}, not the expected 547994d9"):
        prepare_enwik8(path, quiet=True)  # the official checksum, by default
    _nothing_written()


def test_wrong_size_is_not_the_corpus(corpus):
    path, _ = corpus
    with pytest.raises(BadInputError, match="holds 2,500,000 bytes; enwik8 is exactly 100,000,000"):
        prepare_enwik8(path, sha256=None, quiet=True)
    _nothing_written()


def test_truncated_zip(tmp_path, corpus):
    path, _ = corpus
    raw = path.read_bytes()
    cut = tmp_path / "enwik8.zip"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(BadInputError, match="truncated or damaged zip"):
        prepare_enwik8(cut, **SAMPLE, quiet=True)
    damaged = bytearray(raw)
    damaged[len(raw) // 2: len(raw) // 2 + 64] = bytes(64)  # central directory intact, data not
    cut.write_bytes(bytes(damaged))
    with pytest.raises(BadInputError, match="truncated or damaged zip"):
        prepare_enwik8(cut, **SAMPLE, quiet=True)
    _nothing_written()


def test_files_that_are_not_the_corpus(tmp_path):
    z = tmp_path / "enwik8.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("enwik9", b"<mediawiki>")
    with pytest.raises(BadInputError, match="has no member 'enwik8'"):
        prepare_enwik8(z, **SAMPLE)
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("enwik8", b"just some text, not a dump")
    with pytest.raises(BadInputError, match="does not start with '<mediawiki'"):
        prepare_enwik8(z, **SAMPLE)
    with pytest.raises(BadInputError, match="holds neither enwik8.zip nor enwik8"):
        prepare_enwik8(_empty(tmp_path), **SAMPLE)
    _nothing_written()


def _empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_failed_rerun_keeps_the_previous_copy(tmp_path, corpus):
    path, _ = corpus
    first = prepare_enwik8(path, **SAMPLE, quiet=True).info["fingerprint"]
    bad = tmp_path / "enwik8.zip"
    bad.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(BadInputError):
        prepare_enwik8(bad, **SAMPLE, quiet=True)
    d = dataset_dir(SPEC)
    assert json.loads((d / "info.json").read_text())["fingerprint"] == first
    assert not list(d.parent.glob(".tmp-*"))


def test_synthetic_is_enwik8_shaped():
    data = synthetic_enwik8(300_000, seed=3)
    assert len(data) == 300_000 and data.startswith(b"<mediawiki")
    assert 80 < len(set(data)) < 256  # about 210 over the full 100 MB; rare UTF-8 bytes need more text
    assert synthetic_enwik8(300_000, seed=3) == data


def test_cli(tmp_path, corpus):
    from seqbench.cli.main import cli

    path, _ = corpus
    r = CliRunner().invoke(cli, ["prepare", "enwik8", "--source", str(path), "--no-verify", "-q"])
    assert r.exit_code == 0, r.output
    assert "graves2013: train 2,400,000, valid 100,000 bytes" in r.output
    r = CliRunner().invoke(cli, ["prepare", "enwik8", "--source", str(path), "-q"])
    assert r.exit_code == 1 and "not the expected 547994d9" in r.output and "--source" in r.output


def test_raw_file_must_be_the_official_content(tmp_path, corpus):
    _, data = corpus
    (tmp_path / "enwik8").write_bytes(data)
    with pytest.raises(BadInputError, match=r"enwik8: sha256 is [0-9a-f]{64}, not enwik8's 2b49720e"):
        prepare_enwik8(tmp_path / "enwik8", quiet=True)
    _nothing_written()


def test_repacked_zip_of_the_official_content_is_accepted(tmp_path, corpus, monkeypatch):
    import seqbench.data.enwik8 as e8

    path, data = corpus
    # Pretend the generated content is the official one: a zip with another digest but the right bytes.
    monkeypatch.setattr(e8, "CONTENT_SHA256", __import__("hashlib").sha256(data).hexdigest())
    info = prepare_enwik8(path, size=None, quiet=True).info
    assert info["verified"] and info["sources"]["enwik8.zip"]["kind"].startswith("zip (re-packed")
