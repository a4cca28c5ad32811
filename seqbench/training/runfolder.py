"""Run-folder state: what a training run keeps on disk so that it can be stopped, killed and resumed exactly.

- ``last/`` (weights, config.json, ``training_state.safetensors`` / ``training_state.json``: optimiser state, RNG
  states, weight-noise state, the carried recurrent state of a text window or a handwriting chunk, the epoch and
  the batch position) and ``best/`` (weights and config.json of the best validation), each swapped in whole;
- ``metrics.jsonl``, one event per line, read back tolerantly (a line cut short by a kill is skipped);
- the recipe a resumed run continues with (:func:`resume_recipe`: only :data:`RESUMABLE_FIELDS` may change).

:mod:`seqbench.training.trainer` owns the loop; this module owns what outlives it.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from seqbench.errors import SeqbenchError
from seqbench.models.io import CheckpointError, load_into, load_state, read_config, save_pretrained
from seqbench.paths import atomic_write_text, recover_folders, replace_folder
from seqbench.training.recipes import Recipe

if TYPE_CHECKING:
    from seqbench.training.trainer import _Run

log = logging.getLogger(__name__)

def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, meta = {}, {"param_groups": sd["param_groups"], "state": {}}
    for idx, st in sd["state"].items():
        meta["state"][str(idx)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                meta["state"][str(idx)][k] = v
    return tensors, meta


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {int(i): dict(v) for i, v in meta["state"].items()}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, idx, k = key.split(".", 2)
            state.setdefault(int(idx), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def _state_tensors(state: Any, prefix: str) -> dict[str, torch.Tensor]:
    """Flatten a carried state into named tensors: a tensor is ``prefix``, a list or tuple of states
    ``prefix.0``, ``prefix.1``, ... (any network's state; an LSTM stack's (h, c) pairs are ``prefix.n.h`` and
    ``prefix.n.c``, as before), a dataclass state (the synthesis network's layers, κ and window) its fields in
    order, as a list (what is None is not saved: the network recomputes it)."""
    if state is None:
        return {}
    if torch.is_tensor(state):
        return {prefix: state.detach().cpu().contiguous()}
    if dataclasses.is_dataclass(state):
        state = [getattr(state, f.name) for f in dataclasses.fields(state)]
        while state and state[-1] is None:
            state.pop()
    out = {}
    for n, st in enumerate(state):
        if isinstance(st, tuple) and len(st) == 2 and all(torch.is_tensor(x) for x in st):
            out[f"{prefix}.{n}.h"] = st[0].detach().cpu().contiguous()
            out[f"{prefix}.{n}.c"] = st[1].detach().cpu().contiguous()
        else:
            out.update(_state_tensors(st, f"{prefix}.{n}"))
    return out


def _state_from(tensors: dict[str, torch.Tensor], prefix: str, device) -> Any:
    """The inverse of :func:`_state_tensors` (lists and tuples come back as lists, (h, c) pairs as tuples, a
    dataclass state as the list of its fields, which its network's ``forward`` takes); None when nothing was saved
    under ``prefix``."""
    if prefix in tensors:
        return tensors[prefix].to(device)
    if f"{prefix}.h" in tensors:
        return tensors[f"{prefix}.h"].to(device), tensors[f"{prefix}.c"].to(device)
    out, n = [], 0
    while any(k == f"{prefix}.{n}" or k.startswith(f"{prefix}.{n}.") for k in tensors):
        out.append(_state_from(tensors, f"{prefix}.{n}", device))
        n += 1
    return out or None


def save_checkpoint(run: "_Run", best: bool) -> None:
    """Write last/ (weights, config, optimiser and RNG state) and, if ``best``, best/: each folder is filled
    under a temporary name and swapped in, so that a kill at any moment leaves the previous folder or the
    new one whole, never a mixture (see :func:`_recover_folders`)."""
    if not run.main:
        return
    from safetensors.torch import save_file

    tensors, meta = _flatten_optimizer(run.opt)
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.noise"] = run.noise_gen.get_state()
    if run.noise:
        tensors.update({f"noise.{k}": v.cpu() for k, v in run.noise.state_dict().items()})
    tensors.update(_state_tensors(run.carry, "carry"))
    if run.ema is not None:  # the moving average (best/ holds it at its best validation; last/ the trained weights)
        tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in run.ema.state_dict().items()})
    if run.best_weights is not None:  # restore-best goes back to these (best/ may hold a stop's better weights)
        tensors.update({f"best_weights.{k}": v.detach().cpu().contiguous() for k, v in run.best_weights.items()})
    meta.update(step=run.step, epoch=run.epoch, batch_in_epoch=run.batch_in_epoch, best=run.best,
                evals_since_best=run.evals_since_best, running=run.running, rollbacks=run.rollbacks,
                partial=None if run.partial is None else run.partial.tolist(), last_loss=run.last_loss,
                lr_scale=run.lr_scale, evals_since_change=run.evals_since_change, best_saved=run.best_saved,
                wall_s=round(run.wall_s(), 3), cpu_s=round(run.cpu_s(), 3))

    def fill_last(folder: Path) -> None:
        save_pretrained(run.model, folder, run._extra())
        save_file(tensors, str(folder / "training_state.safetensors"))
        (folder / "training_state.json").write_text(json.dumps(meta))

    # best/ first: a kill between the two leaves last/ at the previous checkpoint, whose resume replays
    # this step and writes the same best/ again (the other order could leave a stale best/ for good)
    if best:
        _replace_folder(run.out, "best", lambda folder: save_pretrained(run.eval_model, folder, run._extra()))
    _replace_folder(run.out, "last", fill_last)


def restore_checkpoint(run: "_Run") -> None:
    """Put ``run`` back where last/ left it: weights, optimiser, RNG and noise state, the carried state, the
    counters and the history up to that step (the metrics.jsonl lines after it are dropped)."""
    last = last_dir = run.out / "last"
    cfg = read_config(last)
    saved = cfg.get("recipe") if isinstance(cfg.get("recipe"), dict) else {}
    if saved.get("model") != run.recipe.model or saved.get("family") != run.recipe.family:
        raise CheckpointError(f"{last}: its network ({saved.get('family')} {saved.get('model')}) is not the "
                              f"recipe's ({run.recipe.family} {run.recipe.model}); use a new --out folder")
    load_into(run.model, load_state(last), where=str(last))
    tensors, meta = _read_training_state(last)
    try:
        run.opt.load_state_dict(_unflatten_optimizer(tensors, meta))
        torch.set_rng_state(tensors["rng.torch"])
        run.noise_gen.set_state(tensors["rng.noise"])
        if run.noise:
            run.noise.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("noise.")})
        averaged = {k[4:]: v.to(run.device) for k, v in tensors.items() if k.startswith("ema.")}
        if run.ema is not None and averaged:
            run.ema.load_state_dict(averaged)
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise CheckpointError(f"{last}/training_state.safetensors: unreadable ({type(e).__name__}: {e}); "
                              "cannot resume exactly: start a new run, or --init-from this folder") from None
    # the recipe's optimiser settings are what this run uses from now on (resume allows a new lr only)
    for group in run.opt.param_groups:
        for k, v in run.recipe.optimizer_args.items():
            if k in group:
                group[k] = v
    # the schedule multiplies the recipe's rate (the saved groups hold the last step's scheduled one)
    run.base_lrs = [float(run.recipe.optimizer_args.get("lr", b)) for b in run.base_lrs]
    if run.ema is not None and not averaged:  # weight averaging turned on at this resume: from these weights on
        run.sync_ema()
    run.carry = _state_from(tensors, "carry", run.device)
    for k in ("step", "epoch", "batch_in_epoch", "best", "evals_since_best", "running", "rollbacks"):
        setattr(run, k, meta[k])
    # truncated BPTT (absent from run folders written before it): the loss so far of the lines in progress
    partial, last = meta.get("partial"), meta.get("last_loss")
    if partial is not None and not (isinstance(partial, list) and len(partial) == 3
                                    and all(isinstance(x, (int, float)) for x in partial)):
        raise CheckpointError(f"{last_dir}/training_state.json: 'partial' is {partial!r}, not three numbers; cannot "
                              "resume exactly: start a new run, or --init-from this folder")
    run.partial = None if partial is None else torch.tensor(partial, dtype=torch.float64)
    # restore-best steps (absent before them: the rate as the recipe gives it)
    scale, since = meta.get("lr_scale", 1.0), meta.get("evals_since_change", run.evals_since_best)
    if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and 0 < scale <= 1
            and isinstance(since, int) and not isinstance(since, bool) and since >= 0):
        raise CheckpointError(f"{last_dir}/training_state.json: 'lr_scale' {scale!r} or 'evals_since_change' "
                              f"{since!r} out of range; cannot resume exactly: start a new run, or --init-from this "
                              "folder")
    run.lr_scale, run.evals_since_change = float(scale), since
    saved = meta.get("best_saved", run.best)  # before off-schedule validations were told apart: the best
    run.best_saved = float(saved) if isinstance(saved, (int, float)) and not isinstance(saved, bool) else run.best
    kept = {k[len("best_weights."):]: v.to(run.device) for k, v in tensors.items() if k.startswith("best_weights.")}
    if kept:
        run.best_weights = kept
    elif run.recipe.lr_plateau and (run.out / "best" / "config.json").is_file():  # restore-best turned on at resume
        run.best_weights = {k: v.to(run.device) for k, v in load_state(run.out / "best").items()}
    run.last_loss = float(last) if isinstance(last, (int, float)) and not isinstance(last, bool) else None
    run.history = [h for h in read_metrics(run.out / "metrics.jsonl") if h.get("step", 0) <= run.step]
    if "wall_s" in meta:
        run.wall_before, run.cpu_before = float(meta["wall_s"]), float(meta.get("cpu_s", 0.0))
    else:  # a state written before seqbench counted time: the run's last elapsed time up to this step
        run.wall_before = max((float(h["elapsed_s"]) for h in run.history
                                if isinstance(h.get("elapsed_s"), (int, float))), default=0.0)
        run.cpu_before = run.wall_before * torch.get_num_threads()  # an estimate: wall time × threads
    if run.main:
        atomic_write_text(run.out / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in run.history))


def _replace_folder(out: Path, name: str, fill) -> None:
    """``out/name`` swapped in whole (:func:`seqbench.paths.replace_folder`)."""
    replace_folder(out, name, fill)


def _recover_folders(out: Path) -> None:
    """After a kill during :func:`_replace_folder`: put ``.last.old`` / ``.best.old`` back where the new folder
    never arrived, and delete unfinished temporary folders (:func:`seqbench.paths.recover_folders`)."""
    recover_folders(out, ("last", "best"))


_STATE_FIELDS = {"step": int, "epoch": int, "batch_in_epoch": int, "best": (float, int, type(None)),
                 "evals_since_best": int, "running": (float, int, type(None)), "rollbacks": int,
                 "param_groups": list, "state": dict}


def _read_training_state(last: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """last/training_state.{safetensors,json}, checked field by field; any problem is a CheckpointError."""
    from safetensors.torch import load_file

    path = last / "training_state.json"
    try:
        tensors = load_file(str(last / "training_state.safetensors"))
        meta = json.loads(path.read_text(encoding="utf-8"))
    except Exception as e:  # missing, truncated, not JSON, not UTF-8
        raise CheckpointError(f"{last}: training state unreadable ({type(e).__name__}: {e}); cannot resume "
                              "exactly: start a new run, or --init-from this folder") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: training state unreadable (not a JSON object); cannot resume exactly")
    bad = [f"{k} (missing)" if k not in meta else f"{k} ({type(meta[k]).__name__})"
           for k, t in _STATE_FIELDS.items() if k not in meta or not isinstance(meta[k], t)
           or (t is int and isinstance(meta[k], bool))]
    bad += [f"{k} (missing)" for k in ("rng.torch", "rng.noise") if k not in tensors]
    if bad:
        raise CheckpointError(f"{path}: training state unreadable (bad fields: {', '.join(bad)}); cannot resume "
                              "exactly: start a new run, or --init-from this folder")
    return tensors, meta


def read_metrics(path: Path) -> list[dict]:
    """The events of a metrics.jsonl; a line cut short by a kill (or otherwise not a JSON object) is skipped
    with a warning naming the line."""
    if not path.is_file():
        return []
    events = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            ev = None
        if not isinstance(ev, dict) or not isinstance(ev.get("event"), str):
            log.warning("%s:%d: not a whole event (a write cut short?); skipped", path, n)
            continue
        problem = _event_problem(ev)
        if problem:
            log.warning("%s:%d: %s (a damaged or hand-edited line); skipped", path, n, problem)
            continue
        events.append(ev)
    return events


def _event_problem(ev: dict) -> str | None:
    """What makes a metrics.jsonl event unusable (a field its readers compute with, of the wrong type), or None:
    the step a whole number >= 0; times, epochs and thread counts numbers; the loss of a train or valid event a
    number (a "nan" event may name it as a string)."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    step = ev.get("step", 0)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"'step' is {str(step)[:40]!r}, not a whole number >= 0"
    for k in ("epoch", "elapsed_s", "wall_s", "cpu_s", "threads", "window_sharpness", "lr", "lr_scale"):
        if k in ev and ev[k] is not None and not number(ev[k]):
            return f"{k!r} is {str(ev[k])[:40]!r}, not a number"
    if ev["event"] in ("train", "valid") and not number(ev.get("loss")):
        return f"'loss' is {str(ev.get('loss'))[:40]!r}, not a number"
    wa = ev.get("window_alignment")
    if wa is not None and not (isinstance(wa, list) and all(number(x) for x in wa)):
        return "'window_alignment' is not a list of numbers"
    for k, kind in (("changed", dict), ("reinit", list), ("started_from", dict)):
        if k in ev and not isinstance(ev[k], kind):
            return f"{k!r} is not a JSON {'object' if kind is dict else 'list'}"
    return None


# what --resume may change: stopping rules and the learning rate (honoured: the restored optimiser takes the new
# rate, and the resume event records the change), and weight averaging (``ema``: the trained weights go on as
# before; an average turned on starts at them); everything else would make the resumed run another run
RESUMABLE_FIELDS = ("max_epochs", "max_steps", "patience", "eval_every", "on_nan", "max_rollbacks",
                    "optimizer_args.lr", "lr_half_life", "lr_decay_start", "lr_plateau", "lr_plateau_factor",
                    "data.root", "description", "paper", "ema")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k in ("data", "model", "optimizer_args"):
            out.update(_flat(v, f"{k}."))
        else:
            out[prefix + k] = v
    return out


def _saved_recipe(out: Path) -> Recipe:
    cfg = read_config(out / "last")
    try:
        return Recipe.from_dict(cfg["recipe"])
    except (KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{out}/last/config.json: its 'recipe' entry is unreadable ({type(e).__name__}: "
                              f"{e}); cannot resume: start a new run, or --init-from {out}/last") from None


def _resume_recipe(out: Path, recipe: str | Recipe | None, overrides: dict[str, Any]) -> tuple[Recipe, dict]:
    """The recipe a resumed run continues with: the one saved in last/config.json, with the overrides that
    resume can honour (RESUMABLE_FIELDS); any other change is refused, naming it."""
    saved = _saved_recipe(out)
    name = recipe.name if isinstance(recipe, Recipe) else recipe
    if name is not None and name != saved.name:
        raise SeqbenchError(f"{out} is a run of recipe {saved.name!r}, not {name!r}; resume it with --recipe "
                            f"{saved.name} (or no --recipe), or choose another --out folder")
    if overrides and overrides.get("lr_decay_start") == "resume":  # decay from the step this resume starts at
        try:
            overrides = {**overrides, "lr_decay_start": int(json.loads(
                (out / "last" / "training_state.json").read_text())["step"])}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{out}/last/training_state.json: cannot read the step for lr_decay_start=resume "
                                  f"({type(e).__name__}: {e}); give the step as a number") from None
    rec = saved.replace(**overrides) if overrides else saved
    if isinstance(recipe, Recipe):  # a Recipe object: its fields are the changes asked for
        rec = saved.replace(**{k: v for k, v in _flat(recipe.to_dict()).items()
                               if k != "name" and _flat(saved.to_dict()).get(k, object()) != v})
    before, after = _flat(saved.to_dict()), _flat(rec.to_dict())
    changed = {k: (before.get(k), after.get(k)) for k in sorted(set(before) | set(after))
               if before.get(k) != after.get(k)}
    refused = [k for k in changed if k not in RESUMABLE_FIELDS]
    if refused:
        raise SeqbenchError(
            f"{out}: --resume cannot change {', '.join(f'{k} ({changed[k][0]!r} -> {changed[k][1]!r})' for k in refused)}: "
            f"the restored optimiser state, batches and weights belong to the saved values. Resume may change "
            f"{', '.join(RESUMABLE_FIELDS)}; for anything else start a new run with --init-from {out}/best")
    return rec, changed

