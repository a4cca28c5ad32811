"""Weights as safetensors + config.json (never pickles), with clear errors for bad checkpoints.

>>> save_pretrained(model, "run/best")        # doctest: +SKIP
>>> model = load_pretrained("run/best")       # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from seqbench.errors import SeqbenchError
from seqbench.models import SeqModel, model_from_config_dict

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class CheckpointError(SeqbenchError):
    """A checkpoint is missing, truncated, corrupt, or does not match the network it is loaded into."""


def save_pretrained(model: SeqModel, folder: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``folder``/model.safetensors and ``folder``/config.json (atomically: temp file, then rename)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt", "family": model.family})
    os.replace(tmp, folder / WEIGHTS)
    cfg = {"model": model.config_dict(), **(extra or {})}
    (folder / (CONFIG + ".tmp")).write_text(json.dumps(cfg, indent=2, sort_keys=True))
    os.replace(folder / (CONFIG + ".tmp"), folder / CONFIG)
    return folder


def read_config(folder: str | os.PathLike) -> dict:
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; a seqbench checkpoint folder holds {CONFIG} and {WEIGHTS}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e}); the checkpoint is corrupt, retrain or re-download") from None


def load_state(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; a seqbench checkpoint folder holds {CONFIG} and {WEIGHTS}")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises SafetensorError / OSError on truncation and corruption
        raise CheckpointError(f"{path}: cannot be read ({e}); the file is truncated or corrupt") from None


def load_into(model: SeqModel, state: dict[str, torch.Tensor], where: str = "checkpoint") -> None:
    """Load ``state`` into ``model``, explaining any mismatch of names or shapes."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs network {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:5])}")
        if shapes:
            parts.append("; ".join(shapes[:5]))
        raise CheckpointError(f"{where} does not match the network's config ({' | '.join(parts)}); "
                              "load it with the config.json saved beside it")
    model.load_state_dict(state)


def load_pretrained(folder: str | os.PathLike, map_location: str | torch.device = "cpu") -> SeqModel:
    """Build the network from ``folder``/config.json and load ``folder``/model.safetensors."""
    cfg = read_config(folder)
    where = Path(folder) / CONFIG
    try:
        spec = cfg["model"]
        model = model_from_config_dict(spec)
    except CheckpointError:
        raise
    except KeyError as e:
        raise CheckpointError(f"{where}: no valid 'model' entry (missing {e})") from None
    except (SeqbenchError, TypeError) as e:  # an unknown family or field, values that build no network
        raise CheckpointError(f"{where}: its 'model' entry cannot build a network ({e}); the checkpoint is "
                              "corrupt or from another version of seqbench: retrain or re-export it") from None
    load_into(model, load_state(folder), where=str(Path(folder) / WEIGHTS))
    return model.to(map_location)


__all__ = ["CheckpointError", "save_pretrained", "load_pretrained", "read_config", "load_state", "load_into"]
