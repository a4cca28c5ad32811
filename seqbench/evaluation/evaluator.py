"""``seqbench.evaluate``: a model on a prepared split → summed statistics → metrics → a result record.

Protocols (never mixed in one table):

- **static**: the weights are fixed; every prediction is scored once.
- **dynamic** (Graves 2013, Sec. 3.1): the network keeps training on the evaluation data while it is scored,
  predicting each unit *before* the update that uses it. seqbench's instance of this protocol (the paper leaves
  the hyperparameters open): plain SGD on a copy of the network, learning rate ``dynamic_lr`` (a zoo entry's
  rate, chosen on its validation split by ``seqbench zoo export --dynamic-lrs``; else 1e-4, the paper's
  training rate), momentum ``dynamic_momentum`` (0), one step per window (text) or per batch of lines
  (handwriting) on the summed NLL of that window. Its result depends on the batching and is recorded with it.

Text (PTB, enwik8) is scored as independent *chunks* of ``chunk`` consecutive predictions (default: the whole
split is one chunk; enwik8's zoo entry uses Graves's 10,000 = 100 sequences of 100 bytes between state resets),
each from a zero state, with the state carried across windows of ``window`` steps. Chunks are fixed by the data,
not by the batch size, so static results do not depend on ``batch_size`` or ``window``. Handwriting lines are
scored whole, in batches of lines sorted by length.

Under ``torchrun`` (``torch.distributed`` initialised) each rank scores every ``world_size``-th line or chunk and
the summed statistics are all-reduced, so every rank returns the single-process result.
"""
from __future__ import annotations

import copy
import datetime as _dt
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import torch

from seqbench.errors import SeqbenchError
from seqbench.evaluation.paper import PAPER, paper_rows_for
from seqbench.evaluation.records import EvalResult
from seqbench.metrics import DEFAULT_METRICS, Totals, compute
from seqbench.models import is_conditional
from seqbench.registry import Registry
from seqbench.zoo import ZOO, ZooEntry
from seqbench.zoo.hub import ResolvedModel, load_model

log = logging.getLogger(__name__)

DEFAULT_DYNAMIC_LR = 1e-4  # the paper's SGD training rate: dynamic evaluation's rate where no entry gives one
_TIME_CHUNK = 100  # handwriting, static: time steps per forward call, state carried (same numbers)
_TEXT_UNIT = {"enwik8": "byte"}  # ptb: the configuration's name ("char" or "word")


class EvaluationError(SeqbenchError):
    """The model and the data do not fit together, or the options are inconsistent."""


class NonFiniteScoreError(EvaluationError):
    """The scores came out NaN or infinite (weights that hold them, or a dynamic evaluation that diverged)."""


@dataclass
class Protocol:
    """Everything that can change the numbers besides the model and the data (recorded in every result)."""

    name: str = "static"  # "static" | "dynamic"
    batch_size: int = 16  # lines (handwriting) or chunks (text) per batch
    window: int = 100  # text: steps per forward call (state carried across windows)
    chunk: int | None = None  # text: predictions per independent stream; None = the whole split
    eol: bool = False  # PTB char: end-of-line symbol between sentences
    join: str = "none"  # PTB char: "none" (sentences end to end) or "space" (``_`` between them); streams.JOINS
    dynamic_lr: float | None = None
    dynamic_momentum: float | None = None
    dtype: str = "float32"


def _device(device: str | torch.device) -> torch.device:
    from seqbench.devices import resolve_device

    return resolve_device(device, EvaluationError)


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _all_reduce(totals: Totals, device: torch.device) -> Totals:
    rank, world = _dist()
    if world == 1:
        return totals
    v = torch.tensor([totals.nll_nats, totals.units, totals.sequences, totals.errors or 0, totals.sse or 0.0,
                      float(totals.errors is not None), float(totals.sse is not None)], dtype=torch.float64,
                     device=device if torch.distributed.get_backend() == "nccl" else "cpu")
    torch.distributed.all_reduce(v)
    out = Totals(unit=totals.unit, chars=totals.chars, words=totals.words, log_sigma=totals.log_sigma)
    out.add([float(v[0])], [int(round(float(v[1])))], sequences=int(round(float(v[2]))),
            errors=[float(v[3])] if v[5] > 0 else None, sse=[float(v[4])] if v[6] > 0 else None)
    return out


# -- scoring one batch ------------------------------------------------------------------------------------------------
def _family(model) -> str:
    return getattr(model, "family", "") or ""


_TIME_KEYS = ("inputs", "targets", "mask")  # the batch tensors indexed by time step (B, T, ...)


def _time_slice(batch: dict, sl: slice) -> dict:
    return {k: v[:, sl] if k in _TIME_KEYS else v for k, v in batch.items()}


def _carries_state(model) -> bool:
    """Whether the model scores a batch piece by piece, carrying its state: ``score_statistics(batch, state)``
    (seqbench's networks, :meth:`seqbench.models.SeqModel.score_statistics`)."""
    return callable(getattr(model, "score_statistics", None))


def score_batch(model, batch: dict, state: Any = None) -> tuple[dict[str, torch.Tensor], Any]:
    """The model's summed statistics of one batch, per sequence ("nll" in nats, "n" units, and what it gives
    besides: "errors", "sse"), and the state it carries on, all from the model itself: its
    ``score_statistics(batch, state)``, else ``score_with_state(batch, state) -> (nll, n, state)``, else
    ``score(batch) -> (nll, n)`` (no state)."""
    if _carries_state(model):
        return model.score_statistics(batch, state)
    if hasattr(model, "score_with_state"):
        nll, n, new_state = model.score_with_state(batch, state)
        return {"nll": nll, "n": n}, new_state
    nll, n = model.score(batch)
    return {"nll": nll, "n": n}, None


def score_handwriting(model, batch: dict, time_chunk: int | None = None) -> dict[str, torch.Tensor]:
    """Per-line statistics of whole lines (:func:`score_batch`): nll, points and (for seqbench's networks)
    squared error of the mixture mean.

    ``time_chunk``: score a model that carries its state over the lines ``time_chunk`` steps at a time, the
    state carried exactly (static evaluation). Same numbers up to float rounding; much less memory traffic,
    since each chunk's input projections and layer outputs stay in cache instead of streaming T·B·4H floats
    through memory per layer (see benchmarks/bench_eval.py). Other models score whole lines with ``score``.
    """
    if not _carries_state(model):
        nll, n = model.score(batch)
        return {"nll": nll, "n": n}
    T = batch["inputs"].shape[1]
    step = T if not time_chunk or time_chunk >= T else time_chunk
    total: dict[str, torch.Tensor] | None = None
    state = None
    for a in range(0, T, step):
        out, state = model.score_statistics(_time_slice(batch, slice(a, a + step)), state)
        total = out if total is None else {k: total[k] + v for k, v in out.items()}
    return total


def score_text(model, batch: dict, state: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Per-row statistics of one window (nll, predictions and, for seqbench's networks, argmax errors),
    carrying ``state`` (:func:`score_batch`)."""
    return score_batch(model, batch, state)


def _add(totals: Totals, out: dict[str, torch.Tensor], sequences: int | None = None) -> None:
    totals.add(out["nll"].detach(), out["n"].detach(), errors=out.get("errors"), sse=out.get("sse"),
               sequences=sequences)


# -- the two kinds of data ---------------------------------------------------------------------------------------------
def _to(batch: dict, device: torch.device, dtype: torch.dtype) -> dict:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device)
            if v.is_floating_point():
                v = v.to(dtype)
        out[k] = v
    return out


_STATS_FIELDS = ("mean_dx", "std_dx", "mean_dy", "std_dy")


def _model_config(resolved: ResolvedModel) -> dict:
    """The checkpoint's config.json (its side information: recipe, offset statistics ...), or {}."""
    if resolved.folder is None:
        return {}
    from seqbench.models.io import read_config

    try:
        cfg = read_config(resolved.folder)
    except SeqbenchError:
        return {}
    return cfg if isinstance(cfg, dict) else {}


def check_offset_stats(model_stats: Any, data_stats: dict, transform: str, where: str) -> None:
    """Refuse to score a handwriting network on inputs normalised with other statistics than it was trained
    with: its nats would be in other units (a different scale of every offset). ``model_stats``: the
    checkpoint's ``offset_stats`` entry ({transform name: {mean_dx, std_dx, mean_dy, std_dy, ...}}), or None
    for a checkpoint that does not say (older exports: nothing to compare)."""
    if model_stats is None:
        return
    if not isinstance(model_stats, dict) or not isinstance(model_stats.get(transform), dict):
        have = sorted(model_stats) if isinstance(model_stats, dict) else type(model_stats).__name__
        raise EvaluationError(f"{where}: its offset_stats entry has no statistics of the transform {transform!r} "
                              f"(has {have}); it was trained on other inputs, or config.json is damaged")
    ms = model_stats[transform]
    bad = []
    for k in _STATS_FIELDS:
        try:
            m = float(ms[k])
        except (KeyError, TypeError, ValueError):
            raise EvaluationError(f"{where}: offset_stats.{transform}.{k} is missing or not a number; "
                                  "config.json is damaged: re-export the model") from None
        d = float(data_stats[k])
        if not math.isclose(m, d, rel_tol=1e-6, abs_tol=1e-9):
            bad.append(f"{k} {m:.6g} (model) vs {d:.6g} (data)")
    if bad:
        raise EvaluationError(
            f"{where}: the network was trained on offsets normalised with other statistics than this dataset's "
            f"training split ({'; '.join(bad)}), so its log-loss would be in other units. Score it on the data it "
            "was trained for (the same dataset configuration and version), or retrain it on this one")


def _handwriting(model, ds, protocol: Protocol, limit: int | None, device, dtype, step, bar,
                 ckpt_cfg: dict | None = None, where: str = "model") -> tuple[Totals, dict]:
    from seqbench.data.iam.torch import collate

    synthesis = is_conditional(model)
    if synthesis:
        from seqbench.data.iam.vocab import GRAVES57

        if model.config.vocab_size != GRAVES57.size:
            raise EvaluationError(f"the synthesis network has {model.config.vocab_size} character classes but "
                                  f"the evaluation transcriptions use the {GRAVES57.size}-class vocabulary")
    # synthesis is text → strokes: a line without a transcription has nothing to condition on (left out, counted)
    tds = ds.to_torch(require_text=True) if synthesis else ds.to_torch()
    st = tds.stats
    check_offset_stats((ckpt_cfg or {}).get("offset_stats"), st.to_dict(), tds.transform.name, where)
    totals = Totals(unit="point", log_sigma=math.log(st.std_dx) + math.log(st.std_dy))
    n = len(tds) if limit is None else min(limit, len(tds))
    lengths = tds.lengths()[:n]
    order = sorted(range(n), key=lambda i: (-int(lengths[i]), i))  # long lines first: less padding
    rank, world = _dist()
    order = order[rank::world]
    progress = bar(int(sum(int(lengths[i]) for i in order)), "point")
    with progress:
        for a in range(0, len(order), protocol.batch_size):
            batch = _to(collate([tds[i] for i in order[a:a + protocol.batch_size]]), device, dtype)
            # static: 100-step chunks bound the memory of long lines (per layer 100·B·4H floats of input
            # projections instead of T·B·4H; 778 MB → 41 MB for 64 lines of 1,900 points); dynamic: one graph
            # per batch
            chunk = None if protocol.name == "dynamic" else _TIME_CHUNK
            out = step(lambda: score_handwriting(model, batch, chunk))
            _add(totals, out)
            progress.update(int(out["n"].sum()))
    info = {"transform": tds.transform.name, "offset_stats": st.to_dict(),
            "lines_without_text_left_out": int(getattr(tds, "dropped", 0))}
    return totals, info


#: the line of the terminal this process's progress bars take: a worker of choose_dynamic_lr's ``jobs`` sets it
_BAR_POSITION: int | None = None


def _progress_factory(show: bool, desc: str):
    """(total, unit) → a progress bar on stderr (tqdm), shown by rank 0 when ``show``; a no-op bar otherwise."""
    def make(total: int, unit: str):
        from tqdm.auto import tqdm

        return tqdm(total=total, unit=unit, desc=desc, unit_scale=True, dynamic_ncols=True, mininterval=0.5,
                    disable=not show or _dist()[0] != 0, leave=False, position=_BAR_POSITION)
    return make


def _chunks(n_pred: int, chunk: int | None) -> list[tuple[int, int]]:
    L = n_pred if not chunk else chunk
    return [(a, min(a + L, n_pred)) for a in range(0, n_pred, max(L, 1))]


def _text(model, ds, protocol: Protocol, limit: int | None, device, dtype, step, bar,
          ckpt_cfg: dict | None = None, where: str = "model") -> tuple[Totals, dict]:
    from seqbench.data.streams import detach_state, load_tokens

    unit = _TEXT_UNIT.get(ds.spec.name, ds.config)
    model_unit = getattr(model, "unit", "") or ""
    if model_unit and model_unit != unit:
        raise EvaluationError(f"the model predicts {model_unit}s but {ds.spec.name}/{ds.config} is scored in {unit}s")
    cfg_info = ds.info["configs"][ds.config]
    n_symbols = cfg_info.get("vocab_size", 256) + (1 if protocol.eol else 0)
    V = getattr(getattr(model, "config", None), "vocab_size", None)
    if V is not None and V < n_symbols:
        raise EvaluationError(f"the model has {V} outputs but {ds.spec.name}/{ds.config} has {n_symbols} symbols"
                              f"{' (with end-of-line)' if protocol.eol else ''}; it was trained on other data")
    tokens = load_tokens(ds, eol=protocol.eol, join=protocol.join)
    if limit is not None:
        tokens = tokens[: limit + 1]
    si = ds.split_info
    chars, words = si.get("chars"), si.get("words")
    if protocol.eol:  # the stream's symbols and words: an end-of-line ends each sentence, like a word's <eos>
        chars, words = si.get("chars_with_eol"), si.get("words_with_eos")
    elif protocol.join == "space" and chars is not None:  # one "_" between each two sentences
        chars = chars + si.get("lines", 1) - 1
    totals = Totals(unit=unit, chars=chars, words=words)
    n_pred = max(len(tokens) - 1, 0)
    chunks = _chunks(n_pred, protocol.chunk)
    rank, world = _dist()
    mine = chunks[rank::world]
    T = protocol.window
    progress = bar(sum(e - s for s, e in mine), unit)
    for a in range(0, len(mine), protocol.batch_size):
        group = mine[a:a + protocol.batch_size]
        B, Lmax = len(group), max(e - s for s, e in group)
        inputs = torch.zeros(B, Lmax, dtype=torch.int64)
        targets = torch.full((B, Lmax), -100, dtype=torch.int64)
        for b, (s, e) in enumerate(group):
            inputs[b, : e - s] = tokens[s:e].to(torch.int64)
            targets[b, : e - s] = tokens[s + 1:e + 1].to(torch.int64)
        mask = targets != -100
        inputs, targets, mask = inputs.to(device), targets.to(device), mask.to(device)
        state = None
        for w in range(0, Lmax, T):
            batch = {"inputs": inputs[:, w:w + T], "targets": targets[:, w:w + T], "mask": mask[:, w:w + T]}
            box: dict = {}

            def run(batch=batch, state=state, box=box):
                out, box["state"] = score_text(model, batch, state)
                return out

            out = step(run)
            state = detach_state(box["state"])
            _add(totals, out, sequences=B if w == 0 else 0)
            progress.update(int(out["n"].sum()))
    progress.close()
    info = {"tokens": int(len(tokens)), "chunks": len(chunks), "unit": unit}
    return totals, info


def _data_of_run(cfg: dict, resolved: ResolvedModel, config, split):
    """A checkpoint that ``seqbench train`` wrote names its recipe's data: score it on that dataset's
    validation split unless told otherwise."""
    rec = cfg.get("recipe") if isinstance(cfg.get("recipe"), dict) else None
    data = rec.get("data") if rec and isinstance(rec.get("data"), dict) else None
    if not data or not isinstance(data.get("source"), str):
        return None, config, split
    source = data["source"]
    if source.startswith("toy-"):
        raise EvaluationError(f"{resolved.reference} was trained on seqbench's built-in {source} data, which is "
                              "not a prepared dataset: evaluate it with --dataset NAME (a network of the same "
                              "family and vocabulary), or train a recipe on iam-ondb, ptb or enwik8")
    return source, config or data.get("config"), split or data.get("valid_split") or "valid"


# -- the public function ------------------------------------------------------------------------------------------------
def evaluate(model: Any, dataset: str | None = None, config: str | None = None, split: str | None = None, *,
             metrics: Iterable[str] | None = None, dynamic: bool = False, batch_size: int | None = None,
             window: int | None = None, chunk: int | None = None, eol: bool | None = None,
             join: str | None = None, device: str = "cpu",
             dtype: str = "float32", dynamic_lr: float | None = None, dynamic_momentum: float = 0.0,
             limit: int | None = None, root: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
             registry: Registry[ZooEntry] = ZOO, progress: bool = False) -> EvalResult:
    """Evaluate ``model`` on a prepared split and return (and optionally save to ``out``) its result record.

    ``model``: a reference (``zoo:NAME``, ``hf-hub:org/repo@rev``, a folder, ``package.module:factory``) or a
    torch module with ``score(batch) -> (nll nats per sequence (B,), units (B,))``. A zoo entry supplies the
    default dataset, configuration, split, metrics and protocol options. ``limit``: score only the first
    ``limit`` lines (handwriting) or tokens (text), recorded as such: a smoke run, not a benchmark.
    ``progress``: show a progress bar (points or symbols scored) on stderr, as ``seqbench eval`` does.

    >>> r = seqbench.evaluate("zoo:synth-3layer")  # doctest: +SKIP
    >>> r.value("nll_nats_per_line")  # doctest: +SKIP
    """
    import seqbench
    from seqbench.data import load_dataset
    from seqbench.paths import check_output_path

    if out is not None:
        check_output_path(out, what="result record")
    dev = _device(device)
    tdtype = {"float32": torch.float32, "float64": torch.float64}.get(dtype)
    if tdtype is None:
        raise EvaluationError(f"dtype must be float32 or float64, not {dtype!r}")
    # explicit options are checked before anything loads (0 must not silently mean "the default")
    for name, v in (("batch_size", batch_size), ("window", window), ("chunk", chunk)):
        if v is not None and v < 1:
            raise EvaluationError(f"{name} must be at least 1 (got {v}); leave it out for the default")
    from seqbench.data.streams import JOINS

    if join is not None and join not in JOINS:
        raise EvaluationError(f"join must be one of {', '.join(JOINS)} (got {join!r})")
    if limit is not None and limit < 1:
        raise EvaluationError(f"limit must be at least 1 (got {limit}); leave it out to score the whole split")
    if dynamic and dynamic_lr is not None and not (isinstance(dynamic_lr, (int, float)) and 0 <= dynamic_lr < math.inf):
        raise EvaluationError(f"dynamic_lr must be >= 0 and finite (got {dynamic_lr})")
    if dynamic and not (isinstance(dynamic_momentum, (int, float)) and 0 <= dynamic_momentum < 1):
        raise EvaluationError(f"dynamic_momentum must be a number in [0, 1) (got {dynamic_momentum})")
    if metrics is not None:
        metrics = list(metrics)
        if not metrics:
            raise EvaluationError("no metric names given; name at least one (e.g. --metrics nll_nats_per_line) "
                                  "or leave the option out for the defaults")
    if isinstance(model, str):
        net, resolved = load_model(model, device=str(dev), registry=registry)
    else:
        net, resolved = model, ResolvedModel(f"python:{type(model).__module__}.{type(model).__qualname__}",
                                             "object", "python")
    entry = resolved.entry
    if not callable(getattr(net, "score", None)):
        raise EvaluationError(f"{resolved.reference}: the model has no score(batch) method")
    if hasattr(net, "to"):
        net = net.to(device=dev, dtype=tdtype)
    opts = dict(entry.eval_options) if entry else {}
    generated = "sample" in opts and dataset is None and root is None
    if generated:
        # a smoke model: its numbers are about the generated IAM-shaped sample, made here on first use
        from seqbench.zoo.smoke import ensure_sample

        root = ensure_sample(**opts["sample"])
    ckpt_cfg = _model_config(resolved)
    if dataset is None and entry is None:
        dataset, config, split = _data_of_run(ckpt_cfg, resolved, config, split)
    dataset = dataset or (entry.dataset if entry else None)
    if dataset is None:
        raise EvaluationError(f"{resolved.reference} is not a zoo model: say which data to use "
                              "(dataset=..., or --dataset NAME [--config C] [--split S])")
    if entry and dataset == entry.dataset:
        config = config or entry.dataset_config
        split = split or entry.split
    ds = load_dataset(dataset, config=config, split=split or "valid", root=root)
    handwriting = ds.spec.name == "iam-ondb"
    if handwriting and join not in (None, "none"):
        raise EvaluationError(f"join={join!r} applies to PTB char streams, not to handwriting ({ds.spec.name})")
    if eol is None:
        eol = bool(opts.get("eol", False))
        V = getattr(getattr(net, "config", None), "vocab_size", None)
        ci = ds.info["configs"][ds.config]
        if not handwriting and V is not None and "eol_id" in ci and V == ci["vocab_size"] + 1:
            eol = True  # a char model with one output more than the file's symbols was trained with end-of-line
    if dynamic and dynamic_lr is None:
        # a zoo entry's rate was chosen on its validation split (never the test split); else the paper's training rate
        dynamic_lr = float(opts.get("dynamic_lr", DEFAULT_DYNAMIC_LR))
    protocol = Protocol(
        name="dynamic" if dynamic else "static",
        batch_size=batch_size or int(opts.get("batch_size", 16)),
        window=window or int(opts.get("window", 100)),
        chunk=chunk if chunk is not None else opts.get("chunk"),
        eol=eol, join=join if join is not None else opts.get("join", "none"), dtype=dtype,
        dynamic_lr=dynamic_lr if dynamic else None, dynamic_momentum=dynamic_momentum if dynamic else None)
    if protocol.batch_size < 1 or protocol.window < 1 or (protocol.chunk is not None and protocol.chunk < 1):
        raise EvaluationError("batch_size, window and chunk must be positive")

    if dynamic:
        if _dist()[1] > 1:
            raise EvaluationError("dynamic evaluation is sequential: run it in one process, not under torchrun")
        net = copy.deepcopy(net)
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=dynamic_lr, momentum=dynamic_momentum)

        def step(fn):
            with torch.enable_grad():
                out = fn()
                loss = out["nll"].sum()  # the window's summed NLL: scored before the update below
                opt.zero_grad(set_to_none=True)
                if loss.requires_grad:
                    loss.backward()
                    opt.step()
            return {k: v.detach() for k, v in out.items()}
    else:
        def step(fn):
            with torch.inference_mode():
                return fn()

    if hasattr(net, "eval"):
        net.eval()
    t0 = time.perf_counter()
    run = _handwriting if handwriting else _text
    where = str(resolved.folder / "config.json") if resolved.folder else resolved.reference
    totals, data_info = run(net, ds, protocol, limit, dev, tdtype, step, _progress_factory(
        progress, f"eval {resolved.reference} on {ds.spec.name}/{ds.config}/{ds.split} ({protocol.name})"),
        ckpt_cfg=ckpt_cfg, where=where)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    totals = _all_reduce(totals, dev)
    if totals.units == 0:
        raise EvaluationError(f"{ds.spec.name}/{ds.config}/{ds.split} ({ds.path}): "
                              "nothing was scored (no lines or symbols); check that the split was prepared whole")

    names = list(metrics) if metrics is not None else list(entry.metrics if entry else DEFAULT_METRICS[totals.unit])
    values = compute(names, totals, skip_missing=metrics is None)
    bad = {k: v.value for k, v in values.items() if not math.isfinite(float(v.value))}
    if bad or not math.isfinite(totals.nll_nats):
        raise NonFiniteScoreError(
            f"{resolved.reference} on {ds.spec.name}/{ds.config}/{ds.split}: the scores are not finite "
            f"({', '.join(f'{k} = {v}' for k, v in bad.items()) or f'summed NLL {totals.nll_nats}'}): the weights "
            "hold NaN or inf, or the network overflowed" + (" (dynamic evaluation: lower --dynamic-lr)" if dynamic
                                                             else "") + "; no result was recorded")

    family = _family(net) or type(net).__name__
    model_info = {**resolved.to_dict(), "family": family,
                  "config": asdict(net.config) if hasattr(getattr(net, "config", None), "__dataclass_fields__") else None,
                  "parameters": int(sum(p.numel() for p in net.parameters())) if hasattr(net, "parameters") else None}
    dataset_info = {"name": ds.spec.name, "version": ds.spec.version, "config": ds.config, "split": ds.split,
                    "fingerprint": ds.fingerprint, "dataset_fingerprint": ds.info.get("fingerprint"),
                    "rows": len(ds), "limit": limit,
                    # the smoke model's generated sample, made here or passed in (the same data: same fingerprint)
                    "generated_sample": generated or bool(entry and entry.data_fingerprint
                                                          and ds.fingerprint == entry.data_fingerprint
                                                          and "sample" in opts),
                    **data_info}
    model_cfg = model_info["config"]
    paper_ids = [entry.paper] if entry and entry.paper in PAPER else [
        r.id for r in paper_rows_for(ds.spec.name, ds.config, ds.split, family, protocol.name, model_cfg)]
    if entry and entry.paper in PAPER and PAPER[entry.paper].protocol != protocol.name:
        paper_ids = [r.id for r in paper_rows_for(ds.spec.name, ds.config, ds.split, family, protocol.name,
                                                  model_cfg)]
    # Only the real corpus (its counts match the official release), scored whole, is the paper's setting.
    if limit is not None or not ds.info.get("expected_counts", {}).get("match", False) or (entry and entry.smoke):
        paper_ids = []
    result = EvalResult(
        model=model_info, dataset=dataset_info, protocol=asdict(protocol),
        metrics={k: {"value": v.value, "unit": v.unit} for k, v in values.items()},
        totals=totals.to_dict(), seqbench_version=seqbench.__version__,
        device=str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""),
        throughput={"units": totals.units, "unit": totals.unit, "seconds": seconds,
                    "units_per_second": totals.units / seconds if seconds > 0 else None,
                    "world_size": _dist()[1]},
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        paper=paper_ids)
    if out is not None and _dist()[0] == 0:
        result.save(out)
    return result


def _trial_worker(lock, slots, threads: int) -> None:
    """A worker process of :func:`choose_dynamic_lr`'s ``jobs``: its share of the threads, and a line of its own
    for its progress bars (the next free one of ``slots``, a shared counter)."""
    global _BAR_POSITION
    from tqdm.auto import tqdm

    tqdm.set_lock(lock)
    torch.set_num_threads(threads)
    with slots.get_lock():
        _BAR_POSITION, slots.value = slots.value, slots.value + 1


def _dynamic_trial(model: Any, dataset: str, config: str | None, split: str, lr: float, limit: int | None,
                   kwargs: dict) -> dict:
    """One rate of :func:`choose_dynamic_lr`: {"lr", "metrics"}, or {"lr", "diverged": the reason}."""
    try:
        r = evaluate(model, dataset, config, split, dynamic=True, dynamic_lr=lr, limit=limit, **kwargs)
    except NonFiniteScoreError as e:
        return {"lr": lr, "diverged": str(e).splitlines()[0]}
    return {"lr": lr, "metrics": r.metrics}


def choose_dynamic_lr(model: Any, dataset: str, config: str | None, lrs: Iterable[float], *, split: str = "valid",
                      limit: int | None = None, metric: str | None = None, jobs: int = 1, **kwargs: Any) -> dict:
    """Choose dynamic evaluation's SGD rate on ``split`` (the validation split: never the split it is reported
    on), from ``lrs``: each is evaluated dynamically on the split (its first ``limit`` units where given) and the
    lowest ``metric`` (default: the first of the results) wins. A rate whose evaluation diverges (scores that are
    not finite) loses to every other: its trial says ``"diverged": True`` and has no value; only when every rate
    diverges is there nothing to choose. Returns {"split", "limit", "metric", "unit", "trials": [{"lr", "value"}
    ...], "chosen"}: what a card says of how its dynamic rate was found.

    ``jobs``: evaluate up to this many rates at once, each in its own process on an equal share of this process's
    threads (dynamic evaluation is sequential within a rate: one stream, one update per window, so the rates are
    the work that runs side by side). ``model`` must then be a reference (a folder, ``zoo:NAME``...), not a
    module. The trials and the choice are the same as with ``jobs=1``."""
    lrs = [float(x) for x in lrs]
    if not lrs or any(not 0 <= x < math.inf for x in lrs):
        raise EvaluationError(f"give one or more finite dynamic learning rates >= 0 (got {lrs})")
    if split == "test":
        raise EvaluationError("the dynamic learning rate is chosen on the validation split, never the test split")
    if not isinstance(jobs, int) or jobs < 1:
        raise EvaluationError(f"jobs must be a whole number >= 1 (got {jobs!r})")
    jobs = min(jobs, len(lrs))
    if jobs > 1 and not isinstance(model, (str, os.PathLike)):
        raise EvaluationError("jobs > 1 evaluates the rates in other processes: give the model as a reference (a "
                              "folder, zoo:NAME, hf-hub:...), not a module object")
    if jobs == 1:
        results = [_dynamic_trial(model, dataset, config, split, lr, limit, kwargs) for lr in lrs]
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no forked torch thread pools
        threads = max(1, torch.get_num_threads() // jobs)
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_trial_worker,
                                 initargs=(ctx.RLock(), ctx.Value("i", 0), threads)) as pool:
            futures = [pool.submit(_dynamic_trial, str(model), dataset, config, split, lr, limit, kwargs)
                       for lr in lrs]
            results = [f.result() for f in futures]
    trials, unit = [], ""
    for res in results:
        lr = res["lr"]
        if "diverged" in res:
            trials.append({"lr": lr, "value": None, "diverged": True})
            log.warning("dynamic lr %g on %s diverged: %s", lr, split, res["diverged"])
            continue
        metric = metric or next(iter(res["metrics"]))
        unit = res["metrics"][metric]["unit"]
        trials.append({"lr": lr, "value": res["metrics"][metric]["value"]})
        log.info("dynamic lr %g on %s: %s %.6g %s", lr, split, metric, trials[-1]["value"], unit)
    scored = [t for t in trials if t["value"] is not None]
    if not scored:
        raise NonFiniteScoreError(f"dynamic evaluation diverged on {split} at every rate tried "
                                  f"({', '.join(f'{x:g}' for x in lrs)}): give lower rates")
    best = min(scored, key=lambda t: t["value"])
    return {"split": split, "limit": limit, "metric": metric, "unit": unit, "trials": trials, "chosen": best["lr"]}


__all__ = ["evaluate", "choose_dynamic_lr", "Protocol", "EvaluationError", "NonFiniteScoreError", "score_batch", "score_handwriting",
           "score_text", "DEFAULT_DYNAMIC_LR"]
