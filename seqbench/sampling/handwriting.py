"""Sampling handwriting from the networks of Graves (2013): synthesis (text in, strokes out) and prediction
(unconditional), section 5.4 "Sampling" and section 4.

One step of the synthesis network at time t (the same equations as :mod:`seqbench.models.synthesis`):

    h^1_t = H(W [x_t; w_{t−1}; h^1_{t−1}] + b^1)                       (52)
    (w_t, κ_t, φ(t, ·)) = window(h^1_t, κ_{t−1})                       (46)-(51)
    h^n_t = H(W [x_t; h^{n−1}_t; w_t; h^n_{t−1}] + b^n),  n = 2..L     (53)
    ŷ_t   = b_y + W_y [h^1_t; ...; h^L_t]                               (3)
    x_{t+1} ~ Pr(· | ŷ_t) with bias b: σ = exp(σ̂ − b), π ∝ exp(π̂ (1 + b))   (section 5.4)

Stopping rule (section 5.4): synthesis ends at the first step t with φ(t, U+1) > φ(t, u) for every u ≤ U, i.e.
once the window has moved past the last character; the point that step would sample is not written. A
``max_steps`` cap stops runaway samples, and the result says which lines hit it (``stopped``).

Priming (section 5.4): the network is run, teacher-forced, on the offsets of a real line while reading the
text "<prime text> <new text>"; sampling then continues from the state it reached, so the new text comes out in
the primed writer's style. The returned offsets start with the priming line's offsets, exactly.

Speed: :class:`FastStepper` runs the network's own stepper (``model.stepper``), which concatenates each layer's
input and recurrent weights once (:meth:`~seqbench.models.lstm.LSTMLayer.fused_step`), so a step is one matrix
product per layer, plus the window (the network's :class:`~seqbench.models.window.SoftWindow`) and the peephole
cell (:func:`~seqbench.models.lstm.peephole_cell`); the draw is :func:`seqbench.models.mdn.draw`, its random
numbers drawn in blocks. The straightforward loop — call the network's ``forward`` on one time step at a time
with its carried state — is :class:`ReferenceStepper`; tests check that the two produce the same samples, and
benchmarks/bench_sampling.py times both.
"""
from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from seqbench.models import is_conditional, is_handwriting
from seqbench.models.mdn import draw as draw_point  # one biased draw x_{t+1} ~ Pr(· | ŷ_t), given the random numbers
from seqbench.models.mdn import mixture_params
from seqbench.sampling.errors import SamplingError, UnknownLineError, UnwritableCharacters
from seqbench.sampling.load import LoadedModel, load_for_sampling

log = logging.getLogger(__name__)

MAX_BIAS = 10.0  # σ shrinks by e^{−b}: at b = 10 by 4.5e-5, far past any useful setting (the paper uses ≤ 1)
STEPS_PER_CHAR = 40  # default cap: IAM lines average about 20 points per character (~700 points per line)
RANDOM_BLOCK = 256  # steps of random numbers drawn at once

# What one request may cost, checked before any step is taken (a 20,000-character text used to run for days
# with a default cap of 800,100 steps, and to keep 64 GB of window weights; a huge -n exhausted memory).
MAX_TEXT_CHARS = 1_000  # characters per line of text (IAM-OnDB lines: about 40; the default cap is 40 per char)
MAX_LINES = 100  # lines sampled at once (texts, or -n)
FINISH_MAX = 40  # points a line may draw after the stopping rule to finish the stroke in progress (finish_stroke)
MAX_STEPS = 50_000  # points per line after priming (IAM-OnDB lines: 629 on average, 1,940 at most)
MAX_RECORD_BYTES = 2 * 2**30  # memory for what a sample keeps: offsets, window weights φ, positions κ (×3 copies)


# --------------------------------------------------------------------------------------------------------------
# results
@dataclass
class HandwritingSample:
    """Sampled handwriting, one entry per line.

    ``offsets[i]`` (T_i, 3) float32 is line i in the network's units: normalised (Δx, Δy) and the end-of-stroke
    bit, the first ``prime_len`` rows copied from the priming line. ``phi[i]`` (T_i, U_i + 1) is the window
    φ(t, u) while writing row t (synthesis only; the last column is position U + 1 of the stopping rule) and
    ``kappa[i]`` (T_i, K) the window positions κ_t. ``stopped[i]`` is True when the stopping rule ended line i,
    False when it ran into ``max_steps``; ``finished[i]`` the points line i drew after the rule fired, to finish
    the stroke in progress (0 with ``finish_stroke=False``, the paper's rule exactly). :meth:`strokes` converts
    to board units with ``stats``.
    """

    offsets: list[np.ndarray]
    texts: list[str] | None = None  # the text each line was written from (with the priming text, if any)
    phi: list[np.ndarray] | None = None
    kappa: list[np.ndarray] | None = None
    stopped: list[bool] = field(default_factory=list)
    prime_len: int = 0
    prime_id: str | None = None
    stats: Any = None  # OffsetStats of the training split, or None (then strokes() stays normalised)
    bias: float = 0.0
    seed: int | None = None
    max_steps: int = 0
    family: str = "handwriting-synthesis"
    finished: list[int] = field(default_factory=list)  # points drawn after the stopping rule fired (finish_stroke)

    def __len__(self) -> int:
        return len(self.offsets)

    def strokes(self, i: int = 0) -> np.ndarray:
        """Line i's offsets (T, 3) in board units when the statistics are known (else normalised), float64."""
        seq = np.asarray(self.offsets[i], dtype=np.float64)
        if self.stats is None:
            return seq.copy()
        from seqbench.data.iam.transform import OffsetTransform

        return OffsetTransform().denormalise(seq, self.stats)

    def points(self, i: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Line i as absolute pen positions (x, y, eos), starting at (0, 0): ready to draw."""
        s = self.strokes(i)
        return np.cumsum(s[:, 0]), np.cumsum(s[:, 1]), s[:, 2] > 0.5

    @property
    def units(self) -> str:
        return "board units" if self.stats is not None else "normalised offsets"


# --------------------------------------------------------------------------------------------------------------
# checks
def check_bias(bias: float) -> float:
    """The bias b must be a number in [0, MAX_BIAS]."""
    try:
        b = float(bias)
    except (TypeError, ValueError):
        raise SamplingError(f"bias must be a number, got {bias!r}") from None
    if not math.isfinite(b) or b < 0 or b > MAX_BIAS:
        raise SamplingError(
            f"bias {bias!r} is out of range: b must be in [0, {MAX_BIAS:g}] (0 = unbiased, the paper uses "
            "0.15 for its figures and 1 with priming; larger b makes σ = exp(σ̂ − b) vanish)")
    return b


def check_request(lines: int, steps: int, *, chars: int = 0, prime: int = 0, window: int = 0) -> None:
    """Refuse, before sampling, a request over the limits of this module (MAX_LINES, MAX_STEPS, MAX_TEXT_CHARS,
    MAX_RECORD_BYTES), naming the limit and the option that sets it."""
    if lines > MAX_LINES:
        raise SamplingError(f"{lines:,} lines at once is over the limit of {MAX_LINES} "
                            "(seqbench.sampling.handwriting.MAX_LINES); ask for fewer (-n, or fewer --text), and "
                            "run the command again for more")
    if steps > MAX_STEPS:
        raise SamplingError(f"{steps:,} points per line is over the limit of {MAX_STEPS:,} "
                            "(seqbench.sampling.handwriting.MAX_STEPS); IAM-OnDB lines have 629 on average and "
                            "1,940 at most: lower --steps / --max-steps (steps= / max_steps=)")
    if chars > MAX_TEXT_CHARS:
        raise SamplingError(f"a text of {chars:,} characters is over the limit of {MAX_TEXT_CHARS:,} per line "
                            "(seqbench.sampling.handwriting.MAX_TEXT_CHARS): the synthesis network writes one "
                            "line at a time; split the text over several --text options (a list of strings "
                            f"from Python), up to {MAX_LINES} lines")
    per_step = (window + 1 if window else 0) + 3  # φ (U + 1) and κ (K) per step, the offsets (3)
    need = 3 * 4 * lines * (prime + steps) * per_step  # float32, kept per step, stacked, then split per line
    if need > MAX_RECORD_BYTES:
        raise SamplingError(
            f"this request would keep about {need / 2**30:.1f} GiB of samples in memory ({lines} line(s) × "
            f"{prime + steps:,} steps × {per_step:,} values), over the limit of {MAX_RECORD_BYTES / 2**30:.0f} GiB "
            "(seqbench.sampling.handwriting.MAX_RECORD_BYTES); write fewer or shorter lines (--text), or lower "
            "--max-steps")


def encode_text(text: str, vocab, *, allow_nonletter: bool = False, what: str = "text") -> list[int]:
    """Class ids of ``text``. Characters the vocabulary lacks raise :class:`UnwritableCharacters`, naming them;
    so do characters it only writes as its shared non-letter class, unless ``allow_nonletter``."""
    if not isinstance(text, str):
        raise SamplingError(f"{what} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise SamplingError(f"{what} is empty: give the synthesis network something to write")
    missing = sorted({c for c in text if c not in vocab.table and vocab.fallback is None})
    merged = sorted({c for c in text if c not in vocab.table and vocab.fallback is not None})
    if missing:
        s = "".join(missing)
        raise UnwritableCharacters(
            f"vocabulary {vocab.name} of this model cannot write {_show(missing)}; remove them from the "
            f"{what} or use a model trained on a vocabulary that has them", s)
    if merged and not allow_nonletter:
        s = "".join(merged)
        raise UnwritableCharacters(
            f"vocabulary {vocab.name} of this model has no class of its own for {_show(merged)}: it writes them "
            f"all as one generic non-letter mark (Graves 2013, section 5). Remove them from the {what}, or pass "
            "allow_nonletter=True (CLI: --allow-nonletter) to write that mark in their place", s)
    return vocab.encode(text)


def _show(chars: Sequence[str]) -> str:
    return ", ".join(repr(c) for c in chars)


def _whole(v: Any, name: str, option: str) -> int:
    """``v`` as a whole number ≥ 1, else a :class:`SamplingError` naming the argument and its CLI option."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise SamplingError(f"{name} must be a whole number of at least 1 (CLI {option}), got {v!r}")
    return int(v)


def cfg_k(loaded: LoadedModel) -> int:
    """K, the window's Gaussians (what κ holds per step)."""
    return int(getattr(loaded.model.config, "n_window", 0))


def _vocab_for(loaded: LoadedModel):
    from seqbench.data.iam.vocab import GRAVES57

    V = loaded.model.config.vocab_size
    vocab = loaded.vocab
    if vocab is None:
        if V == GRAVES57.size:
            log.info("%s records no vocabulary; assuming %s (its size matches)", loaded.source, GRAVES57.name)
            return GRAVES57
        raise SamplingError(f"{loaded.source} records no character vocabulary and has {V} classes (not 57); "
                            "pass vocab= (a seqbench.data.iam.vocab.Vocabulary)")
    if vocab.size != V:
        raise SamplingError(f"vocabulary {vocab.name} has {vocab.size} classes but the network reads {V}")
    return vocab


# --------------------------------------------------------------------------------------------------------------
# the random numbers of the draw (the draw itself is seqbench.models.mdn.draw, imported here as draw_point)
class RandomBlocks:
    """Uniforms and normals for every step, drawn ``RANDOM_BLOCK`` steps at a time from one seeded generator.

    Per step and line: u_mix (mixture component), n1, n2 (the bivariate normal), u_eos (the pen bit).
    """

    def __init__(self, batch: int, seed: int | None):
        from seqbench.checks import seed_problem

        if seed is not None and seed_problem("seed", seed):
            raise SamplingError(f"{seed_problem('seed', seed)} (CLI --seed)")
        self.g = torch.Generator()
        self.g.manual_seed(int(seed) if seed is not None else int(torch.seed() % 2**63))
        self.batch, self.t, self.u, self.n = batch, RANDOM_BLOCK, None, None

    def next(self) -> tuple[Tensor, Tensor]:
        if self.t >= RANDOM_BLOCK:
            self.u = torch.rand(RANDOM_BLOCK, self.batch, 2, generator=self.g)
            self.n = torch.randn(RANDOM_BLOCK, self.batch, 2, generator=self.g)
            self.t = 0
        t = self.t
        self.t += 1
        return self.u[t], self.n[t]


# --------------------------------------------------------------------------------------------------------------
# one step of the networks
class _Stepper:
    """What the sampling loop asks of a stepper: ``step(x_t)`` → (ŷ_t, φ(t, ·) or None, κ_t or None), from the
    network's state (a :class:`~seqbench.models.synthesis.SynthesisState` for the synthesis network)."""

    synthesis: bool
    state: Any

    @property
    def phi(self) -> Tensor | None:
        return self.state.phi if self.synthesis else None

    @property
    def kappa(self) -> Tensor | None:
        return self.state.kappa if self.synthesis else None


class FastStepper(_Stepper):
    """One step of a handwriting network at a time through the network's own stepper (``model.stepper``: its
    weights laid out once, one matrix product per layer per step, see
    :class:`~seqbench.models.prediction.PredictionStepper`), carrying its state.

    ``chars`` (B, U) long and ``char_mask`` (B, U) bool for the synthesis network; None for prediction.
    :meth:`step` maps x_t (B, 3) to (ŷ_t (B, 1 + 6M), φ(t, ·) (B, U + 1) or None, κ_t (B, K) or None).
    """

    def __init__(self, model, batch: int, chars: Tensor | None = None, char_mask: Tensor | None = None):
        self.synthesis = is_conditional(model)
        self.net = model.stepper(chars, char_mask) if self.synthesis else model.stepper()
        self.state = self.net.initial_state(batch)

    def step(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        y, self.state = self.net.step(x, self.state)
        return y, self.phi, self.kappa


class ReferenceStepper(_Stepper):
    """The straightforward loop: the network's own ``forward`` on one time step, carrying its state."""

    def __init__(self, model, batch: int, chars: Tensor | None = None, char_mask: Tensor | None = None):
        self.model, self.chars, self.char_mask, self.state = model, chars, char_mask, None
        self.synthesis = is_conditional(model)

    def step(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        cond = (self.chars, self.char_mask) if self.synthesis else ()
        y, self.state = self.model(x[:, None], *cond, self.state)  # (B, 1, 1 + 6M)
        return y[:, 0], self.phi, self.kappa


STEPPERS = {"fast": FastStepper, "reference": ReferenceStepper}


@contextlib.contextmanager
def _torch_threads(n: int | None):
    """Run with ``n`` intra-op threads (restored afterwards); None leaves torch's setting alone.

    One line's step is a handful of (1 × ~860) × (~860 × 1600) products: splitting them over threads gains little
    and, on a busy machine, every step waits for the slowest thread (measured: 1.5 s with one thread vs 7.6 s with
    two for the same line on a loaded 2-core machine), so the samplers default to one thread."""
    if n is None or n == torch.get_num_threads():
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


# --------------------------------------------------------------------------------------------------------------
# the sampling loop
def _run(model, *, batch: int, bias: float, seed: int | None, max_new: int, prime: np.ndarray | None,
         chars: Tensor | None, char_mask: Tensor | None, stepper: str,
         finish: int = 0) -> tuple[Tensor, list, list, np.ndarray, np.ndarray, np.ndarray]:
    """Teacher-force ``prime`` (P, 3), then sample up to ``max_new`` points; returns the offsets (B, T, 3), φ and
    κ per step, the length of each line, whether the stopping rule ended it and the points drawn after it fired.
    ``finish`` > 0: a line whose pen is down when the rule fires goes on until the stroke in progress ends (a
    point with e = 1), for at most ``finish`` more points; 0 ends it where the rule fires (the paper's rule)."""
    dtype = next(model.parameters()).dtype
    st = STEPPERS[stepper](model, batch, chars, char_mask)
    rnd = RandomBlocks(batch, seed)
    M = model.config.n_mixtures
    x = torch.zeros(batch, 3, dtype=dtype)  # the first input is the null vector (section 4.2)
    xs, phis, kappas = [], [], []
    P = 0 if prime is None else len(prime)
    if P:
        pt = torch.as_tensor(prime, dtype=dtype)  # (P, 3)
        for t in range(P):
            _, phi, kappa = st.step(x)
            x = pt[t].expand(batch, 3)
            xs.append(x)
            if phi is not None:
                phis.append(phi)
                kappas.append(kappa)
    length = np.full(batch, P + max_new, dtype=np.int64)
    stopped = np.zeros(batch, dtype=bool)
    ending = np.zeros(batch, dtype=bool)  # the rule fired with the pen down: finishing the stroke in progress
    rule_at = np.full(batch, -1, dtype=np.int64)  # the length of each line when the rule fired (-1: not yet)
    if chars is not None:
        U = char_mask.sum(1)  # (B,) characters per line
        last = U.unsqueeze(1)  # (B, 1): column of position U + 1 in φ
        text_mask = ~char_mask
    for t in range(max_new):
        y, phi, kappa = st.step(x)
        # the network's output, window included, is checked before anything uses it: the stopping rule compares
        # φ and κ, and a NaN or infinite window "ended" a line at its first step (an empty picture, exit 0)
        _check_finite(P + t + 1, stopped, y, phi, kappa)
        if chars is not None:
            # stopping rule (section 5.4): φ(t, U+1) > φ(t, u) for all u ≤ U
            inside = phi[:, :-1].masked_fill(text_mask, -math.inf).amax(1)
            # Every κ_k past U + 1 implies the rule exactly (each Gaussian is nearer U + 1 than any u ≤ U) even
            # where all φ(t, ·) underflow to 0 in floating point (a window far past the end of the text).
            past = (kappa > last + 1).all(1)
            fired = ((phi.gather(1, last).squeeze(1) > inside) | past).numpy() & ~stopped & ~ending
            rule_at[fired] = P + t
            if finish:
                # the last point drawn left the pen down (a stroke in progress, not the first input): finish it
                pen_down = (x[:, 2] < 0.5).numpy() & bool(xs)
                ending |= fired & pen_down
                fired &= ~pen_down
            if fired.any():
                length[fired] = P + t
                stopped |= fired
                if stopped.all():
                    break
        u, n = rnd.next()
        x = draw_point(y, M, bias, u, n)
        # the point too (σ = exp(σ̂) can overflow)
        _check_finite(P + t + 1, stopped, x)
        if ending.any():
            # a finishing line ends with the point that lifts its pen, or with its finish-th point after the rule
            done = ending & ((x[:, 2] > 0.5).numpy() | (P + t + 1 - rule_at >= finish))
            length[done] = P + t + 1
            stopped |= done
            ending &= ~done
        xs.append(x)
        if phi is not None:
            phis.append(phi)
            kappas.append(kappa)
        if finish and stopped.all():
            break
    stopped |= ending  # the rule fired; max_new came before the stroke in progress ended
    out = torch.stack(xs, dim=1) if xs else torch.zeros(batch, 0, 3, dtype=dtype)  # (B, T, 3)
    return out, phis, kappas, length, stopped, np.where(rule_at >= 0, length - rule_at, 0)


def _check_finite(step: int, stopped: np.ndarray, *outputs: Tensor | None) -> None:
    """Refuse a sampling step whose outputs (per line: ŷ, φ, κ, the drawn point) are not finite, for the lines
    still being written."""
    finite = ~torch.from_numpy(stopped)
    for o in outputs:
        if o is not None:
            finite = finite & torch.isfinite(o.reshape(o.shape[0], -1)).all(1)
    finite = finite | torch.from_numpy(stopped)  # (B,)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten().tolist()
        raise SamplingError(
            f"the network's output is not finite (NaN or infinite) at step {step} of line(s) "
            f"{', '.join(str(i + 1) for i in bad[:5])}, so nothing it draws can be written: its weights "
            "overflow (a run that diverged, or a corrupt checkpoint). Sample from another checkpoint (an "
            "earlier one of the run), or retrain")


def _prime_offsets(prime: Any, stats: Any, data_root: Any, config: str) -> tuple[np.ndarray, str, str | None, Any]:
    """(offsets (P, 3) float32 normalised, text, line id, stats) of the priming line.

    ``prime``: a line id of a prepared IAM-OnDB, a dataset row (dict with x, y, t, eos, text), or a tuple
    (offsets (P, 3) normalised, text)."""
    if isinstance(prime, tuple) and len(prime) == 2:
        off, text = prime
        off = np.asarray(off, dtype=np.float32)
        if off.ndim != 2 or off.shape[1] != 3 or len(off) == 0:
            raise SamplingError(f"priming offsets must be a non-empty (P, 3) array, got shape {off.shape}")
        return off, str(text), None, stats
    row, split_stats = (find_line(prime, root=data_root, config=config) if isinstance(prime, str)
                        else (dict(prime), None))
    stats = stats if stats is not None else split_stats
    if stats is None:
        raise SamplingError("priming needs the offset statistics the network was trained with; pass stats= "
                            "(seqbench.data.iam.transform.OffsetStats) or prime by line id from a prepared dataset")
    if not row.get("text"):
        raise SamplingError(f"priming line {row.get('id', '?')} has no transcription; pick another line")
    from seqbench.data.iam.transform import OffsetTransform

    if "t" not in row:
        row["t"] = np.arange(len(row["x"]), dtype=np.float64) * 0.015
    seq, _ = OffsetTransform().apply([row], stats)
    return seq, row["text"], row.get("id"), stats


def find_line(line_id: str, root: Any = None, config: str = "graves2013") -> tuple[dict, Any]:
    """The row (id, text, x, y, t, eos) of a prepared IAM-OnDB line, and its configuration's training statistics.

    Unknown ids raise :class:`UnknownLineError` listing close matches."""
    import difflib

    import pyarrow.compute as pc

    from seqbench.data import load_dataset
    from seqbench.data.iam.transform import NAME, OffsetStats

    ids: list[str] = []
    stats = None
    for split in ("train", "valid", "unassigned") if config == "graves2013" else ("train", "valid1", "valid2",
                                                                                   "test", "unassigned"):
        try:
            ds = load_dataset("iam-ondb", config=config, split=split, root=root)
        except Exception as e:  # not prepared, or no such split
            if split == "train":
                raise SamplingError(f"priming by line id needs a prepared IAM-OnDB ({e})") from None
            continue
        if stats is None:
            d = ds.info["configs"][config].get("offset_stats", {}).get(NAME)
            stats = OffsetStats.from_dict(d) if d else None
        table = ds.to_arrow()
        hit = table.filter(pc.equal(table.column("id"), line_id))
        if hit.num_rows:
            return hit.slice(0, 1).to_pylist()[0], stats
        ids.extend(table.column("id").to_pylist())
    close = difflib.get_close_matches(str(line_id), ids, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownLineError(f"line id {line_id!r} is not in the prepared iam-ondb ({config}, {len(ids):,} lines)."
                           f"{hint} Line ids look like a01-000u-01 (form id, line number).")


def _split_lines(out: Tensor, phis: list, kappas: list, length: np.ndarray, chars_len: list[int] | None):
    B = out.shape[0]
    offsets = [out[b, :length[b]].numpy().astype(np.float32) for b in range(B)]
    if not phis:
        return offsets, None, None
    phi = torch.stack(phis, dim=1)  # (B, T, U + 1)
    kappa = torch.stack(kappas, dim=1)  # (B, T, K)
    # columns 0..U_b-1 are positions 1..U_b; column U_b is position U_b + 1 of the stopping rule
    phi_l = [phi[b, :length[b], :chars_len[b] + 1].numpy().astype(np.float32) for b in range(B)]
    return offsets, phi_l, [kappa[b, :length[b]].numpy().astype(np.float32) for b in range(B)]


# --------------------------------------------------------------------------------------------------------------
# public functions
def synthesize(model: Any, text: str | Sequence[str], *, bias: float = 0.0, seed: int | None = None,
               prime: Any = None, max_steps: int | None = None, allow_nonletter: bool = False,
               vocab: Any = None, stats: Any = None, data_root: Any = None, data_config: str = "graves2013",
               stepper: str = "fast", threads: int | None = 1, finish_stroke: bool = True) -> HandwritingSample:
    """Write ``text`` (one string, or several written at once as a batch) with a synthesis network.

    ``bias`` b ≥ 0 (section 5.4); ``seed`` makes the sample repeatable; ``prime`` imitates a writer: a line id of
    the prepared IAM-OnDB (``data_root``, ``data_config``), a dataset row, or (offsets, text). ``max_steps``
    caps the points written per line after priming (default: 40 per character + 100). ``threads``: torch
    intra-op threads while sampling (default 1, see :func:`_torch_threads`; None = torch's setting).
    ``finish_stroke``: the stopping rule (section 5.4) fires once the window has passed the last character, often
    while the pen is still down in the last letter (an "n" left as an "r"); True lets such a line finish that
    stroke (up to FINISH_MAX more points, counted in ``finished``), False ends it where the rule fires.

    >>> s = synthesize("runs/tiny-synthesis/best", "from his travels", bias=0.5, seed=0)   # doctest: +SKIP
    >>> s.offsets[0].shape, s.phi[0].shape, s.stopped                                       # doctest: +SKIP
    ((412, 3), (412, 17), [True])
    """
    loaded = load_for_sampling(model, vocab=vocab, stats=stats)
    fam = loaded.family
    if is_handwriting(loaded.model) and not is_conditional(loaded.model):
        raise SamplingError("this is a handwriting prediction network: it writes unconditionally and cannot "
                            "follow a text. Drop the text (sample a length with steps=, CLI --steps) or use a "
                            "handwriting-synthesis network")
    if not is_handwriting(loaded.model):
        raise SamplingError(f"a {fam} network does not write handwriting; text goes to a handwriting-synthesis "
                            "network (for text sampling from a language model use sample_text / --prime-text)")
    b = check_bias(bias)
    texts = [text] if isinstance(text, str) else list(text)
    if not texts:
        raise SamplingError("no text given: pass a string, or a list of strings to write several lines")
    check_request(len(texts), 1, chars=max(len(t) if isinstance(t, str) else 0 for t in texts))
    vocab = _vocab_for(loaded)
    enc = [encode_text(t, vocab, allow_nonletter=allow_nonletter,
                       what="text" if len(texts) == 1 else f"text {i + 1}") for i, t in enumerate(texts)]
    prime_off, prime_id, prime_stats = None, None, loaded.stats
    if prime is not None:
        prime_off, prime_text, prime_id, prime_stats = _prime_offsets(prime, loaded.stats, data_root, data_config)
        # real transcriptions: their non-letters are what the net was trained on (its shared non-letter class)
        lacking = sorted({c for c in prime_text + " " if c not in vocab.table and vocab.fallback is None})
        if lacking:
            raise UnwritableCharacters(
                f"the priming line{f' {prime_id}' if prime_id else ''} is transcribed with {_show(lacking)}, which "
                f"vocabulary {vocab.name} of this model cannot read; prime with another line, or use a model "
                f"trained on a vocabulary that has them (the paper's networks use graves57-v1)", "".join(lacking))
        pre = vocab.encode(prime_text + " ")
        enc = [pre + e for e in enc]
        texts = [prime_text + " " + t for t in texts]
    B, Umax = len(enc), max(len(e) for e in enc)
    chars = torch.zeros(B, Umax, dtype=torch.long)
    cmask = torch.zeros(B, Umax, dtype=torch.bool)
    for i, e in enumerate(enc):
        chars[i, :len(e)] = torch.tensor(e)
        cmask[i, :len(e)] = True
    if max_steps is None:
        max_steps = min(STEPS_PER_CHAR * max(len(e) for e in enc) + 100, MAX_STEPS)
    max_steps = _whole(max_steps, "max_steps", "--max-steps")
    check_request(B, max_steps, prime=0 if prime_off is None else len(prime_off), window=Umax + cfg_k(loaded))
    with torch.inference_mode(), _torch_threads(threads):
        out, phis, kappas, length, stopped, after = _run(
            loaded.model, batch=B, bias=b, seed=seed, max_new=int(max_steps), prime=prime_off, chars=chars,
            char_mask=cmask, stepper=stepper, finish=FINISH_MAX if finish_stroke else 0)
    if not stopped.all():
        log.warning("%d of %d line(s) reached max_steps=%d before the window passed the end of the text",
                    int((~stopped).sum()), B, max_steps)
    offsets, phi, kappa = _split_lines(out, phis, kappas, length, [len(e) for e in enc])
    return HandwritingSample(offsets, texts, phi, kappa, stopped.tolist(), 0 if prime_off is None else len(prime_off),
                             prime_id, prime_stats, b, seed, int(max_steps), fam, after.tolist())


def generate(model: Any, steps: int = 700, *, n: int = 1, bias: float = 0.0, seed: int | None = None,
             prime: Any = None, stats: Any = None, data_root: Any = None, data_config: str = "graves2013",
             stepper: str = "fast", threads: int | None = 1) -> HandwritingSample:
    """Unconditional handwriting of ``steps`` points (``n`` lines at once) from a prediction network (section 4).

    >>> s = generate("runs/tiny-prediction/best", steps=700, bias=0.5, seed=0)   # doctest: +SKIP
    """
    loaded = load_for_sampling(model, stats=stats)
    if not is_handwriting(loaded.model) or is_conditional(loaded.model):
        if is_handwriting(loaded.model):
            raise SamplingError("this is a handwriting synthesis network: it needs a text to write (text=, CLI "
                                "--text); unconditional sampling takes a handwriting-prediction network")
        raise SamplingError(f"a {loaded.family} network does not write handwriting")
    b = check_bias(bias)
    steps = _whole(steps, "steps", "--steps")
    n = _whole(n, "n", "-n")
    check_request(n, steps)
    prime_off, prime_id, st = None, None, loaded.stats
    if prime is not None:
        prime_off, _, prime_id, st = _prime_offsets(prime, loaded.stats, data_root, data_config)
    check_request(n, steps, prime=0 if prime_off is None else len(prime_off))
    with torch.inference_mode(), _torch_threads(threads):
        out, _, _, length, _, _ = _run(loaded.model, batch=int(n), bias=b, seed=seed, max_new=int(steps),
                                    prime=prime_off, chars=None, char_mask=None, stepper=stepper)
    offsets, _, _ = _split_lines(out, [], [], length, None)
    return HandwritingSample(offsets, None, None, None, [False] * int(n), 0 if prime_off is None else len(prime_off),
                             prime_id, st, b, seed, int(steps), loaded.family)


__all__ = ["HandwritingSample", "synthesize", "generate", "find_line", "check_bias", "check_request", "encode_text",
           "draw_point", "mixture_params", "FastStepper", "ReferenceStepper", "MAX_BIAS", "MAX_TEXT_CHARS",
           "MAX_LINES", "MAX_STEPS", "MAX_RECORD_BYTES"]
