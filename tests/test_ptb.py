"""PTB: exact counts on Mikolov's files, the char/word relation, loading, streams, and bad input."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import seqbench
from seqbench.data.base import dataset_dir
from seqbench.data.ptb import EXPECTED, SPEC, prepare_ptb, read_vocab
from seqbench.data.streams import TokenStream, load_tokens
from seqbench.errors import BadInputError
from conftest import PTB_SOURCE

SPLITS = ("train", "valid", "test")

# A tiny corpus in Mikolov's format: valid/test use only training words.
SENTENCES = {
    "train": ["the cat sat on the mat", "a dog <unk> N years", "the dog sat"],
    "valid": ["the cat sat", "a mat"],
    "test": ["the dog on the mat", "N cat"],
}


def write_tiny(folder: Path, sentences: dict[str, list[str]] = SENTENCES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, lines in sentences.items():
        (folder / f"ptb.{split}.txt").write_text("".join(f" {s} \n" for s in lines))
        chars = [" ".join("_".join(s.split())) for s in lines]
        (folder / f"ptb.char.{split}.txt").write_text("".join(f"{c} \n " for c in chars))
    return folder


# ---------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    root = tmp_path_factory.mktemp("ptb-real")
    return root, prepare_ptb(PTB_SOURCE, root)


@pytest.mark.data(path=PTB_SOURCE)
def test_real_counts_are_the_papers(real):
    root, report = real
    info = report.info
    word, char = info["configs"]["word"], info["configs"]["char"]
    assert {s: word["splits"][s]["tokens"] for s in SPLITS} == {"train": 929589, "valid": 73760, "test": 82430}
    assert {s: char["splits"][s]["tokens"] for s in SPLITS} == {"train": 4975414, "valid": 389672, "test": 438662}
    assert word["vocab_size"] == 10000 and char["vocab_size"] == 49
    test = info["counts"]["test"]
    assert (test["words"], test["chars_with_eol"], test["lines"]) == (78669, 442423, 3761)
    assert info["counts"]["train"]["chars_with_eol"] == 5017482
    assert round(test["chars"] / test["words"], 2) == 5.58  # the paper's "about 5.6" characters per word
    assert info["verified"] and info["expected_counts"]["match"]
    assert (dataset_dir(SPEC, root) / "info.json").is_file()


@pytest.mark.data(path=PTB_SOURCE)
def test_real_load_and_streams(real):
    root, _ = real
    ds = seqbench.load_dataset("ptb", config="char", split="test", root=root)
    assert len(ds) == 3761
    row = ds[0]
    assert row["text"] == "no_it_was_n't_black_monday"
    vocab = read_vocab("char", root=root)
    assert len(vocab) == 49 and "_" in vocab and "<" in vocab and ">" in vocab
    assert "".join(vocab[i] for i in row["ids"]) == row["text"]
    chars = load_tokens(ds)
    assert chars.shape == (438662,) and chars.dtype == torch.int32
    assert load_tokens(ds, eol=True).shape == (442423,)
    assert load_tokens(ds, join="space").shape == (442423 - 1,)  # a "_" between each two of the 3,761 sentences
    train = seqbench.load_dataset("ptb", "char", "train", root=root)  # several row groups: chunked Arrow
    assert load_tokens(train).shape == (4975414,) and load_tokens(train, eol=True).shape == (5017482,)

    w = seqbench.load_dataset("ptb", config="word", split="test", root=root)
    words = load_tokens(w)
    wv = read_vocab("word", root=root)
    assert words.shape == (82430,) and len(wv) == 10000
    assert int((words == wv.index("<eos>")).sum()) == 3761
    # prime with <eos> (the previous sentence ended): every one of the 82,430 tokens is predicted
    s = w.to_torch(batch_size=20, window=35, prime=wv.index("<eos>"))
    assert isinstance(s, TokenStream) and sum(win.n_predictions for win in s) == 82430


@pytest.mark.data(path=PTB_SOURCE)
def test_real_from_simple_examples_tgz(tmp_path):
    tgz = tmp_path / "simple-examples.tgz"
    with tarfile.open(tgz, "w:gz", compresslevel=1) as tf:
        for f in sorted(PTB_SOURCE.glob("ptb*.txt")):
            tf.add(f, arcname=f"./simple-examples/data/{f.name}")
        decoy = b" not the corpus \n"  # another copy elsewhere in the archive must not be taken
        ti = tarfile.TarInfo("./simple-examples/1-train/ptb.test.txt")
        ti.size = len(decoy)
        tf.addfile(ti, io.BytesIO(decoy))
    info = prepare_ptb(tgz, tmp_path / "out").info
    assert info["configs"]["word"]["splits"]["test"]["tokens"] == 82430
    assert info["verified"] and info["expected_counts"]["match"]
    assert "simple-examples.tgz" in info["sources"]


# ---------------------------------------------------------------- tiny generated corpus


def test_tiny_prepare_load_and_counts(tmp_path):
    src = write_tiny(tmp_path / "src")
    report = prepare_ptb(src)
    info = report.info
    assert not info["verified"] and not info["expected_counts"]["match"]
    c = info["counts"]["test"]
    assert c == {"lines": 2, "words": 7, "words_with_eos": 9, "chars": len("the_dog_on_the_mat") + len("N_cat"),
                 "chars_with_eol": 18 + 5 + 2}
    vocab = read_vocab("word")
    assert vocab[:2] == ["<eos>", "the"]  # by training frequency, ties alphabetically
    ds = seqbench.load_dataset("ptb", "word", "test")
    assert [vocab[i] for i in ds[0]["ids"]] == "the dog on the mat <eos>".split()
    ch = seqbench.load_dataset("ptb", "char", "valid")
    eol_id = info["configs"]["char"]["eol_id"]
    cv = read_vocab("char")
    assert eol_id == len(cv)
    toks = load_tokens(ch, eol=True).tolist()
    assert "".join("|" if t == eol_id else cv[t] for t in toks) == "the_cat_sat|a_mat|"
    with pytest.raises(seqbench.SeqbenchError, match="char config only"):
        load_tokens(ds, eol=True)
    # the other way to mark a sentence's end with the file's own 49 symbols: "_" between sentences, none after
    # the last; the default runs them together
    assert "".join(cv[t] for t in load_tokens(ch, join="space").tolist()) == "the_cat_sat_a_mat"
    assert "".join(cv[t] for t in load_tokens(ch).tolist()) == "the_cat_sata_mat"
    with pytest.raises(seqbench.SeqbenchError, match="char config only"):
        load_tokens(ds, join="space")
    with pytest.raises(seqbench.SeqbenchError, match="choose one"):
        load_tokens(ch, eol=True, join="space")
    with pytest.raises(seqbench.SeqbenchError, match="join must be one of"):
        load_tokens(ch, join="newline")


def test_deterministic_bytes(tmp_path):
    src = write_tiny(tmp_path / "src")
    a = prepare_ptb(src, tmp_path / "a")
    b = prepare_ptb(src, tmp_path / "b")
    assert a.info["fingerprint"] == b.info["fingerprint"]
    for f in ("info.json", "word/train.parquet", "char/test.parquet", "word/vocab.txt"):
        assert (a.path / f).read_bytes() == (b.path / f).read_bytes()


def _assert_nothing_written(root: Path | None = None):
    d = dataset_dir(SPEC, root)
    assert not d.exists()
    assert not list(d.parent.glob(".tmp-*")) if d.parent.exists() else True


def test_non_utf8_names_file_and_offset(tmp_path):
    src = write_tiny(tmp_path / "src")
    bad = src / "ptb.valid.txt"
    bad.write_bytes(b" the cat\xff sat \n a mat \n")
    with pytest.raises(BadInputError, match=r"ptb\.valid\.txt: not UTF-8 text: byte 0xff at offset 8 \(line 1\)"):
        prepare_ptb(src)
    _assert_nothing_written()


def test_missing_split_file(tmp_path):
    src = write_tiny(tmp_path / "src")
    (src / "ptb.char.test.txt").unlink()
    with pytest.raises(BadInputError, match=r"missing ptb\.char\.test\.txt.*\n.*simple-examples\.tgz"):
        prepare_ptb(src)
    _assert_nothing_written()


def test_files_that_are_not_the_corpus(tmp_path):
    src = write_tiny(tmp_path / "src")
    (src / "ptb.char.train.txt").write_text("t h e \n")
    with pytest.raises(BadInputError, match="has 1 lines but ptb.train.txt has 3"):
        prepare_ptb(src)
    write_tiny(src)
    (src / "ptb.char.valid.txt").write_text("t h e _ c a t _ s a t \n a _ m a p \n")
    with pytest.raises(BadInputError, match="line 2 is not line 2 of ptb.valid.txt"):
        prepare_ptb(src)
    write_tiny(src, {**SENTENCES, "test": ["the zebra"]})
    with pytest.raises(BadInputError, match="word 'zebra' is not in the training vocabulary"):
        prepare_ptb(src)
    _assert_nothing_written()


def test_failed_rerun_keeps_the_previous_copy(tmp_path):
    src = write_tiny(tmp_path / "src")
    first = prepare_ptb(src).info["fingerprint"]
    (src / "ptb.test.txt").write_bytes(b"\xfe\n")
    with pytest.raises(BadInputError):
        prepare_ptb(src)
    d = dataset_dir(SPEC)
    assert json.loads((d / "info.json").read_text())["fingerprint"] == first
    assert not list(d.parent.glob(".tmp-*"))


def test_bad_archive(tmp_path):
    bad = tmp_path / "simple-examples.tgz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 20)
    with pytest.raises(BadInputError, match="simple-examples.tgz"):
        prepare_ptb(bad)


def test_cli(tmp_path):
    from seqbench.cli.main import cli

    src = write_tiny(tmp_path / "src")
    r = CliRunner().invoke(cli, ["prepare", "ptb", "--source", str(src)])
    assert r.exit_code == 0, r.output
    assert "word: vocabulary 11; tokens train 17, valid 7, test 9" in r.output
    (src / "ptb.valid.txt").unlink()
    r = CliRunner().invoke(cli, ["prepare", "ptb", "--source", str(src)])
    assert r.exit_code == 1 and "missing ptb.valid.txt" in r.output


def test_the_cli_prints_the_reports_summary(tmp_path):
    """One summary of what prepare wrote (Report.summary_lines / note, the library's), printed by the CLI."""
    from seqbench.cli.main import cli

    src = write_tiny(tmp_path / "src")
    report = prepare_ptb(src, tmp_path / "lib", quiet=True)
    lines = report.summary_lines()
    assert lines[0] == f"wrote {report.path}" and "  word: vocabulary 11; tokens train 17, valid 7, test 9" in lines
    assert report.note() == "  note: counts differ from Mikolov's files (fine for a sample)"
    r = CliRunner().invoke(cli, ["prepare", "ptb", "--source", str(src), "--out", str(tmp_path / "cli"), "-q"])
    assert r.exit_code == 0, r.output
    want = [ln.replace(str(tmp_path / "lib"), str(tmp_path / "cli")) for ln in [*lines, report.note()]]
    assert r.output.splitlines()[-len(want):] == want


def test_cli_out_under_a_file(tmp_path):
    from seqbench.cli.main import cli

    src = write_tiny(tmp_path / "src")
    (tmp_path / "file").write_text("")
    for cmd in (["ptb", "--source", str(src)], ["iam", "--source", str(src), "--workers", "1"]):
        r = CliRunner().invoke(cli, ["prepare", *cmd, "--out", str(tmp_path / "file" / "datasets")])
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert "is a file, not a folder" in r.output  # was a NotADirectoryError traceback after the work
    r = CliRunner().invoke(cli, ["prepare", "iam", "--source", str(src), "--workers", "0"])
    assert r.exit_code == 2 and "is not in the range" in r.output  # 0 and -2 silently meant 1


def test_expected_counts_documented():
    assert EXPECTED["words_with_eos"] == {"train": 929589, "valid": 73760, "test": 82430}
    assert SPEC.configs == {"word": SPLITS, "char": SPLITS}


def test_char_encoding_and_unknown_symbol():
    from seqbench.data.ptb import _encode

    offsets, ids = _encode("f.txt", ["ab", "", "xa"], ["a", "b", "x"], eos=False)
    assert offsets.tolist() == [0, 2, 2, 4] and ids.tolist() == [0, 1, 2, 0]
    with pytest.raises(BadInputError, match=r"f\.txt: line 3: symbol 'z' is not in the training vocabulary"):
        _encode("f.txt", ["ab", "", "xz"], ["a", "b", "x"], eos=False)
