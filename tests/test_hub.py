"""The download path end to end against a real Hub-protocol server on 127.0.0.1 (olah serving local git repos).

The server is started once for this module, bounded (it is killed at teardown and by a hard timeout), and the
tests skip with a reason if it cannot start (olah not installed, no git, no free port).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from seqbench.registry import Registry
from seqbench.zoo import ZooEntry
from seqbench.zoo.card import export
from seqbench.zoo.hub import ModelNotAvailable, WeightsChecksumError, load_model, resolve

REPO = "seqbench/tiny-test"
SERVER_LIFETIME_S = 300  # hard bound: the server kills itself after this, whatever happens to the tests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _model():
    from seqbench.models import build_model

    torch.manual_seed(0)
    return build_model("handwriting-prediction", hidden_size=8, num_layers=1, n_mixtures=2)


def _entry(revision: str | None, sha: str | None, name: str = "tiny-test") -> ZooEntry:
    return ZooEntry(name=name, family="handwriting-prediction",
                    config={"hidden_size": 8, "num_layers": 1, "n_mixtures": 2}, recipe="test", dataset="iam-ondb",
                    dataset_config="graves2013", split="valid", metrics=("nll_nats_per_line",),
                    description="a test model", license="test only", hub_repo=REPO, revision=revision,
                    weights_sha256=sha, smoke=True)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    pytest.importorskip("olah", reason="olah (the loopback Hub server) is not installed: pip install -e '.[test]'")
    if shutil.which("git") is None:
        pytest.skip("git is needed to build the served repositories")
    root = tmp_path_factory.mktemp("hub")
    repo = root / "mirrors" / "models" / REPO
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _, sha = export(_model(), _entry(None, None), repo)
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "good")
    good = _git(repo, "rev-parse", "HEAD")
    data = bytearray((repo / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in the weights, config.json unchanged
    (repo / "model.safetensors").write_bytes(bytes(data))
    _git(repo, "commit", "-q", "-am", "corrupted")
    bad = _git(repo, "rev-parse", "HEAD")
    port = _free_port()
    (root / "olah.toml").write_text(
        f'[basic]\nhost = "127.0.0.1"\nport = {port}\nrepos-path = "{root / "repos"}"\n'
        f'mirrors-path = ["{root / "mirrors"}"]\n\n[accessibility]\noffline = true\n')
    log = open(root / "olah.out", "wb")
    code = ("import sys, threading, os; threading.Timer(%d, lambda: os._exit(0)).start(); "
            "from olah.server import cli; sys.argv = ['olah-cli', '-c', 'olah.toml', '--log-path', 'logs']; cli()"
            % SERVER_LIFETIME_S)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.skip(f"olah exited at start (code {proc.returncode}): "
                            f"{(root / 'olah.out').read_text(errors='replace')[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.skip("olah did not start listening within 30 s")
                time.sleep(0.2)
        yield {"endpoint": endpoint, "good": good, "bad": bad, "sha": sha, "root": root}
    finally:
        proc.kill()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
def online(hub, monkeypatch, tmp_path):
    """Talk to the loopback server: HF_ENDPOINT set, offline mode off, a fresh cache, no mirror."""
    monkeypatch.setenv("HF_ENDPOINT", hub["endpoint"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("SEQBENCH_HUB_TIMEOUT", "5")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)  # it reads the variable at import
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_ETAG_TIMEOUT", 5, raising=False)
    monkeypatch.setattr("seqbench.zoo.hub.mirror_dirs", lambda: [tmp_path / "no-mirror"])
    monkeypatch.setattr("seqbench.zoo.mirror_dirs", lambda: [tmp_path / "no-mirror"])
    return hub


def _reg(entry: ZooEntry) -> Registry[ZooEntry]:
    reg: Registry[ZooEntry] = Registry("zoo model")
    reg.add(entry.name, entry)
    return reg


def test_pinned_download_then_offline_from_the_cache(online, monkeypatch, tmp_path):
    hub = online
    r = resolve(f"hf-hub:{REPO}@{hub['good']}")
    assert (r.source, r.revision, r.weights_sha256) == ("hub", hub["good"], hub["sha"])
    assert str(r.folder).startswith(str(tmp_path / "hf" / "hub"))  # HF_HOME honoured
    assert json.loads((r.folder / "config.json").read_text())["weights_sha256"] == hub["sha"]
    # offline now: the same reference resolves from the cache, no request made
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r2 = resolve(f"hf-hub:{REPO}@{hub['good']}")
    assert (r2.source, r2.folder, r2.weights_sha256) == ("hf-cache", r.folder, hub["sha"])


def test_zoo_entry_downloads_its_pinned_revision_and_evaluates(online):
    hub = online
    reg = _reg(_entry(hub["good"], hub["sha"]))
    model, r = load_model("zoo:tiny-test", registry=reg)
    assert (r.source, r.repo_id, r.revision, r.weights_sha256) == ("hub", REPO, hub["good"], hub["sha"])
    ref = _model()
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), model.state_dict().values()))


def test_corrupted_file_on_the_hub_is_refused(online):
    hub = online
    reg = _reg(_entry(hub["bad"], hub["sha"]))  # the pin says the good weights; the commit holds corrupt ones
    with pytest.raises(WeightsChecksumError, match="does not match the pinned .*hf download"):
        resolve("zoo:tiny-test", registry=reg)
    with pytest.raises(WeightsChecksumError, match="does not match the pinned"):  # config.json's own pin
        resolve(f"hf-hub:{REPO}@{hub['bad']}")


def test_wrong_revision_is_a_clear_error(online):
    missing = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(ModelNotAvailable, match=f"{REPO}@{missing}"):
        resolve(f"hf-hub:{REPO}@{missing}")
    reg = _reg(_entry(missing, online["sha"]))
    with pytest.raises(ModelNotAvailable, match="neither in the Hugging Face cache"):
        resolve("zoo:tiny-test", registry=reg)


def test_unknown_repo_is_a_clear_error(online):
    with pytest.raises(ModelNotAvailable, match="seqbench/no-such-model"):
        resolve("hf-hub:seqbench/no-such-model@main")


# -- one resolve-and-verify path for every command (offline: a mirror, a Hugging Face cache built by hand) --------
ZOO_TINY = Path(__file__).resolve().parents[1] / "zoo" / "tiny-synth"


def _flipped_copy(dst: Path, keep_pin: bool = True) -> Path:
    """zoo/tiny-synth copied to ``dst`` with one bit of the weights flipped (config.json unchanged, or without
    its weights_sha256 when not ``keep_pin``)."""
    dst.mkdir(parents=True)
    for f in ("config.json", "model.safetensors", "README.md"):
        shutil.copy(ZOO_TINY / f, dst / f)
    data = bytearray((dst / "model.safetensors").read_bytes())
    data[-100] ^= 0x01
    (dst / "model.safetensors").write_bytes(bytes(data))
    if not keep_pin:
        cfg = json.loads((dst / "config.json").read_text())
        del cfg["weights_sha256"]
        (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def _hf_cache_snapshot(cache: Path, repo: str, commit: str, src: Path, weights_sha: str) -> Path:
    """The layout huggingface_hub writes: snapshots/COMMIT/FILE links to blobs/NAME, an LFS file's NAME being its
    sha256; refs/main holds the commit."""
    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "blobs").mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    for f, blob in (("model.safetensors", weights_sha), ("config.json", "c" * 40), ("README.md", "d" * 40)):
        shutil.copy(src / f, root / "blobs" / blob)
        (snap / f).symlink_to(Path("..") / ".." / "blobs" / blob)
    return snap


def _sample(args, tmp_path):
    from click.testing import CliRunner

    from seqbench.cli.main import cli

    out = tmp_path / "out" / "s.svg"
    r = CliRunner().invoke(cli, ["sample", *args, "--text", "hi", "--out", str(out), "--arrays", str(tmp_path / "a.npz")])
    return r, out


def test_sample_refuses_bit_flipped_weights_everywhere_eval_does(tmp_path, monkeypatch):
    """seqbench sample loaded a checkpoint folder without checking its sha256 (eval refused the same folder): a
    bit-flipped copy of zoo:tiny-synth, and the same inside the Hugging Face cache, were sampled from."""
    from seqbench.zoo import ZOO, get_entry
    from seqbench.zoo.hub import hub_cache_dir

    tiny = get_entry("tiny-synth")
    # 1. the zoo mirror (SEQBENCH_ZOO) holding a flipped copy, and that folder named directly
    mirror = _flipped_copy(tmp_path / "mirror" / "tiny-synth")
    monkeypatch.setenv("SEQBENCH_ZOO", str(tmp_path / "mirror"))
    # 2. a published entry whose pinned commit sits, flipped, in the Hugging Face cache; and a cached repo whose
    #    config.json pins nothing, so that only the blob's name (the LFS sha256) says what the file must be
    commit = "1" * 40
    src = _flipped_copy(tmp_path / "flipped-src")
    snap = _hf_cache_snapshot(hub_cache_dir(), "seqbench/tiny-cached", commit, src, tiny.weights_sha256)
    bare = _hf_cache_snapshot(hub_cache_dir(), "someone/unpinned", commit, _flipped_copy(tmp_path / "bare", False),
                              tiny.weights_sha256)
    monkeypatch.setitem(ZOO._items, "tiny-cached", ZooEntry(**{**tiny.__dict__, "name": "tiny-cached",
                                                                "hub_repo": "seqbench/tiny-cached", "revision": commit}))
    for args in (["--model", "zoo:tiny-synth"], ["--model", str(mirror)], ["--model", "zoo:tiny-cached"],
                 ["--model", str(snap)], ["--model", f"hf-hub:someone/unpinned@{commit}"], ["--model", str(bare)]):
        r, out = _sample(args, tmp_path)
        assert r.exit_code == 1, (args, r.output)
        assert r.output.startswith("error: ") and "does not match the" in r.output, (args, r.output)
        assert "Traceback" not in r.output and not out.exists() and not (tmp_path / "a.npz").exists()
    # eval refuses the very same references (the one path)
    from seqbench.zoo.hub import resolve

    for ref in ("zoo:tiny-synth", str(mirror), "zoo:tiny-cached", str(snap), str(bare)):
        with pytest.raises(WeightsChecksumError):
            resolve(ref)
    # the intact files still sample
    monkeypatch.delenv("SEQBENCH_ZOO")
    r, out = _sample(["--model", "zoo:tiny-synth", "--seed", "0"], tmp_path)
    assert r.exit_code == 0, r.output
    assert out.exists() and (tmp_path / "a.npz").exists()
