"""Verified downloads into ``$SEQBENCH_HOME/downloads`` (pooch underneath).

Why pooch (Fatiando a Terra; used by SciPy, scikit-image, MNE): it streams into a temporary file
*in the cache folder*, checks the sha256, and only then renames it to its final name, so the cache
never holds a partial or corrupt file under the real name; it draws the tqdm progress bar; it
reuses a cached file whose hash matches and replaces one whose hash does not. It does not resume
an interrupted transfer with an HTTP Range request; seqbench retries cleanly instead. For the
files seqbench downloads (enwik8.zip, 36 MB) a clean retry costs seconds, and it cannot splice
bytes from two different versions of a file behind an unchanged URL (the checksum would catch
that, but only after the whole transfer).

>>> path = fetch("http://mattmahoney.net/dc/enwik8.zip", "enwik8.zip", sha256="5479...")  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Iterator

from seqbench.errors import ManualDownloadRequired, SeqbenchError
from seqbench.paths import seqbench_home

log = logging.getLogger(__name__)


class DownloadError(SeqbenchError):
    """A download failed (interrupted, refused, or wrong checksum); nothing was kept in the cache."""


def downloads_dir() -> Path:
    """``$SEQBENCH_HOME/downloads``: where downloaded source files are cached."""
    return seqbench_home() / "downloads"


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    # pooch logs every download at INFO on its own stderr handler; library code must not print.
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def fetch(
    url: str,
    fname: str,
    sha256: str | None,
    *,
    manual_hint: str,
    folder: str | os.PathLike | None = None,
    retries: int = 2,
    wait: float = 1.0,
    timeout: float = 60.0,
    quiet: bool = False,
) -> Path:
    """Download ``url`` to ``<folder>/<fname>`` (default folder: :func:`downloads_dir`) and verify it.

    A cached file whose sha256 matches is reused without any network access. On a failed or
    interrupted transfer, or a checksum mismatch, the partial file is deleted and the download is
    retried up to ``retries`` more times (waiting ``wait``, then ``2*wait``, ... seconds).
    ``manual_hint`` ends every error message: how to obtain the file by hand.

    Raises :class:`~seqbench.errors.ManualDownloadRequired` when the server cannot be reached
    (offline), :class:`DownloadError` for every other failure.
    """
    import pooch
    import requests

    folder = Path(folder) if folder is not None else downloads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    known = f"sha256:{sha256}" if sha256 else None
    target = folder / fname
    if sha256 and target.is_file():
        from seqbench.data.base import sha256_file

        if sha256_file(target) != sha256:  # a damaged copy must not survive a failed re-download
            log.warning("%s: cached copy has the wrong sha256; deleting it and downloading again", target)
            target.unlink()
    downloader = pooch.HTTPDownloader(progressbar=not quiet, timeout=timeout)
    last: BaseException | None = None
    for attempt in range(retries + 1):
        if attempt:
            log.warning("download of %s failed (%s); retrying (%d of %d)", url, last, attempt, retries)
            time.sleep(wait * attempt)
        try:
            with _quiet_pooch():
                path = pooch.retrieve(url, known_hash=known, fname=fname, path=folder, downloader=downloader)
            return Path(path)
        except ValueError as e:  # pooch: hash mismatch (the temporary file is already deleted)
            last = e
        except requests.exceptions.RequestException as e:
            last = e
    if isinstance(last, requests.exceptions.ConnectionError) and not isinstance(
        last, requests.exceptions.ChunkedEncodingError
    ):
        raise ManualDownloadRequired(
            f"could not reach {url} ({_short(last)}); are you offline?\n  {manual_hint}"
        ) from None
    if isinstance(last, ValueError):
        raise DownloadError(
            f"{url}: the downloaded file's sha256 is not the expected {sha256} "
            f"({retries + 1} attempt(s)); it was discarded, nothing was kept in {folder}.\n  {manual_hint}"
        ) from None
    if isinstance(last, requests.exceptions.HTTPError):
        raise DownloadError(f"{url}: {_short(last)}; nothing was kept in {folder}.\n  {manual_hint}") from None
    raise DownloadError(
        f"{url}: the transfer was interrupted ({_short(last)}) after {retries + 1} attempt(s); the partial "
        f"file was discarded, nothing was kept in {folder}. Run the command again to retry.\n  {manual_hint}"
    ) from None


def _short(e: BaseException | None) -> str:
    text = str(e) if e is not None else "unknown error"
    return text if len(text) <= 300 else text[:300] + "..."
