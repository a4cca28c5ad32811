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
