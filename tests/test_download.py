"""The download path end to end, against an HTTP server on 127.0.0.1 that the test starts.

Covers: success and reuse of the cache, a wrong checksum, an interrupted transfer (retried
cleanly, or failing with nothing kept), a 404, an unreachable server (offline), and a damaged
cached copy. Nothing leaves the machine.
"""
from __future__ import annotations

import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from seqbench.data.download import DownloadError, downloads_dir, fetch
from seqbench.data.enwik8 import prepare_enwik8, write_synthetic_zip
from seqbench.data.ptb import prepare_ptb
from seqbench.errors import ManualDownloadRequired
from conftest import PTB_SOURCE
from test_ptb import write_tiny


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        srv = self.server
        srv.hits += 1
        mode = srv.modes.pop(0) if srv.modes else "ok"
        if mode == "404":
            self.send_error(404, "Not Found")
            return
        body = srv.payload
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "cut":  # promise the whole file, send half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server(monkeypatch):
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.hits, srv.modes, srv.payload = 0, [], b""
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/dc/enwik8.zip"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def zipped(tmp_path_factory) -> tuple[bytes, str]:
    path = write_synthetic_zip(tmp_path_factory.mktemp("dl") / "enwik8.zip", 400_000, seed=2)
    raw = path.read_bytes()
    return raw, hashlib.sha256(raw).hexdigest()


def _cache_files() -> list[str]:
    d = downloads_dir()
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_prepare_downloads_verifies_and_reuses_the_cache(server, zipped):
    raw, digest = zipped
    server.payload = raw
    report = prepare_enwik8(url=server.url, sha256=digest, size=None, retries=0, quiet=True)
    assert server.hits == 1
    assert report.info["downloaded_from"] == server.url
    assert report.info["sources"]["enwik8.zip"]["sha256"] == digest
    assert _cache_files() == ["enwik8.zip"]
    assert (downloads_dir() / "enwik8.zip").read_bytes() == raw
    prepare_enwik8(url=server.url, sha256=digest, size=None, retries=0, quiet=True)
    assert server.hits == 1  # verified cached copy: no second transfer


def test_wrong_checksum_keeps_nothing(server, zipped):
    raw, _ = zipped
    server.payload = raw
    with pytest.raises(DownloadError, match=r"sha256 is not the expected 0{64}.*discarded.*\n.*--source"):
        prepare_enwik8(url=server.url, sha256="0" * 64, size=None, retries=0, quiet=True)
    assert _cache_files() == []


def test_interrupted_transfer_is_retried_cleanly(server, zipped):
    raw, digest = zipped
    server.payload, server.modes = raw, ["cut"]
    path = fetch(server.url, "enwik8.zip", digest, manual_hint="by hand", retries=1, wait=0, quiet=True)
    assert server.hits == 2 and path.read_bytes() == raw
    assert _cache_files() == ["enwik8.zip"]


def test_interrupted_every_time_keeps_nothing(server, zipped):
    raw, digest = zipped
    server.payload, server.modes = raw, ["cut", "cut"]
    with pytest.raises(DownloadError, match="interrupted.*2 attempt.*nothing was kept.*Run the command again"):
        fetch(server.url, "enwik8.zip", digest, manual_hint="by hand", retries=1, wait=0, quiet=True)
    assert _cache_files() == []


def test_http_error(server, zipped):
    server.payload, server.modes = zipped[0], ["404"]
    with pytest.raises(DownloadError, match="404"):
        fetch(server.url, "enwik8.zip", zipped[1], manual_hint="by hand", retries=0, quiet=True)
    assert _cache_files() == []


def test_offline_says_how_to_supply_the_file(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ManualDownloadRequired) as e:
        prepare_enwik8(url=f"http://127.0.0.1:{port}/enwik8.zip", retries=0, quiet=True)
    msg = str(e.value)
    assert "could not reach" in msg and "offline" in msg
    assert "seqbench prepare enwik8 --source /path/to/enwik8.zip" in msg and "547994d9" in msg
    assert _cache_files() == []


def test_damaged_cached_copy_is_replaced(server, zipped):
    raw, digest = zipped
    server.payload = raw
    downloads_dir().mkdir(parents=True)
    (downloads_dir() / "enwik8.zip").write_bytes(raw[:100])
    path = fetch(server.url, "enwik8.zip", digest, manual_hint="by hand", retries=0, quiet=True)
    assert server.hits == 1 and Path(path).read_bytes() == raw


def test_damaged_cached_copy_is_not_kept_when_the_download_fails(server, zipped):
    raw, digest = zipped
    server.payload, server.modes = raw, ["404"]
    downloads_dir().mkdir(parents=True)
    (downloads_dir() / "enwik8.zip").write_bytes(raw[:100])
    with pytest.raises(DownloadError):
        fetch(server.url, "enwik8.zip", digest, manual_hint="by hand", retries=0, quiet=True)
    assert _cache_files() == []


# ---------------------------------------------------------------- PTB: simple-examples.tgz


def _tgz(files: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(f"./simple-examples/data/{name}")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.data(path=PTB_SOURCE)
def test_ptb_download_checks_mikolovs_files(server):
    server.payload = _tgz({f.name: f.read_bytes() for f in sorted(PTB_SOURCE.glob("ptb*.txt"))})
    info = prepare_ptb(url=server.url, retries=0, quiet=True).info
    assert info["verified"] and info["expected_counts"]["match"]
    assert info["downloaded_from"] == server.url
    assert _cache_files() == ["simple-examples.tgz"]


def test_ptb_download_of_other_files_is_refused_and_deleted(server, tmp_path):
    src = write_tiny(tmp_path / "tiny")
    server.payload = _tgz({f.name: f.read_bytes() for f in sorted(src.iterdir())})
    with pytest.raises(DownloadError, match="do not have the sha256 of Mikolov's files.*deleted"):
        prepare_ptb(url=server.url, retries=0, quiet=True)
    assert _cache_files() == []
    server.payload = b"<html>a captive portal</html>"
    with pytest.raises(DownloadError, match="unusable.*deleted.*\n.*--source"):
        prepare_ptb(url=server.url, retries=0, quiet=True)
    assert _cache_files() == []
    assert not (downloads_dir().parent / "datasets" / "ptb").exists()
