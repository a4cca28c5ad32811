"""Weights as safetensors + config.json (never pickles), with clear errors for bad checkpoints.

>>> save_pretrained(model, "run/best")        # doctest: +SKIP
>>> model = load_pretrained("run/best")       # doctest: +SKIP

Writing: identical tensors and config give byte-identical files (so a sha256 pins the content, not the run
that wrote it), each written whole or not at all (:func:`seqbench.paths.atomic_write_bytes`), mode 0644 like every
other output. safetensors itself writes its ``__metadata__`` in the order of a Rust hash map, which differs
from one process to the next (measured: 5 different sha256s in 6 runs for the same three keys), and with
mode 0600; :func:`safetensors_bytes` fixes the order.

Reading: config.json must be UTF-8 JSON with a valid "model" entry; the weights' header (names, dtypes,
shapes; read without loading a tensor) must match the network the config describes, which is worked out on
torch's meta device, all before a single weight is allocated: a config asking for 12,000 cells beside a 120 KB
weights file is refused at once instead of building 7 GB first.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from seqbench.errors import SeqbenchError
from seqbench.paths import sha256_file, sha256_pin_problem
from seqbench.models import SeqModel, meta_from_config_dict, model_from_config_dict

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")  # safetensors' names of the dtypes a network's weights may have


class CheckpointError(SeqbenchError):
    """A checkpoint is missing, truncated, corrupt, or does not match the network it is loaded into."""


# -- writing ------------------------------------------------------------------------------------------------------
def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """The safetensors file of ``tensors`` with a canonical header: the same bytes for the same tensors and
    metadata, in any process. The data layout is safetensors' own (tensors ordered by dtype and name); the
    header is compact JSON with ``__metadata__`` first: "format" first (where safetensors' PyTorch writers put
    it), then the other keys sorted. With save_pretrained's two keys (format, family) this is the order of the
    committed zoo/tiny-synth weights: re-saving its tensors reproduces their pinned sha256 (tests/test_models.py).
    """
    from safetensors.torch import save

    raw = save(tensors)  # no metadata: the only part of safetensors' output whose order varies
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    if metadata:
        meta = {str(k): str(v) for k, v in metadata.items()}
        ordered = {k: meta[k] for k in sorted(meta, key=lambda k: (k != "format", k))}
        header = {"__metadata__": ordered, **header}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the format pads the header with spaces to a multiple of 8 bytes
    return struct.pack("<Q", len(text)) + text + raw[8 + n:]


def weights_bytes(model: SeqModel) -> bytes:
    """The bytes of ``model``'s model.safetensors as :func:`save_pretrained` writes them (so their sha256 is
    the one the written file will have, known before anything is written)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return safetensors_bytes(tensors, {"format": "pt", "family": model.family})


def save_pretrained(model: SeqModel, folder: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``folder``/model.safetensors and ``folder``/config.json: byte-identical for identical tensors and
    config, each written whole or not at all, mode 0644 (see the module docstring)."""
    from seqbench.paths import atomic_write_bytes, atomic_write_text

    folder = Path(folder)
    atomic_write_bytes(folder / WEIGHTS, weights_bytes(model))
    cfg = {"model": model.config_dict(), **(extra or {})}
    atomic_write_text(folder / CONFIG, json.dumps(cfg, indent=2, sort_keys=True))
    return folder


# -- side information: what a network needs besides its weights ---------------------------------------------
# config.json keys (the checkpoint format's one definition; the trainer, the zoo export and the samplers' loader
# all go through side_info / read_side_info):
#   "offset_stats": {transform name: {"mean_dx", "std_dx", "mean_dy", "std_dy", ...}}  (handwriting networks)
#   "vocab":        Vocabulary.to_dict(): {"name", "symbols", "fallback"}                (synthesis networks)
#   "symbols":      [text of symbol 0, text of symbol 1, ...]                           (language models)
# read_side_info also reads what older or hand-written checkpoints hold (see _stats_from, _vocab_from,
# _symbols_from): those forms stay readable, only the forms above are written.
@dataclass
class SideInfo:
    """What a checkpoint records besides the weights, each None when unknown or not the network's kind."""

    vocab: Any = None  # seqbench.data.iam.vocab.Vocabulary
    stats: Any = None  # seqbench.data.iam.transform.OffsetStats
    symbols: list[str] | None = None


def side_info(model: Any, *, offset_stats: Any = None, transform: str | None = None, vocab: Any = None,
              symbols: Sequence[str] | None = None) -> dict[str, Any]:
    """The config.json entries of ``model``'s side information, from what it was trained or evaluated on: the
    offset statistics its inputs were normalised with (an OffsetStats or its ``to_dict()``; under the name of
    ``transform``, by default seqbench's offset transform) for a handwriting network, so samples come out in
    board units; ``vocab`` (a Vocabulary) for a synthesis network whose classes it matches; the ``symbols`` of a
    language model. What does not apply to the network's kind is left out."""
    from seqbench.models import is_conditional, is_handwriting, is_text

    out: dict[str, Any] = {}
    if offset_stats is not None and is_handwriting(model):
        if transform is None:
            from seqbench.data.iam.transform import NAME as transform
        stats = offset_stats.to_dict() if hasattr(offset_stats, "to_dict") else dict(offset_stats)
        out["offset_stats"] = {transform: stats}
    if vocab is not None and is_conditional(model) and \
            vocab.size == getattr(getattr(model, "config", None), "vocab_size", None):
        out["vocab"] = vocab.to_dict()
    if symbols is not None and is_text(model):
        out["symbols"] = list(symbols)
    return out


def read_side_info(cfg: dict, model: Any, where: str = "config.json", *, vocab: bool = True, stats: bool = True,
                   symbols: bool = True) -> SideInfo:
    """The side information config.json ``cfg`` records for ``model``: each of its kind only (a language
    model's "vocab" is no handwriting vocabulary), and only those asked for (``vocab=False`` etc.: a value the
    caller has already, so a bad entry for it is not read). A mistyped entry raises
    :class:`~seqbench.sampling.errors.SamplingError` naming it and ``where``."""
    from seqbench.models import is_conditional, is_handwriting, is_text

    cfg = cfg if isinstance(cfg, dict) else {}
    return SideInfo(vocab=_vocab_from(cfg, where) if vocab and is_conditional(model) else None,
                    stats=_stats_from(cfg, where) if stats and is_handwriting(model) else None,
                    symbols=_symbols_from(cfg, where) if symbols and is_text(model) else None)


_VOCAB_FORMS = ('a vocabulary name ("graves57-v1"), a list of one-character symbols, or '
                '{"name": ..., "symbols": [...], "fallback": null or a class index}')


def vocabulary_from_dict(d: Any, where: str = "vocabulary"):
    """A :class:`~seqbench.data.iam.vocab.Vocabulary` from its ``to_dict()`` (or a name, or a symbol list).

    Anything else (a number, symbols that are not strings, a fallback outside the classes, ...) raises
    :class:`SamplingError` naming ``where`` (e.g. "runs/x/best/config.json: 'vocab'")."""
    from seqbench.data.iam.vocab import GRAVES57, Vocabulary
    from seqbench.sampling.errors import SamplingError

    def bad(why: str) -> SamplingError:
        return SamplingError(f"{where}: {why}; it must be {_VOCAB_FORMS}. Fix or remove the entry (a 57-class "
                             "network then uses graves57-v1), or pass vocab= from Python")

    if d is None:
        return None
    if isinstance(d, str):
        if d == GRAVES57.name:
            return GRAVES57
        raise bad(f"unknown vocabulary name {d!r} (known: {GRAVES57.name})")
    if isinstance(d, (list, tuple)):
        d = {"name": f"custom-{len(d)}", "symbols": list(d), "fallback": None}
    if not isinstance(d, dict):
        raise bad(f"it is {str(d)[:80]}, not a vocabulary")
    syms = d.get("symbols")
    if not isinstance(syms, (list, tuple)) or not syms or not all(isinstance(x, str) and x for x in syms):
        raise bad(f"'symbols' is {str(syms)[:80]}, not a non-empty list of strings")
    symbols = tuple(syms)
    name = d.get("name", f"custom-{len(symbols)}")
    fallback = d.get("fallback")
    if not isinstance(name, str):
        raise bad(f"'name' is {name!r}, not a string")
    if fallback is not None and (isinstance(fallback, bool) or not isinstance(fallback, int)
                                 or not 0 <= fallback < len(symbols)):
        raise bad(f"'fallback' is {fallback!r}, not null or a class index in 0..{len(symbols) - 1}")
    if name == GRAVES57.name and symbols == GRAVES57.symbols:
        return GRAVES57
    table = {s: i for i, s in enumerate(symbols) if len(s) == 1}
    return Vocabulary(name=name, symbols=symbols, table=table, fallback=fallback)


def _sections(cfg: dict) -> tuple[tuple[str, dict], ...]:
    data = cfg.get("data")
    return (("", cfg),) + ((("data.", data),) if isinstance(data, dict) else ())


def _stats_from(cfg: dict, where: str = "config.json"):
    """The offset statistics config.json records (under offset_stats or stats, at the top or in data, by
    transform name or bare), or None; a mistyped entry raises :class:`SamplingError` naming it."""
    import math

    from seqbench.data.iam.transform import NAME, OffsetStats
    from seqbench.sampling.errors import SamplingError

    for prefix, sec in _sections(cfg):
        for key in ("offset_stats", "stats"):
            if key not in sec:
                continue
            d, label = sec[key], f"{where}: '{prefix}{key}'"
            if isinstance(d, dict) and isinstance(d.get(NAME), dict):
                d, label = d[NAME], f"{label}['{NAME}']"
            if not isinstance(d, dict) or "std_dx" not in d:
                if key == "stats" and isinstance(d, dict):  # some other statistics under a generic name
                    continue
                raise SamplingError(f"{label} is {str(d)[:80]}, not offset statistics ({{\"mean_dx\": ..., "
                                    "\"std_dx\": ..., \"mean_dy\": ..., \"std_dy\": ...}, as seqbench prepare writes "
                                    "them); fix or remove the entry (samples are then drawn in normalised units), "
                                    "or pass stats= from Python")
            for k in ("mean_dx", "std_dx", "mean_dy", "std_dy"):
                v = d.get(k)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or \
                        (k.startswith("std") and v <= 0):
                    raise SamplingError(f"{label}: {k} is {v!r}, not a finite number{' > 0' if k.startswith('std') else ''}; "
                                        "fix or remove the entry, or pass stats= from Python")
            try:
                return OffsetStats.from_dict({**{k: 0 for k in ("n_lines", "n_offsets")}, **d})
            except TypeError as e:
                raise SamplingError(f"{label}: {e}") from None
    return None


def _vocab_from(cfg: dict, where: str = "config.json"):
    for key in ("vocab", "vocabulary"):
        for prefix, sec in _sections(cfg):
            if key in sec:
                return vocabulary_from_dict(sec[key], where=f"{where}: '{prefix}{key}'")
    toy = _toy_symbols(cfg)
    return None if toy is None else vocabulary_from_dict({"name": "toy-28", "symbols": toy, "fallback": None})


def _toy_symbols(cfg: dict) -> list[str] | None:
    """The tiny recipes' built-in data (seqbench.training.toy) write with ALPHABET + "." (28 symbols); their
    checkpoints name the data set in the recipe rather than storing the symbols."""
    recipe = cfg.get("recipe") if isinstance(cfg.get("recipe"), dict) else {}
    data = recipe.get("data") if isinstance(recipe.get("data"), dict) else {}
    if str(data.get("source") or data.get("name") or "").startswith("toy-"):
        try:
            from seqbench.training.toy import ALPHABET
        except ImportError:
            return None
        return list(ALPHABET + ".")
    return None


def _symbols_from(cfg: dict, where: str = "config.json") -> list[str] | None:
    from seqbench.sampling.errors import SamplingError

    for key in ("symbols", "vocab", "vocabulary"):
        for prefix, sec in _sections(cfg):
            if key not in sec:
                continue
            v = sec[key]
            if isinstance(v, dict):
                v = v.get("symbols")
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise SamplingError(f"{where}: '{prefix}{key}' is {str(sec[key])[:80]}, not a list of symbols "
                                    "(strings; symbols[i] is the text of symbol i); fix it, or pass symbols= from "
                                    "Python")
            return list(v)
    return _toy_symbols(cfg)


# -- reading ------------------------------------------------------------------------------------------------------
def _missing(path: Path) -> CheckpointError:
    return CheckpointError(f"{path}: missing; a seqbench checkpoint folder holds {CONFIG} and {WEIGHTS}")


def read_config(folder: str | os.PathLike) -> dict:
    """``folder``/config.json as a dict; a missing file, bytes that are not UTF-8, invalid JSON or a JSON value
    that is not an object raise :class:`CheckpointError` naming the file."""
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise _missing(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r}); the "
                              "checkpoint is corrupt, retrain or re-download it") from None
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e}); the checkpoint is corrupt, retrain or re-download") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: holds a JSON {type(cfg).__name__}, not an object with a \"model\" entry; "
                              "the checkpoint is corrupt, retrain or re-download it")
    return cfg


def read_header(folder: str | os.PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor name: (safetensors dtype, shape)} of ``folder``/model.safetensors, from its header alone (no
    tensor is read); a truncated or corrupt file raises :class:`CheckpointError`."""
    from safetensors import safe_open

    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise _missing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            out = {}
            for k in f.keys():
                sl = f.get_slice(k)
                out[k] = (str(sl.get_dtype()), tuple(int(d) for d in sl.get_shape()))
            return out
    except Exception as e:  # SafetensorError, OSError: a header that does not parse, offsets past the end, ...
        raise CheckpointError(f"{path}: cannot be read ({str(e).splitlines()[0][:300]}); the file is truncated or "
                              "corrupt") from None


def load_state(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise _missing(path)
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises SafetensorError / OSError on truncation and corruption
        raise CheckpointError(f"{path}: cannot be read ({e}); the file is truncated or corrupt") from None


def _mismatch(own: dict[str, tuple[int, ...]], theirs: dict[str, tuple[int, ...]]) -> str | None:
    """What differs between the network's tensor shapes and a checkpoint's, or None."""
    missing = sorted(set(own) - set(theirs))
    unexpected = sorted(set(theirs) - set(own))
    shapes = [f"{k}: checkpoint {theirs[k]} vs network {own[k]}" for k in own if k in theirs and theirs[k] != own[k]]
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing[:5])}")
    if unexpected:
        parts.append(f"unexpected {', '.join(unexpected[:5])}")
    if shapes:
        parts.append("; ".join(shapes[:5]))
    return " | ".join(parts) or None


def load_into(model: SeqModel, state: dict[str, torch.Tensor], where: str = "checkpoint") -> None:
    """Load ``state`` into ``model``, explaining any mismatch of names or shapes."""
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problem = _mismatch(own, {k: tuple(v.shape) for k, v in state.items()})
    if problem:
        raise CheckpointError(f"{where} does not match the network's config ({problem}); "
                              "load it with the config.json saved beside it")
    model.load_state_dict(state)


def check_header(folder: str | os.PathLike, spec: Any) -> SeqModel:
    """The network ``spec`` (a config.json "model" entry) describes, on the meta device, after checking that
    ``folder``/model.safetensors holds exactly its tensors, with its shapes and floating-point dtypes. Nothing
    is allocated: this runs before the network is built."""
    folder = Path(folder)
    where = folder / CONFIG
    try:
        meta = meta_from_config_dict(spec)
    except SeqbenchError as e:  # an unknown family or field, values that build no network
        raise CheckpointError(f"{where}: its 'model' entry cannot build a network ({e}); the checkpoint is "
                              "corrupt or from another version of seqbench: retrain or re-export it") from None
    header = read_header(folder)
    own = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
    problem = _mismatch(own, {k: shape for k, (_, shape) in header.items()})
    if problem:
        n_own = sum(p.numel() for p in meta.parameters())
        n_file = sum(int(torch.Size(shape).numel()) for _, shape in header.values())
        raise CheckpointError(
            f"{folder / WEIGHTS} does not match the network's config in {where} ({problem}): it describes a "
            f"{meta.family} network of {n_own:,} parameters, the weights hold {n_file:,} values; they come from "
            "different models (or one of them is corrupt): use the pair saved together")
    bad = sorted(k for k, (dtype, _) in header.items() if dtype not in FLOAT_DTYPES)
    if bad:
        raise CheckpointError(f"{folder / WEIGHTS}: {', '.join(bad[:5])} have dtype "
                              f"{header[bad[0]][0]}, not a floating-point type; the file is not a seqbench network")
    return meta


def load_pretrained(folder: str | os.PathLike, map_location: str | torch.device = "cpu", *,
                    verify: bool = True) -> SeqModel:
    """Build the network from ``folder``/config.json and load ``folder``/model.safetensors.

    With ``verify`` (the default), weights whose sha256 differs from the ``weights_sha256`` config.json records
    (zoo folders and their copies record one) are refused; :func:`seqbench.zoo.hub.load_model`, which has
    checked every pin already, passes ``verify=False``. The config and the weights' header are then checked
    against each other (:func:`check_header`), so a config that does not fit the weights costs nothing."""
    cfg = read_config(folder)
    where = Path(folder) / CONFIG
    pin = cfg.get("weights_sha256")
    if verify and "weights_sha256" in cfg and sha256_pin_problem(pin):  # a malformed pin refuses, never skips
        raise CheckpointError(f"{where}: {sha256_pin_problem(pin)}, so it pins nothing; config.json is damaged: "
                              "restore or re-export the folder (or remove the entry to load unpinned weights)")
    if verify and pin is not None and (Path(folder) / WEIGHTS).is_file():
        got = sha256_file(Path(folder) / WEIGHTS)
        if got != pin:
            raise CheckpointError(f"{Path(folder) / WEIGHTS}: sha256 {got} does not match the pinned {pin} that "
                                  f"{where} records; the file is corrupt or not the one exported with it: restore "
                                  "or re-download the folder")
    if "model" not in cfg:
        raise CheckpointError(f"{where}: no valid 'model' entry (missing 'model')")
    check_header(folder, cfg["model"])
    try:
        # the header fits the config, so the weights file already holds this many values: no size limit here
        model = model_from_config_dict(cfg["model"], max_parameters=None)
    except SeqbenchError as e:
        raise CheckpointError(f"{where}: its 'model' entry cannot build a network ({e}); the checkpoint is "
                              "corrupt or from another version of seqbench: retrain or re-export it") from None
    # weights that are not finite load (evaluation reports their non-finite scores as an error, and the samplers
    # refuse a network whose output is not finite), so that each command names what it could not compute
    load_into(model, load_state(folder), where=str(Path(folder) / WEIGHTS))
    return model.to(map_location)


__all__ = ["CheckpointError", "save_pretrained", "load_pretrained", "read_config", "read_header", "check_header",
           "load_state", "load_into", "safetensors_bytes", "weights_bytes", "SideInfo", "side_info", "read_side_info",
           "vocabulary_from_dict"]
