"""One function resolves every model reference: ``zoo:NAME``, ``hf-hub:org/repo@revision``, a local folder, or
``package.module:factory``.

Downloads go through huggingface_hub (``snapshot_download`` at the pinned revision, into its cache), honouring
``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, ``HF_HOME`` / ``HF_HUB_CACHE`` as they are *when the call is made*. The sha256
of the weights is verified against the zoo entry's pin (or the ``weights_sha256`` that config.json records).
Where the Hub cannot be reached, a zoo model comes from the Hub cache, else from a local mirror (the checkout's
``zoo/NAME/``, see :func:`seqbench.zoo.mirror_dirs`); a model that is in neither gets an error that says how to
fetch it.

>>> r = resolve("zoo:tiny-synth")           # doctest: +SKIP
>>> r.source, r.revision, r.weights_sha256  # doctest: +SKIP
('mirror', '3f2a…', '9c1e…')
>>> model, r = load_model("hf-hub:seqbench/synth-3layer@3f2a…")  # doctest: +SKIP
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqbench.errors import SeqbenchError
from seqbench.paths import sha256_file, sha256_pin_problem
from seqbench.registry import Registry
from seqbench.zoo import ZOO, ZooEntry, mirror_dirs, mirror_folder

log = logging.getLogger(__name__)

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
REPO_FILES = (CONFIG, WEIGHTS, CARD)  # what a zoo folder and its Hub repo hold
CARD_FILES = ("training_curve.png",)  # pictures the card shows, pushed with it where the folder has them

ENTRY_POINT_GROUP = "seqbench.models"  # [project.entry-points."seqbench.models"] NAME = "pkg.mod:factory"
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class ModelReferenceError(SeqbenchError):
    """A model reference cannot be parsed, or names something that does not exist."""


class ModelNotAvailable(SeqbenchError):
    """A model is known but its files are neither downloadable now, nor cached, nor mirrored."""


class WeightsChecksumError(SeqbenchError):
    """The weights' sha256 differs from the pinned one (a corrupt or substituted file)."""


@dataclass
class ResolvedModel:
    """Where a reference led: the folder with config.json + model.safetensors, and its provenance."""

    reference: str
    kind: str  # "zoo" | "hf-hub" | "local" | "factory"
    source: str  # "hub" (downloaded now) | "hf-cache" | "mirror" | "local" | "python"
    folder: Path | None = None
    repo_id: str | None = None
    revision: str | None = None  # the commit the files come from (None for a local folder or a factory)
    weights_sha256: str | None = None
    entry: ZooEntry | None = None

    def to_dict(self) -> dict:
        return {"reference": self.reference, "kind": self.kind, "source": self.source,
                "folder": str(self.folder) if self.folder else None, "repo_id": self.repo_id,
                "revision": self.revision, "weights_sha256": self.weights_sha256,
                "zoo": self.entry.name if self.entry else None}


# -- environment, read at call time -----------------------------------------------------------------------------
def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` now (or huggingface_hub's own flag, which it reads once at import)."""
    try:
        from huggingface_hub import constants

        lib = bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover
        lib = False
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or lib


def hub_endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def hub_cache_dir() -> Path:
    """``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


# -- checksums ----------------------------------------------------------------------------------------------------
def _config_sha(folder: Path) -> str | None:
    """The ``weights_sha256`` config.json records, or None (no pin, or a config.json that cannot be read: loading
    it then fails with the clear error of :func:`seqbench.models.io.read_config`). A pin that is not a sha256
    (a number, a truncated string) raises :class:`WeightsChecksumError`: it would otherwise check nothing."""
    try:
        cfg = json.loads((folder / CONFIG).read_bytes().decode("utf-8"))
    except (OSError, ValueError):  # missing, not UTF-8 (UnicodeDecodeError), not JSON (JSONDecodeError)
        return None
    if not isinstance(cfg, dict) or "weights_sha256" not in cfg:
        return None
    sha = cfg["weights_sha256"]
    problem = sha256_pin_problem(sha)
    if problem:
        raise WeightsChecksumError(f"{folder / CONFIG}: {problem}, so it pins nothing; the file is damaged: "
                                   "restore or re-export the folder (or remove the entry to load unpinned weights)")
    return sha


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def cache_blob_sha(path: Path) -> str | None:
    """The sha256 a Hugging Face cache file must have, or None: in the cache, ``snapshots/REV/FILE`` links to
    ``blobs/NAME``, and a Git LFS file's blob NAME is its sha256 (small non-LFS files get a 40-digit git id,
    which says nothing about the content here)."""
    try:
        if not path.is_symlink():
            return None
        target = path.resolve()
    except OSError:
        return None
    return target.name if target.parent.name == "blobs" and _SHA256.match(target.name) else None


def verify_weights(folder: Path, expected: str | None, where: str, fix: str) -> str:
    """sha256 of ``folder``/model.safetensors, checked against ``expected`` (a zoo entry's or config.json's pin)
    and, inside the Hugging Face cache, against the sha256 its blob is named by (:func:`cache_blob_sha`): a file
    changed in the cache after download is refused even where nothing else pins it."""
    path = folder / WEIGHTS
    if not path.is_file():
        raise ModelNotAvailable(f"{path}: missing; a seqbench model folder holds {', '.join(REPO_FILES[:2])}. {fix}")
    if expected is not None and sha256_pin_problem(expected):
        raise WeightsChecksumError(f"{path} ({where}): the pin {sha256_pin_problem(expected)}; it checks nothing. {fix}")
    got = sha256_file(path)
    for pin, what in ((expected, "pinned"), (cache_blob_sha(path), "Hugging Face cache's (its blob name)")):
        if pin and got != pin:
            raise WeightsChecksumError(
                f"{path} ({where}): sha256 {got} does not match the {what} {pin}; the file is corrupt or not "
                f"the published one. {fix}")
    return got


# -- parsing ------------------------------------------------------------------------------------------------------
KNOWN_SCHEMES = ("zoo:", "hf-hub:", "ep:")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def _usage() -> str:
    return ("Use zoo:NAME (see `seqbench zoo list`), hf-hub:org/repo@revision, ep:NAME (an installed entry point), "
            "a folder with config.json and model.safetensors, or package.module:factory (a module of your own)")


def parse_reference(ref: str) -> tuple[str, str]:
    """(kind, rest): ``zoo:NAME`` → ("zoo", NAME), ``hf-hub:org/repo@rev`` → ("hf-hub", "org/repo@rev"),
    an existing path → ("local", path), ``pkg.mod:factory`` → ("factory", ref).

    A factory from Python's standard library (``os:system``, ``sys:exit``) is no model: it is refused as an
    unknown scheme rather than called (os:system() raised a TypeError, sys:exit() ended the process, os:abort()
    would crash it)."""
    if not isinstance(ref, str) or not ref.strip():
        raise ModelReferenceError(f"empty model reference {ref!r}. {_usage()}")
    if ref.startswith("zoo:"):
        return "zoo", ref[4:]
    if ref.startswith("hf-hub:"):
        return "hf-hub", ref[7:]
    if ref.startswith("ep:"):  # an installed package's entry point in the group "seqbench.models"
        return "factory", ref
    if Path(ref).expanduser().exists():
        return "local", ref
    if _FACTORY.match(ref):
        top = ref.partition(":")[0].split(".")[0]
        if top in getattr(sys, "stdlib_module_names", ()) or top in sys.builtin_module_names:
            raise ModelReferenceError(
                f"{ref!r}: {top + ':'!r} is not a model scheme (known: {', '.join(KNOWN_SCHEMES)}), and {top} is a "
                f"module of Python's standard library, whose functions build no model. {_usage()}")
        return "factory", ref
    hint = ""
    if ref in ZOO:
        hint = f" Did you mean 'zoo:{ref}'?"
    elif _SCHEME.match(ref) and not re.match(r"^[A-Za-z]:[\\/]", ref):  # not a Windows drive letter
        raise ModelReferenceError(f"{ref!r}: unknown scheme {_SCHEME.match(ref).group(0)!r} (known: "
                                  f"{', '.join(KNOWN_SCHEMES)}). {_usage()}")
    elif "/" in ref or os.sep in ref or ref.startswith("."):
        raise ModelReferenceError(f"{ref}: no such model folder (a seqbench model folder holds {CONFIG} and "
                                  f"{WEIGHTS}). {_usage()}")
    raise ModelReferenceError(f"cannot read the model reference {ref!r}.{hint} {_usage()}")


# -- the Hub --------------------------------------------------------------------------------------------------------
def _snapshot(repo_id: str, revision: str | None, *, local_only: bool) -> Path:
    from huggingface_hub import snapshot_download

    path = snapshot_download(
        repo_id=repo_id, revision=revision, cache_dir=str(hub_cache_dir()), endpoint=hub_endpoint(),
        allow_patterns=list(REPO_FILES), local_files_only=local_only, max_workers=2,
        etag_timeout=float(os.environ.get("SEQBENCH_HUB_TIMEOUT", "10")))
    return Path(path)


def _hub_errors():
    from huggingface_hub.errors import (
        EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError)

    return EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError


def _download(repo_id: str, revision: str | None) -> tuple[Path | None, str, str | None]:
    """(folder, source, problem): from the Hub when online, else (or on failure) from the Hub cache."""
    EntryNotFound, HTTPError, Offline, RepoNotFound, RevNotFound = _hub_errors()
    problem = None
    if not hub_offline():
        try:
            return _snapshot(repo_id, revision, local_only=False), "hub", None
        except (RepoNotFound, RevNotFound) as e:
            problem = f"{repo_id}@{revision or 'main'} is not on {hub_endpoint() or 'the Hub'} ({type(e).__name__})"
        except (Offline, HTTPError, EntryNotFound, OSError) as e:  # network down, 5xx, not found on the server
            problem = f"{repo_id}@{revision or 'main'} could not be downloaded: {str(e).splitlines()[0][:300]}"
        log.warning("%s; trying the local cache", problem)
    try:
        return _snapshot(repo_id, revision, local_only=True), "hf-cache", problem
    except Exception:  # LocalEntryNotFoundError and friends: not cached
        return None, "", problem


def _fetch_hint(repo_id: str, revision: str | None) -> str:
    rev = f" --revision {revision}" if revision else ""
    return (f"Fetch it with network access (unset HF_HUB_OFFLINE): `hf download {repo_id}{rev}` "
            f"(HF_ENDPOINT={hub_endpoint() or 'https://huggingface.co'}, cache {hub_cache_dir()})")


def resolve(ref: str, *, registry: Registry[ZooEntry] = ZOO) -> ResolvedModel:
    """Resolve a model reference to a verified local folder (or a factory); see the module docstring."""
    kind, rest = parse_reference(ref)
    if kind == "factory":
        return ResolvedModel(ref, "factory", "python")
    if kind == "local":
        folder = Path(rest).expanduser().resolve()
        if folder.is_file() and folder.name == WEIGHTS:
            folder = folder.parent
        if not folder.is_dir():
            raise ModelReferenceError(f"{folder}: not a folder; pass the folder holding {CONFIG} and {WEIGHTS}")
        if not (folder / CONFIG).is_file():
            raise ModelReferenceError(f"{folder}: no {CONFIG}; a seqbench model folder holds {CONFIG} and {WEIGHTS}")
        sha = verify_weights(folder, _config_sha(folder), "local folder", "Re-export or re-download the model.")
        return ResolvedModel(ref, "local", "local", folder, weights_sha256=sha)
    if kind == "hf-hub":
        repo_id, _, revision = rest.partition("@")
        if repo_id.count("/") != 1 or not all(repo_id.split("/")):
            raise ModelReferenceError(f"{ref!r}: expected hf-hub:org/repo or hf-hub:org/repo@revision")
        if not revision:
            log.warning("%s has no pinned revision; using the current 'main' (pin one: hf-hub:%s@COMMIT)", ref, repo_id)
        folder, source, problem = _download(repo_id, revision or None)
        if folder is None:
            raise ModelNotAvailable(f"{ref}: {problem or 'not in the Hugging Face cache (offline mode)'}. "
                                    + _fetch_hint(repo_id, revision or None))
        sha = verify_weights(folder, _config_sha(folder), source, _redownload_hint(folder, repo_id, revision))
        return ResolvedModel(ref, "hf-hub", source, folder, repo_id, folder.name, sha)
    # zoo:NAME
    entry = registry.get(rest)
    return _resolve_zoo(ref, entry)


def _redownload_hint(folder: Path, repo_id: str, revision: str | None) -> str:
    return (f"Delete the cached copy ({folder}) and download again: `hf download {repo_id}"
            f"{' --revision ' + revision if revision else ''} --force-download`.")


def _resolve_zoo(ref: str, entry: ZooEntry) -> ResolvedModel:
    problem = None
    if entry.published:
        folder, source, problem = _download(entry.repo_id, entry.revision)
        if folder is not None:
            sha = verify_weights(folder, entry.weights_sha256, source,
                                 _redownload_hint(folder, entry.repo_id, entry.revision))
            return ResolvedModel(ref, "zoo", source, folder, entry.repo_id, folder.name, sha, entry)
    mirror = mirror_folder(entry.name)
    if mirror is not None:
        sha = verify_weights(mirror, entry.weights_sha256 or _config_sha(mirror), "zoo mirror",
                             f"Restore {mirror} from git (`git checkout -- {mirror}`) or fetch it from the Hub.")
        return ResolvedModel(ref, "zoo", "mirror", mirror, entry.repo_id, entry.revision, sha, entry)
    where = ", ".join(str(d / entry.name) for d in mirror_dirs())
    if not entry.published:
        raise ModelNotAvailable(
            f"zoo:{entry.name} is registered but has no published weights yet ({entry.description}), and no mirror "
            f"folder exists ({where}). Train it with recipe {entry.recipe!r}, export it with "
            f"seqbench.zoo.export(model, '{entry.name}', folder) and publish it with `seqbench zoo push {entry.name}`.")
    raise ModelNotAvailable(
        f"zoo:{entry.name} ({entry.repo_id}@{entry.revision}) is neither in the Hugging Face cache "
        f"({hub_cache_dir()}) nor mirrored ({where}){': ' + problem if problem else ''}. "
        + _fetch_hint(entry.repo_id, entry.revision))


# -- loading --------------------------------------------------------------------------------------------------------
def load_factory(ref: str):
    """Import ``package.module`` and call ``factory()`` (or the factory an ``ep:NAME`` entry point of the group
    ``seqbench.models`` names); the result must have ``score(batch)``."""
    if ref.startswith("ep:"):
        from importlib.metadata import entry_points

        eps = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        if ref[3:] not in eps:
            from seqbench.registry import unknown_name

            raise unknown_name(f"model entry point (group {ENTRY_POINT_GROUP!r})", ref[3:], eps)
        ref = eps[ref[3:]].value
    mod_name, _, fn_name = ref.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise ModelReferenceError(f"{ref}: cannot import {mod_name!r} ({e}); is it installed or on PYTHONPATH?") from None
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise ModelReferenceError(f"{ref}: {mod_name} has no callable {fn_name!r}")
    import inspect

    try:
        inspect.signature(fn).bind()
    except TypeError as e:  # a factory is called with no arguments
        raise ModelReferenceError(f"{ref}: {fn_name}() cannot be called without arguments ({e}); a factory takes "
                                  "none and returns a model with score(batch)") from None
    except ValueError:  # no signature to inspect (some builtins): try the call
        pass
    model = fn()
    if not callable(getattr(model, "score", None)):
        raise ModelReferenceError(
            f"{ref}: {fn_name}() returned a {type(model).__name__} without a score(batch) method; a model must "
            "return (summed NLL in nats per sequence (B,), predicted units per sequence (B,)) from score(batch)")
    return model


def load_model(ref: str, *, device: str = "cpu", registry: Registry[ZooEntry] = ZOO) -> tuple[Any, ResolvedModel]:
    """The network a reference names (in eval mode, on ``device``) and where it came from."""
    resolved = resolve(ref, registry=registry)
    if resolved.kind == "factory":
        model = load_factory(ref)
    else:
        from seqbench.models.io import load_pretrained

        model = load_pretrained(resolved.folder, map_location=device, verify=False)  # resolve() verified
        entry = resolved.entry
        if entry is not None and model.family != entry.family:
            raise ModelReferenceError(f"{resolved.folder}/{CONFIG} holds a {model.family} network, "
                                      f"but zoo:{entry.name} is a {entry.family}")
    if hasattr(model, "to"):
        model = model.to(device)
    if hasattr(model, "eval"):
        model.eval()
    return model, resolved


def fetch(name: str, *, registry: Registry[ZooEntry] = ZOO) -> ResolvedModel:
    """Download zoo:NAME into the Hugging Face cache (network needed)."""
    entry = registry.get(name)
    if not entry.published:
        raise ModelNotAvailable(f"zoo:{name} has no published revision yet; nothing to fetch")
    if hub_offline():
        raise ModelNotAvailable("HF_HUB_OFFLINE is set; unset it to download")
    return _resolve_zoo(f"zoo:{name}", entry)


def push(name: str, *, repo_id: str | None = None, folder: str | os.PathLike | None = None, token: str | None = None,
         private: bool = False, registry: Registry[ZooEntry] = ZOO, api=None) -> str:
    """Publish the zoo folder of ``name`` to its Hub repo; returns the new commit to pin as the entry's revision."""
    entry = registry.get(name) if name in registry else None
    src = Path(folder) if folder is not None else mirror_folder(name)
    if src is None or not (src / CONFIG).is_file():
        raise ModelNotAvailable(f"no zoo folder for {name!r} (looked in {', '.join(str(d) for d in mirror_dirs())}); "
                                "export one with seqbench.zoo.export(model, name, folder) first")
    missing = [f for f in REPO_FILES if not (src / f).is_file()]
    if missing:
        raise ModelNotAvailable(f"{src}: missing {', '.join(missing)}; a zoo folder holds {', '.join(REPO_FILES)}")
    verify_weights(src, _config_sha(src), "zoo folder", "Re-export the model.")
    if hub_offline():
        raise ModelNotAvailable("HF_HUB_OFFLINE is set; unset it to push to the Hub")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=hub_endpoint(), token=token)
    target = repo_id or (entry.repo_id if entry else f"seqbench/{name}")
    api.create_repo(target, exist_ok=True, private=private)
    files = list(REPO_FILES) + [f for f in CARD_FILES if (src / f).is_file()]
    info = api.upload_folder(repo_id=target, folder_path=str(src), allow_patterns=files,
                             commit_message=f"seqbench zoo push {name}")
    commit = getattr(info, "oid", None) or str(info)
    log.info("pushed %s to %s@%s", src, target, commit)
    return commit


__all__ = ["ResolvedModel", "ModelReferenceError", "ModelNotAvailable", "WeightsChecksumError", "parse_reference",
           "resolve", "load_model", "load_factory", "fetch", "push", "hub_offline", "hub_endpoint", "hub_cache_dir",
           "verify_weights", "cache_blob_sha", "REPO_FILES", "CARD_FILES", "KNOWN_SCHEMES"]
