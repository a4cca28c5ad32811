"""The trainer behind ``seqbench train``: one function, :func:`train`.

Output folder (``out``):

- ``recipe.json``  the recipe as run (after overrides);
- ``metrics.jsonl`` one JSON object per line: ``{"event": "train" | "valid" | "nan" | "rollback" | "stop", ...}``;
- ``best/``        model.safetensors + config.json of the best validation score (what evaluation loads);
- ``last/``        the same for the latest validation, plus training_state.safetensors / training_state.json:
                   optimiser state, RNG states, weight-noise state, carried text state, the epoch and the batch
                   position, so that ``resume=True`` continues exactly where the run stopped;
- ``loss.png``     training and validation loss against steps.

Losses: the gradient is that of the summed NLL of each sequence, averaged over the sequences of the batch
(Graves trains on per-sequence losses). Reported numbers are totals over totals in named units:
"nats/line" (handwriting: summed nats per line, the paper's Tables 3-4) or "bits/char", "bits/byte",
"bits/word" (text: total nats / total symbols / ln 2, the paper's Tables 1-2).

Under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in DistributedDataParallel (gloo on CPU, NCCL on
GPU); every rank takes its slice of each global batch, so the run matches a single process with the same
batch size. Only rank 0 writes files and shows progress.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seqbench.data.streams import detach_state
from seqbench.errors import SeqbenchError
from seqbench.paths import atomic_write_text, check_output_path
from seqbench.models import SeqModel, build_model, is_conditional, is_text
from seqbench.models.io import CheckpointError, load_into, load_state, read_config, side_info
from seqbench.training.data import Batch, make_batches, n_training_sequences
from seqbench.training.noise import make_noise
from seqbench.training.optim import make_optimizer
from seqbench.training.recipes import Recipe, get_recipe
from seqbench.training.runfolder import (  # noqa: F401  (read_metrics, the state helpers: public through here too)
    RESUMABLE_FIELDS, _recover_folders, _resume_recipe, _state_from, _state_tensors, read_metrics,
    restore_checkpoint, save_checkpoint)

log = logging.getLogger(__name__)
LN2 = math.log(2.0)


ALIGNMENT_LINES = 16  # synthesis: lines of the validation set whose window positions each validation records


class TrainingDiverged(SeqbenchError):
    """The loss or a gradient became NaN or infinite and the run could not continue."""


@dataclass
class TrainResult:
    out: Path
    steps: int
    epochs: int
    best_valid: float | None
    unit: str
    history: list[dict] = field(default_factory=list)
    stopped: str = ""  # why the run ended: "max_steps", "max_epochs", "early_stopping", "time_limit", "SIGTERM"...
    recipe: str = ""  # the recipe's name


# ------------------------------------------------------------------ helpers
def _dist() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and os.environ.get("SEQBENCH_DDP_BACKEND") != "gloo" else "gloo"
            dist.init_process_group(backend)
            # Tear the group down before interpreter exit: left to process teardown, gloo's threads
            # can abort the process ("terminate called without an active exception").
            import atexit

            atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce(t: torch.Tensor, world: int) -> torch.Tensor:
    """Sum a small CPU tensor over the ranks, in place (through the GPU when the backend is NCCL)."""
    if world > 1:
        import torch.distributed as dist

        if dist.get_backend() == "nccl":
            x = t.to(torch.device("cuda", torch.cuda.current_device()))
            dist.all_reduce(x)
            t.copy_(x.cpu())
        else:
            dist.all_reduce(t)
    return t


def _to(data: dict, device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in data.items()}


def _averaged(model: SeqModel, decay: float | None):
    """``model``'s exponential moving average (torch.optim.swa_utils.AveragedModel, its parameters and buffers),
    with the decay warmed up as min(decay, (1 + n) / (10 + n)) at the n-th update; None when ``decay`` is None."""
    if decay is None:
        return None
    from torch.optim.swa_utils import AveragedModel

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        k = float(n)
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1.0 + k) / (10.0 + k)))
        else:  # integer buffers (none in seqbench's networks today) follow the trained ones
            for a, c in zip(averaged, current):
                a.copy_(c)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def plot_losses(history: list[dict], path: Path, unit: str) -> None:
    """Training (running) and validation loss against steps, as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # optional dependency (pip install seqbench[plot])
        log.info("matplotlib not installed; no loss plot")
        return
    tr = [(h["step"], h["loss"]) for h in history if h["event"] == "train"]
    va = [(h["step"], h["loss"]) for h in history if h["event"] == "valid"]
    fig, ax = plt.subplots(figsize=(6, 4))
    if tr:
        ax.plot(*zip(*tr), label="train (running)", lw=1)
    if va:
        ax.plot(*zip(*va), "o-", label="validation", lw=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel(unit)
    if tr or va:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------ the run
class _Run:
    def __init__(self, recipe: Recipe, out: Path, device: str, quiet: bool):
        self.recipe, self.out, self.quiet = recipe, out, quiet
        self.rank, self.world = _dist()
        if device == "cuda" and self.world > 1:  # one GPU per process under torchrun
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            if self.device.index is None:  # set_device needs an index: plain "cuda" is the current GPU
                self.device = torch.device("cuda", torch.cuda.current_device())
            torch.cuda.set_device(self.device)
        self.main = self.rank == 0
        torch.manual_seed(recipe.seed)
        try:
            model = build_model(recipe.family, **recipe.model)
        except SeqbenchError as e:  # e.g. --set model.hidden_size=abc, or -3
            raise SeqbenchError(f"recipe {recipe.name}: {e}; check the model.* values") from None
        self.model: SeqModel = model.to(self.device)
        self.model.set_clipping(lstm=recipe.clip_lstm, output=recipe.clip_output)
        self.ema = _averaged(self.model, recipe.ema)  # None without weight averaging
        self.noise = make_noise(recipe.weight_noise, self.model, recipe.noise_std)
        params = list(self.model.parameters()) + (list(self.noise.parameters()) if self.noise else [])
        self.opt = make_optimizer(recipe.optimizer, params, **recipe.optimizer_args)
        self.base_lrs = [g["lr"] for g in self.opt.param_groups]  # what the schedule's factor multiplies
        self.noise_gen = torch.Generator().manual_seed(recipe.seed + 7919)
        self.train_batches = make_batches(recipe.data, recipe.data.train_split, train=True, seed=recipe.seed,
                                          rank=self.rank, world=self.world)
        self.valid_batches = make_batches(recipe.data, recipe.data.valid_split, train=False, seed=recipe.seed)
        self.n_train_seqs = max(n_training_sequences(self.train_batches), 1)
        self.side_info = self._side_info()
        self.text = is_text(self.model)
        self.net = _Scorer(self.model)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.net = DDP(_Scorer(self.model),
                           device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.world > 1 and recipe.noise_groups > 1:
            raise SeqbenchError(f"noise_groups={recipe.noise_groups} is for one process: under torchrun every process "
                                "would draw the same samples. Train with one process, or set noise_groups=1")
        self.step = self.epoch = self.batch_in_epoch = 0
        self.best: float | None = None
        self.evals_since_best = 0
        self.best_saved: float | None = None  # the validation loss of the weights in best/
        self.evals_since_change = 0  # validations since the best or the last restore-best step, whichever is later
        self.lr_scale = 1.0  # what the restore-best steps have multiplied the rate by
        self.best_weights: dict[str, torch.Tensor] | None = None  # with lr_plateau: a copy of the best weights
        self.rollbacks = 0
        self.carry = None  # the state carried between text windows or handwriting chunks
        self.partial: torch.Tensor | None = None  # truncated BPTT: (nll, units, lines) of the batch's chunks so far
        self.last_loss: float | None = None  # the last whole batch's loss (what train events report)
        self.history: list[dict] = []
        self.running: float | None = None
        self._snapshot: dict | None = None
        self.wall_before = self.cpu_before = 0.0
        self.t_start, self.cpu_start = time.perf_counter(), time.process_time()
        self.stop_flag = _StopFlag()
        self.deadline: float | None = None
        self.valid_s: float | None = None  # how long the last validation took

    # -- losses ------------------------------------------------------------------
    def _score(self, data: dict, state=None):
        """Per-sequence summed NLL (nats), units and the carried text state, through DDP's forward when
        distributed; bf16/fp16 autocast for the big products with ``amp`` (the networks' losses stay float32)."""
        amp = self.recipe.amp
        dtype = torch.bfloat16 if self.device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
        ctx = torch.autocast(self.device.type, dtype=dtype) if amp else contextlib.nullcontext()
        with ctx:
            return self.net(data, state)

    def _loss_value(self, nll_sum: float, n_units: float, n_seqs: float) -> float:
        if self.text:
            return nll_sum / max(n_units, 1) / LN2
        return nll_sum / max(n_seqs, 1)

    # -- validation --------------------------------------------------------------
    @property
    def eval_model(self) -> SeqModel:
        """The weights validation scores and best/ keeps: the moving average with ``ema``, else the trained ones."""
        return self.model if self.ema is None else self.ema.module

    def sync_ema(self) -> None:
        """Start the average again from the trained weights (after --init-from or a restore-best)."""
        if self.ema is not None:
            self.ema.module.load_state_dict(self.model.state_dict())

    @torch.no_grad()
    def validate(self, deadline: float | None = None) -> dict | None:
        """The validation loss of :attr:`eval_model`; with weight averaging also that of the trained weights
        (``trained_loss``, scored on the same batches: what the average buys). None when a stop was requested (a
        signal, or ``deadline`` in perf_counter seconds passed) before it was complete."""
        models = [self.eval_model] + ([self.model] if self.ema is not None else [])
        for m in models:
            m.eval()
        tot = torch.zeros(len(models), 3, dtype=torch.float64)  # per model: nll, units, sequences
        states: list = [None] * len(models)
        pbar = None
        if self.main and not self.quiet:
            from tqdm.auto import tqdm

            pbar = tqdm(total=len(self.valid_batches), desc="validation", unit="batch", leave=False,
                        dynamic_ncols=True)
        try:
            for k, b in enumerate(self.valid_batches.epoch(0)):
                if self.world == 1 and (self.stop_flag.signal or (deadline is not None and time.perf_counter() > deadline)):
                    return None
                if pbar is not None:
                    pbar.update(1)
                for i, m in enumerate(models):
                    stats, states[i] = self._valid_batch(m, k, b, states[i])
                    tot[i] += stats
        finally:
            for m in models:
                m.train()
            if pbar is not None:
                pbar.close()
        _all_reduce(tot, self.world)
        nll, units, seqs = tot[0].tolist()
        out = {"loss": self._loss_value(nll, units, seqs), "nll_nats": nll, "units": units, "sequences": seqs}
        if not self.text:
            out["nats_per_point"] = nll / max(units, 1)
        if len(models) > 1:
            out["trained_loss"] = self._loss_value(*tot[1].tolist())
        if self.main and is_conditional(self.model):
            # a window that stopped reading its text does not show in the loss; this does (docs/training.md)
            from seqbench.evaluation.alignment import window_alignment

            wa = window_alignment(models[0], self.valid_batches.items, limit=ALIGNMENT_LINES)
            out["window_alignment"], out["window_sharpness"] = wa["median"], wa["sharpness"]
        return out

    def _valid_batch(self, model: SeqModel, k: int, b: Batch, state) -> tuple[torch.Tensor, Any]:
        """(nll, units, sequences) of one validation batch on this rank under ``model``, and its carried text
        state."""
        zero = torch.zeros(3, dtype=torch.float64)
        if self.world > 1 and (self.rank != 0 if self.text else k % self.world != self.rank):
            return zero, state  # handwriting: ranks take turns; text streams are sequential: rank 0 scores them
        data = _to(b.data, self.device)
        nll, n, state = model.score_with_state(data, None if b.reset else state)
        return torch.tensor([float(nll.sum()), float(n.sum()), float(len(nll))], dtype=torch.float64), state

    # -- checkpoints -------------------------------------------------------------
    def _extra(self) -> dict:
        return {"recipe": self.recipe.to_dict(), "step": self.step, "unit": self.recipe.unit,
                **self.side_info}

    def _side_info(self) -> dict:
        """The side information saved with every checkpoint (:func:`seqbench.models.io.side_info` owns its
        format), from the training data: an IAM-OnDB network's offset statistics (samples in board units) and
        vocabulary; a PTB model's symbols."""
        src, items = self.recipe.data.source, getattr(self.train_batches, "items", None)
        if src == "iam-ondb" and items is not None and hasattr(items, "stats"):
            return side_info(self.model, offset_stats=items.stats, transform=items.transform.name, vocab=items.vocab)
        if src == "ptb":
            from seqbench.data.ptb import read_vocab

            return side_info(self.model, symbols=read_vocab(self.recipe.data.config or "char", self.recipe.data.root))
        return {}

    def save(self, best: bool) -> None:
        """Write last/ and, if ``best``, best/ (:func:`seqbench.training.runfolder.save_checkpoint`)."""
        save_checkpoint(self, best)

    def wall_s(self) -> float:
        """Wall-clock seconds this run has trained, over all its resumes."""
        return self.wall_before + (time.perf_counter() - self.t_start)

    def cpu_s(self) -> float:
        """CPU seconds (all threads) this run has used, over all its resumes."""
        return self.cpu_before + (time.process_time() - self.cpu_start)

    def resume(self) -> None:
        """Continue from last/ exactly (:func:`seqbench.training.runfolder.restore_checkpoint`)."""
        restore_checkpoint(self)

    def init_from(self, ref: str | Path, reinit: tuple[str, ...] = ()) -> Path:
        """Start from the weights of a checkpoint folder or a zoo model (``zoo:NAME``), verified like every other
        load: the sha256 pinned by the zoo entry, or recorded in the folder's config.json, must match.

        ``reinit`` names submodules (``window``, ``layers.0``, ``output``) that keep this run's fresh,
        seeded initialisation instead of the loaded weights."""
        from seqbench.zoo.hub import resolve

        fresh = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        chosen = {}
        for name in reinit:
            keys = [k for k in fresh if k == name or k.startswith(name + ".")]
            if not keys:
                tops = sorted({k.split(".")[0] for k in fresh})
                raise SeqbenchError(f"--reinit {name}: the {self.recipe.family} network has no such part; its parts "
                                    f"are {', '.join(tops)} (and their numbered children, e.g. layers.0)")
            chosen.update({k: fresh[k] for k in keys})
        resolved = resolve(str(ref))
        if resolved.folder is None:
            raise CheckpointError(f"{ref}: not a checkpoint folder or zoo model; --init-from takes FOLDER or zoo:NAME")
        load_into(self.model, load_state(resolved.folder), where=str(resolved.folder))
        if chosen:
            with torch.no_grad():
                own = self.model.state_dict()
                for k, v in chosen.items():
                    own[k].copy_(v)
        self.sync_ema()
        return resolved.folder

    # -- logging -----------------------------------------------------------------
    def record(self, event: dict) -> None:
        event = {"event": event.pop("event"), "step": self.step, "epoch": self.epoch, **event}
        self.history.append(event)
        if self.main:
            # one write of one whole line; a kill can still cut it short, which read_metrics skips
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(event, allow_nan=False, default=str) + "\n")

    # -- one step ----------------------------------------------------------------
    def _snapshot_take(self) -> None:
        self._snapshot = {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "opt": _clone(self.opt.state_dict()),
            "noise": {k: v.clone() for k, v in self.noise.state_dict().items()} if self.noise else None,
            "ema": None if self.ema is None else {k: v.detach().clone() for k, v in self.ema.state_dict().items()},
        }

    def _rollback(self) -> None:
        s = self._snapshot
        self.model.load_state_dict(s["model"])
        self.opt.load_state_dict(_clone(s["opt"]))
        if self.noise and s["noise"] is not None:
            self.noise.load_state_dict(s["noise"])
        if self.ema is not None and s["ema"] is not None:
            self.ema.load_state_dict(s["ema"])

    def train_step(self, b: Batch) -> bool:
        """One optimiser step on ``b``; False when it was rolled back instead. ``last_loss`` is then the loss of
        the last whole batch in the run's unit: with truncated BPTT the chunks of a batch add up, so that
        handwriting still reports nats/line over whole lines."""
        data = _to(b.data, self.device)
        self.opt.zero_grad(set_to_none=True)
        state = None if b.reset or self.carry is None else detach_state(self.carry)
        if self.noise and self.recipe.noise_groups > 1:
            nll, n, new_state, loss = self._grouped_noise_pass(data, state)
        else:
            if self.noise:
                self.noise.perturb(self.noise_gen)
            nll, n, new_state = self._score(data, state)
            loss = nll.sum() / len(nll)  # summed NLL per sequence, averaged over the sequences (see module doc)
            loss.backward()
            if self.noise:
                # clean weights back; adaptive noise adds its σ gradients and L_C / N: the step's objective is
                # mean_batch(L_E per sequence) + L_C / N, whose sum over the N / B steps of an epoch is
                # (L_E + L_C) / B, Graves (2011)'s objective up to the constant 1 / B (N: sequences per epoch)
                self.noise.restore(1.0 / self.n_train_seqs)
        stats = torch.tensor([float(nll.detach().sum()), float(n.sum()), float(len(nll))], dtype=torch.float64)
        sums = [p.grad.sum() for p in self.opt_params() if p.grad is not None]  # inf or NaN anywhere shows here
        finite = bool(torch.isfinite(torch.stack([loss.detach(), *sums])).all())  # one device sync
        ok = torch.tensor([1.0 if finite else 0.0])
        _all_reduce(ok, self.world)
        if ok.item() < self.world:
            return self._handle_nan(b, float(loss.detach()))
        if self.recipe.clip_norm is not None:  # after the derivative clipping of the backward pass
            torch.nn.utils.clip_grad_norm_(list(self.opt_params()), self.recipe.clip_norm)
        if self.recipe.lr_warmup_steps or self.recipe.lr_half_life or self.lr_scale != 1.0:
            f = self.recipe.lr_factor(self.step) * self.lr_scale
            for g, base in zip(self.opt.param_groups, self.base_lrs):
                g["lr"] = base * f
        self.opt.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.carry = detach_state(new_state) if b.carry else None
        _all_reduce(stats, self.world)
        if self.partial is not None and not b.reset:  # a later chunk of the same lines: nll and units add up
            stats[:2] += self.partial[:2]
        self.partial = None if b.whole else stats
        if b.whole and bool(torch.isfinite(stats).all()):  # NaN: a chunk of these lines was rolled back
            self.last_loss = self._loss_value(*stats.tolist())
        return True

    def _grouped_noise_pass(self, data: dict, state):
        """Forward and backward with ``noise_groups`` independent samples of fixed weight noise: the batch's
        sequences in that many groups, each scored at its own noisy weights, the gradients summed (each group's
        loss over the whole batch's count, so the gradient is the batch mean's, as with one sample). Returns the
        batch's per-sequence (nll, n), its state to carry on and its loss."""
        B = len(data["targets"])
        nlls, ns, states, total = [], [], [], 0.0
        for idx in torch.arange(B).tensor_split(self.recipe.noise_groups):
            a, z = int(idx[0]), int(idx[-1]) + 1
            self.noise.perturb(self.noise_gen)
            nll, n, st = self._score(_rows(data, a, z), None if state is None else _rows(state, a, z))
            loss = nll.sum() / B
            loss.backward()
            self.noise.restore(1.0 / self.n_train_seqs)
            nlls.append(nll.detach())
            ns.append(n)
            states.append(st)
            total = total + loss.detach()
        return torch.cat(nlls), torch.cat(ns), _cat_rows(states), total

    def opt_params(self):
        for g in self.opt.param_groups:
            yield from g["params"]

    def _handle_nan(self, b: Batch, loss: float) -> None:
        what = "loss" if not math.isfinite(loss) else "a gradient"
        msg = (f"{what} became {'NaN' if math.isnan(loss) else 'non-finite'} in the step after step {self.step} "
               f"(epoch {self.epoch}, batch {self.batch_in_epoch}: {', '.join(b.ids[:8])}"
               f"{' …' if len(b.ids) > 8 else ''})")
        self.record({"event": "nan", "message": msg, "ids": b.ids, "loss": loss if math.isfinite(loss) else str(loss)})
        log.warning(msg)
        self._nan_or_rollback(msg, "Lower the learning rate or check the data of that batch.")
        return False

    def _checkpoints_left(self) -> str:
        """What a stopped run leaves, for its messages: the checkpoints that exist, with their steps."""
        parts = []
        for name, what in (("last", "the last checkpoint"), ("best", "the best validated weights")):
            try:
                step = read_config(self.out / name).get("step")
            except CheckpointError:
                continue
            parts.append(f"{what} (step {step}) are in {self.out / name}/" if name == "best" else
                         f"{what} (step {step}) is in {self.out / name}/")
        return "; ".join(parts) if parts else "no checkpoint was written"

    def _nan_or_rollback(self, msg: str, advice: str) -> None:
        """Roll back to the state of the last validation, or stop with TrainingDiverged when that is not allowed
        (on_nan="stop", no snapshot, too many rollbacks)."""
        if self.recipe.on_nan == "stop" or self._snapshot is None or self.rollbacks >= self.recipe.max_rollbacks:
            self.record({"event": "stop", "reason": "nan"})
            where = self._checkpoints_left()
            raise TrainingDiverged(f"{msg}; stopped ({where}). {advice}")
        self._rollback()
        self.rollbacks += 1
        self.carry = None
        if self.partial is not None:  # the handwriting lines in progress lost a chunk: their loss is not whole
            self.partial = torch.full((3,), math.nan, dtype=torch.float64)
        self.record({"event": "rollback", "to": "last validation", "rollbacks": self.rollbacks})


# ------------------------------------------------------------------ run-folder state
class _StopFlag:
    """Set by SIGINT / SIGTERM while a run trains: the loop finishes the step it is in, checkpoints and returns.
    A second signal interrupts at once (the checkpoint folders are swapped in whole, so none is left half
    written)."""

    def __init__(self):
        self.signal: str | None = None
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name
        log.warning("%s: stopping after this step with a checkpoint (send it again to stop at once)", self.signal)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def _rows(obj: Any, a: int, z: int) -> Any:
    """Rows ``a:z`` (the batch dimension, first everywhere) of a batch or a carried state: tensors, lists of per-
    sequence values, and tuples, lists, dicts or dataclasses of them."""
    if isinstance(obj, torch.Tensor):
        return obj[a:z]
    if isinstance(obj, dict):
        return {k: _rows(v, a, z) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(_rows(v, a, z) for v in obj)
    if isinstance(obj, list):
        structure = obj and all(isinstance(v, (torch.Tensor, tuple, list)) or dataclasses.is_dataclass(v) for v in obj)
        return [_rows(v, a, z) for v in obj] if structure else obj[a:z]  # per-layer states, or per-sequence values
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: _rows(getattr(obj, f.name), a, z)
                                           for f in dataclasses.fields(obj) if f.init})
    return obj


def _cat_rows(parts: list) -> Any:
    """The inverse of :func:`_rows`: row groups of the same structure joined along the batch dimension."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if isinstance(first, (tuple, list)):
        return type(first)(_cat_rows(list(g)) for g in zip(*parts))
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        return dataclasses.replace(first, **{f.name: _cat_rows([getattr(p, f.name) for p in parts])
                                             for f in dataclasses.fields(first) if f.init})
    return first


def _clone(obj):
    if torch.is_tensor(obj):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    return obj


class _Scorer(torch.nn.Module):
    """What DistributedDataParallel wraps: its forward is the network's own scoring from a carried state
    (``score_with_state``: summed NLL in nats per sequence, units per sequence, the state to carry on), so DDP's
    gradient hooks see the whole loss computation."""

    def __init__(self, model: SeqModel):
        super().__init__()
        self.model = model

    def forward(self, data: dict, state=None):
        return self.model.score_with_state(data, state)

def train(recipe: str | Recipe | None, out: str | os.PathLike, *, overrides: dict[str, Any] | None = None,
          resume: bool = False, device: str = "cpu", max_steps: int | None = None, init_from: str | None = None,
          quiet: bool = False, flush_denormal: bool = True, max_seconds: float | None = None,
          reinit: tuple[str, ...] | list[str] = ()) -> TrainResult:
    """Train a recipe; write checkpoints, metrics.jsonl and loss.png under ``out``.

    ``overrides`` change recipe fields (``{"data.batch_size": 8, "model.hidden_size": 64, "seed": 1}``).
    ``init_from`` is a checkpoint folder whose weights start the run (the recipe's ``init_from`` names a recipe;
    give its output's ``best/`` folder here); ``reinit`` names parts of the network (``("window",)``) that start
    from their fresh initialisation instead. ``max_seconds`` is a wall-clock budget for this call: the run
    ends within it (it stops before a step that would cross it, validates if the validation fits, and always
    checkpoints last/), and can be resumed. SIGINT and SIGTERM also end it after the current step, with a
    checkpoint.

    ``resume=True`` continues the run in ``out`` with the recipe saved there (``recipe`` may be None); only
    RESUMABLE_FIELDS may be overridden, and a new learning rate is applied to the restored optimiser.

    >>> r = train("tiny-prediction", "runs/tiny", quiet=True)  # doctest: +SKIP
    >>> r.best_valid, r.unit  # doctest: +SKIP
    """
    overrides = dict(overrides or {})
    if max_steps is not None:
        overrides["max_steps"] = max_steps
    out = check_output_path(out, folder=True, what="run folder")
    if resume and init_from:  # never silently ignored: the two start a run from different weights
        raise SeqbenchError(f"init_from ({init_from}) starts a new run from other weights, but resume continues "
                            f"{out} from its own last/ checkpoint: drop one of them (to start from those weights, "
                            "give a new run folder)")
    changed: dict = {}
    if resume:
        if _dist()[0] == 0:
            _recover_folders(out)
        if not (out / "last" / "config.json").is_file():
            raise CheckpointError(f"{out}/last: nothing to resume from; start without --resume")
        rec, changed = _resume_recipe(out, recipe, overrides)
    else:
        if recipe is None:
            raise SeqbenchError("give a recipe to train (or resume=True with the run folder)")
        rec = get_recipe(recipe) if isinstance(recipe, str) else recipe
        if overrides:
            rec = rec.replace(**overrides)
    reinit = tuple(reinit or ())
    if reinit and (resume or not init_from):
        raise SeqbenchError("reinit re-initialises parts of the weights given by init_from (--init-from) when a run "
                            "starts; it cannot be used " + ("with resume" if resume else "without init_from"))
    if rec.on_nan not in ("rollback", "stop"):
        raise SeqbenchError(f"on_nan must be 'rollback' or 'stop', not {rec.on_nan!r}")
    rec.check()
    if max_seconds is not None and not max_seconds >= 0:
        raise SeqbenchError(f"max_seconds must be >= 0 (got {max_seconds})")
    _check_device(device)
    if flush_denormal:
        # Subnormal floats (the far tails of the window and mixture Gaussians, tiny second moments in the
        # optimiser) are 10-100× slower on x86 CPUs; flushing them to zero changes no result that matters.
        torch.set_flush_denormal(True)
    if not resume and (out / "metrics.jsonl").exists() and _dist()[0] == 0:
        raise SeqbenchError(f"{out} already holds a run; pass resume=True (--resume) or choose another folder")
    _warn_if_threads_contend(device)
    run = _Run(rec, out, device, quiet)
    if resume:
        run.resume()
    else:
        if init_from:
            init_from = run.init_from(init_from, reinit)
        elif rec.init_from:
            log.info("recipe %s starts from %s's weights; pass init_from=<its best/ folder>", rec.name, rec.init_from)
    _warn_if_amp_is_emulated(run.recipe, run.device)
    # the run folder appears only once the recipe, the device, the data and the starting weights are known good
    if run.main:
        out.mkdir(parents=True, exist_ok=True)
        if not resume:
            # a checkpoint of the starting point before anything else: from the first event on, the folder is
            # a run that --resume can continue, whenever it is stopped or killed
            run.save(best=False)
        if not resume or changed:
            atomic_write_text(out / "recipe.json", json.dumps(rec.to_dict(), indent=2))
    lineage = None
    if init_from and not resume:  # a zoo model's training counts toward this run's: recorded now, while pinned
        from seqbench.zoo.card import zoo_lineage

        lineage = zoo_lineage(init_from, reinit)
    run.record({"event": "resume" if resume else "start", "threads": torch.get_num_threads(),
                "device": str(run.device), **({"changed": {k: list(v) for k, v in changed.items()}} if changed else {}),
                **({"init_from": str(Path(init_from).resolve())} if init_from and not resume else {}),
                **({"started_from": lineage} if lineage else {}),
                **({"reinit": list(reinit)} if reinit else {})})
    result = _loop(run, max_seconds)
    world = run.world
    del run  # DDP's reducer holds the process group: it must go first, or gloo's threads outlive the group
    _leave_group(world)
    return result


def _warn_if_threads_contend(device: str) -> None:
    """Several OpenMP threads on a CPU that other work already keeps busy collapse (measured on 2 cores: a
    paper-size step 7× slower); say so when it looks like that is about to happen."""
    n = torch.get_num_threads()
    if not str(device).startswith("cpu") or n < 2 or not hasattr(os, "getloadavg"):
        return
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load + n > cores + 0.5:
        log.warning("training with %d CPU threads while the machine's load is already %.1f on %d cores: "
                    "OpenMP threads that wait for a busy core make every step slower (seen: 7x); use "
                    "--threads 1 (seqbench's default) unless the machine is otherwise idle", n, load, cores)


def _warn_if_amp_is_emulated(rec: Recipe, device: torch.device) -> None:
    """bf16 autocast on a CPU without native bf16 is emulated: measured 0.21x float32's points per second on the
    3 × 400 prediction net (1.25x with AVX-512 BF16). The run is still right, only slow: say so."""
    from seqbench.devices import cpu_has_native_bf16

    if rec.amp and device.type == "cpu" and cpu_has_native_bf16() is False:
        log.warning("amp=true on a CPU without native bf16 (AVX-512 BF16 or AMX): bf16 autocast is emulated here "
                    "and was measured about 5x slower than float32 (benchmarks/bench_train_throughput.py --compare amp); "
                    "train with --set amp=false unless you are measuring it")


def _check_device(device: str) -> None:
    from seqbench.devices import resolve_device

    resolve_device(device)


def _loop(run: _Run, max_seconds: float | None = None) -> TrainResult:
    rec = run.recipe
    unit = rec.unit
    n_batches = len(run.train_batches)
    if n_batches == 0:
        raise SeqbenchError(f"{rec.data.source}: the training split has fewer sequences than one batch")
    total = rec.max_steps if rec.max_steps is not None else rec.max_epochs * n_batches
    eval_every = rec.eval_every or n_batches
    t0 = time.perf_counter()
    deadline = None if max_seconds is None else t0 + max_seconds
    run.deadline = deadline
    pbar = None
    if run.main and not run.quiet:
        from tqdm.auto import tqdm

        pbar = tqdm(total=total, initial=run.step, desc=rec.name, unit="step", dynamic_ncols=True)
    run._snapshot_take()
    stopped = ""
    recent: list[float] = []  # the last step times, to stop before a step that would cross the budget
    in_step = False
    with run.stop_flag:
        try:
            if run.step and run.step % eval_every == 0 and _last_valid_step(run) != run.step:
                # a stop (a signal, the budget, an error) came during this step's scheduled validation, so it was
                # saved unvalidated: validate first, as a run that never stopped did at this step
                result = _evaluate(run)
                if result != "validated":
                    stopped = result if result == "early_stopping" else _stop_reason(run, deadline, 0.0) or "stop"
            while not stopped:
                if run.epoch >= rec.max_epochs:
                    stopped = "max_epochs"
                    break
                for b in run.train_batches.epoch(run.epoch, skip=run.batch_in_epoch):
                    if rec.max_steps is not None and run.step >= rec.max_steps:
                        stopped = "max_steps"
                        break
                    stopped = _stop_reason(run, deadline, max(recent, default=0.0))
                    if stopped:
                        break
                    ts = time.perf_counter()
                    in_step = True  # from here to the counters' update the state is no step's state
                    taken = run.train_step(b)
                    recent = (recent + [time.perf_counter() - ts])[-8:]
                    run.batch_in_epoch += 1
                    if not taken:  # rolled back
                        in_step = False
                        continue
                    run.step += 1
                    loss = run.last_loss
                    if b.whole and loss is not None:
                        run.running = loss if run.running is None else 0.95 * run.running + 0.05 * loss
                    in_step = False
                    if pbar is not None:
                        pbar.update(1)
                        if run.running is not None:
                            pbar.set_postfix_str(f"{run.running:.3f} {unit}")
                    if run.step % max(1, min(50, eval_every)) == 0 and loss is not None:
                        run.record({"event": "train", "loss": loss, "running": run.running,
                                    **({"lr": run.opt.param_groups[0]["lr"]}
                                       if rec.lr_warmup_steps or rec.lr_half_life or rec.lr_plateau else {}),
                                    "elapsed_s": round(time.perf_counter() - t0, 3),
                                    "wall_s": round(run.wall_s(), 3), "cpu_s": round(run.cpu_s(), 3)})
                    if run.step % eval_every == 0:
                        result = _evaluate(run)
                        if result == "early_stopping" or result == "interrupted":
                            stopped = result if result == "early_stopping" else _stop_reason(run, deadline, 0.0)
                            break
                else:
                    run.epoch += 1
                    run.batch_in_epoch = 0
                    run.carry = run.partial = None
                    continue
                break
            if stopped != "early_stopping" and _last_valid_step(run) != run.step:
                # a final validation where it fits (signals: none, they ask to stop now); always a checkpoint
                if run.stop_flag.signal or _evaluate(run, final=True) != "validated":
                    run.save(best=False)
                    run.record({"event": "checkpoint", "reason": stopped or "stop", "validated": False})
        except Exception as e:
            if not in_step:  # between two steps (a validation, a plot, a record that failed): keep the steps done
                _checkpoint_on_error(run, e)
            raise
        finally:
            if pbar is not None:
                pbar.close()
    if run.main:
        plot_losses(run.history, run.out / "loss.png", unit)
    run.record({"event": "stop", "reason": stopped, "wall_s": round(run.wall_s(), 3), "cpu_s": round(run.cpu_s(), 3)})
    return TrainResult(out=run.out, steps=run.step, epochs=run.epoch, best_valid=run.best_saved, unit=unit,
                       history=run.history, stopped=stopped, recipe=rec.name)


def _last_valid_step(run: _Run) -> int | None:
    return next((h["step"] for h in reversed(run.history) if h["event"] == "valid"), None)


def _checkpoint_on_error(run: _Run, error: Exception) -> None:
    """An error between two steps (in a validation, say) ends the run, but the steps since the last checkpoint
    are whole: save last/ so that ``--resume`` goes on from this step once the cause is fixed, and say so. A
    failure to save is logged and the first error is the one raised."""
    what = f"{type(error).__name__}: {error}"
    try:
        run.save(best=False)
        run.record({"event": "checkpoint", "reason": "error", "validated": False, "error": what[:500]})
    except Exception as e2:  # the disk that failed the first time may fail again
        log.error("step %d: %s stopped the run, and its checkpoint could not be saved either (%s: %s); "
                  "last/ is the previous checkpoint", run.step, what, type(e2).__name__, e2)
        return
    if run.main:
        log.error("step %d: %s stopped the run; last/ in %s holds this step: fix the cause and continue with "
                  "--resume", run.step, what, run.out)


def _leave_group(world: int) -> None:
    """End a torchrun run together: every rank waits until rank 0 has written its last checkpoint and plot, then
    the process group is torn down while the interpreter is whole. A rank that left early, with gloo's threads
    still talking to a busy peer, aborted at exit ("terminate called without an active exception", seen in CI)."""
    if world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            gc.collect()
            dist.destroy_process_group()


def _stop_reason(run: _Run, deadline: float | None, next_step_s: float) -> str:
    """"SIGINT"/"SIGTERM" when a signal asked to stop, "time_limit" when the next step (as long as the longest
    recent one) would end past the budget, else "". Every rank stops at the same step."""
    if run.stop_flag.signal:
        return run.stop_flag.signal
    over = deadline is not None and time.perf_counter() + next_step_s > deadline
    if run.world > 1:
        flag = torch.tensor([float(over)], device=run.device)
        over = float(_all_reduce(flag, run.world)) > 0
    return "time_limit" if over else ""


def _restore_best(run: _Run) -> None:
    """Restore-best (``lr_plateau``): validation stopped improving at this rate, so the rate steps down by
    ``lr_plateau_factor`` and the weights go back to the best validated ones (the optimiser's moments stay: they
    are a scale, not a direction). Every process holds the same copy, so DDP stays in step."""
    run.lr_scale *= run.recipe.lr_plateau_factor
    run.evals_since_change = 0
    run.model.load_state_dict(run.best_weights)
    run.sync_ema()  # with ema, best_weights are the averaged ones: both go on from them
    run.carry = run.partial = None
    rates = [base * run.recipe.lr_factor(run.step) * run.lr_scale for base in run.base_lrs]
    for g, lr in zip(run.opt.param_groups, rates):
        g["lr"] = lr
    best_step = next((h["step"] for h in reversed(run.history) if h.get("event") == "valid"
                      and h.get("loss") == run.best), None)
    run.record({"event": "restore_best", "lr": rates[0], "lr_scale": run.lr_scale, "best_step": best_step,
                "best": run.best})
    log.info("step %d: no better validation in %d; back to the best weights (step %s) at lr %.3g", run.step,
             run.recipe.lr_plateau, best_step, rates[0])


def _evaluate(run: _Run, final: bool = False) -> str:
    """Validate and checkpoint. Returns "validated", "early_stopping", or "interrupted" (a signal or the budget
    came first: nothing was recorded or saved). ``final``: the validation at a stop, skipped when the last one
    took longer than the budget has left."""
    deadline = getattr(run, "deadline", None)
    if final and deadline is not None and run.valid_s is not None and time.perf_counter() + run.valid_s > deadline:
        return "interrupted"
    t = time.perf_counter()
    v = run.validate(deadline=deadline)
    if v is None:
        return "interrupted"
    run.valid_s = time.perf_counter() - t
    if not math.isfinite(v["loss"]):
        msg = f"the validation loss is {v['loss']} after step {run.step}"
        run.record({"event": "nan", "where": "validation", "message": msg})
        log.warning(msg)
        run._nan_or_rollback(msg, "Lower the learning rate; the weights of that step were not saved.")
        return "validated"
    # A validation off the schedule (the one at a stop) changes nothing the run does next: patience, restore-best
    # and the best they compare with count scheduled validations only, so that a run resumed from it takes the
    # same steps as one never stopped. best/ is still the best weights seen (best_saved: their loss).
    scheduled = not final or run.step % (run.recipe.eval_every or len(run.train_batches)) == 0
    improved = scheduled and (run.best is None or v["loss"] < run.best)
    if improved:
        run.best, run.evals_since_best, run.evals_since_change = v["loss"], 0, 0
        if run.recipe.lr_plateau:
            run.best_weights = {k: t.detach().clone() for k, t in run.eval_model.state_dict().items()}
    elif scheduled:
        run.evals_since_best += 1
        run.evals_since_change += 1
    save_best = run.best_saved is None or v["loss"] < run.best_saved
    if save_best:
        run.best_saved = v["loss"]
    run.record({"event": "valid", **v, "best": run.best if run.best is not None else v["loss"],
                "valid_s": round(run.valid_s, 2), **({} if scheduled else {"scheduled": False})})
    plateau = run.recipe.lr_plateau
    if plateau and run.evals_since_change >= plateau and run.best_weights is not None \
            and run.evals_since_best < run.recipe.patience:
        _restore_best(run)
    run.save(best=save_best)
    run._snapshot_take()
    if run.main:
        plot_losses(run.history, run.out / "loss.png", run.recipe.unit)
    return "early_stopping" if run.evals_since_best >= run.recipe.patience else "validated"
