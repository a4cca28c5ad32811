"""``seqbench zoo verify``: check on this machine that zoo models reproduce their cards (after timm's
``validate.py`` and lm-eval's ``--limit``).

For each entry: the sha256 of its weights against the pin, then ``seqbench eval`` on the pinned split with the
pinned options (the stream convention ``join``, the dynamic-evaluation rate where the entry pins one), each
metric compared with the value the entry pins and its card states, within the entry's relative tolerance.
``quick=True`` scores the pinned subset instead (the first ``quick["limit"]`` lines or symbols of the split,
whose values ``seqbench zoo export`` measured and pinned): seconds instead of minutes, the same weights, code
path and options.

>>> report = verify(["ptb-char"], quick=True)  # doctest: +SKIP
>>> print(report.table()); report.ok  # doctest: +SKIP
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from seqbench.errors import DataNotPrepared, SeqbenchError
from seqbench.registry import Registry
from seqbench.zoo import ZOO, ZooEntry, mirror_folder

#: ``seqbench zoo export``'s quick subset: the first 64 lines (handwriting) or 10,000 symbols (text) of the split.
QUICK_LIMITS = {"handwriting": 64, "text": 10_000}

# rough single-thread speeds of the paper-size networks here (units/s), for the first ETA; later ETAs scale
# them by what the finished evaluations took
_RATES = {("handwriting", False): 4_800.0, ("text", False): 2_000.0, ("text", True): 420.0}


class ZooVerifyFailed(SeqbenchError):
    """Some zoo entry did not reproduce its card (the table says which check)."""


@dataclass
class Check:
    """One line of the table: ``what`` is a metric (with its protocol), ``weights sha256`` or ``data sha256``."""

    entry: str
    what: str
    card: Any
    measured: Any
    ok: bool
    note: str = ""

    @property
    def rel_diff(self) -> float | None:
        if isinstance(self.card, float) and isinstance(self.measured, float) and self.card != 0:
            return abs(self.measured - self.card) / abs(self.card)
        return None


@dataclass
class VerifyReport:
    checks: list[Check] = field(default_factory=list)
    quick: bool = False
    seconds: float = 0.0
    tolerances: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def table(self) -> str:
        """The checks as a Markdown table: entry, check, card, measured, relative difference, agrees."""

        def fmt(v):
            return f"{v:.6g}" if isinstance(v, float) else ("-" if v is None else str(v))

        rows = [("entry", "check", "card", "measured", "rel. diff", "agrees")]
        for c in self.checks:
            d = c.rel_diff
            rows.append((f"zoo:{c.entry}", c.what, fmt(c.card), fmt(c.measured), "-" if d is None else f"{d:.1e}",
                         ("yes" if c.ok else "NO") + (f" ({c.note})" if c.note else "")))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        out = ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |" for r in rows]
        out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(out)

    def summary(self) -> str:
        n, bad = len(self.checks), len(self.failed)
        tol = ", ".join(sorted({f"{t:g}" for t in self.tolerances.values()}))
        what = "quick subset" if self.quick else "whole split"
        return (f"{n - bad} of {n} checks agree ({what}, relative tolerance {tol or '-'}) in "
                f"{_clock(self.seconds)}" + (f"; {bad} disagree" if bad else ""))


def _clock(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def verifiable(registry: Registry[ZooEntry] = ZOO) -> list[ZooEntry]:
    """The entries with weights to check: pinned weights and values, mirrored in zoo/ or published on the Hub."""
    return [e for e in (registry.get(n) for n in registry.names())
            if e.weights_sha256 and e.expected and (e.published or mirror_folder(e.name) is not None)]


def quick_limit(entry: ZooEntry) -> int:
    """The size of the quick subset ``seqbench zoo export`` pins for ``entry`` (lines or symbols)."""
    from seqbench.models import is_text

    return QUICK_LIMITS["text" if is_text(entry.family) else "handwriting"]


def _split_size(entry: ZooEntry, root) -> tuple[str, int, int]:
    """(kind, units to score in all, lines or symbols of the split) of the entry's split; DataNotPrepared where it
    is not prepared (read from info.json: nothing is loaded)."""
    from seqbench.data.base import get_spec, read_info
    from seqbench.models import is_text

    _, info = read_info(get_spec(entry.dataset), root)
    s = info["configs"][entry.dataset_config]["splits"][entry.split]
    if is_text(entry.family):
        n = int(s.get("tokens") or 0)
        return "text", n, n
    lines = int(s.get("lines") or s.get("rows") or 0)
    return "handwriting", int(s.get("points") or 0), lines


def _card_states(entry: ZooEntry, value: float, quick: bool) -> bool:
    """Whether zoo/NAME/README.md states the pinned value (model-index for whole-split values, the "Quick
    check" section for quick ones); True where there is no local card to read (a Hub-only entry)."""
    from seqbench.zoo.card import QUICK_HEADING

    folder = mirror_folder(entry.name)
    if folder is None or not (folder / "README.md").is_file():
        return True
    text = (folder / "README.md").read_text(encoding="utf-8")
    if quick:
        text = text.split(QUICK_HEADING, 1)[1].split("\n## ", 1)[0] if QUICK_HEADING in text else ""
        return repr(float(value)) in text
    return f"value: {float(value)!r}" in text


def verify(names: Iterable[str] | None = None, *, quick: bool = False, root=None, device: str = "cpu",
           registry: Registry[ZooEntry] = ZOO, echo: Callable[[str], None] | None = None,
           progress: bool = False) -> VerifyReport:
    """Check that zoo entries (``names``; default: every entry with weights) reproduce their cards here.

    Returns a :class:`VerifyReport` (``.ok``, ``.table()``); it raises only before any scoring: an unknown
    name, an entry with nothing to verify, or a dataset that is not prepared (DataNotPrepared, naming the
    ``seqbench prepare`` command). ``echo``: called with one line per step (what it scores, elapsed time and an
    ETA); ``progress``: also evaluation's progress bar."""
    from seqbench.evaluation import evaluate
    from seqbench.models import is_text
    from seqbench.zoo.hub import WEIGHTS, ModelNotAvailable, WeightsChecksumError, resolve, sha256_file

    t0 = time.perf_counter()
    say = echo or (lambda s: None)
    if names:
        chosen = []
        for n in names:
            n = n.removeprefix("zoo:")
            e = registry.get(n)
            if not (e.weights_sha256 and e.expected):
                raise SeqbenchError(f"zoo:{n} has no trained weights and no pinned values yet ({e.status()}): "
                                    "nothing to verify. `seqbench zoo list` shows the trained ones")
            chosen.append(e)
    else:
        chosen = verifiable(registry)
        if not chosen:
            raise SeqbenchError("the zoo holds no trained model to verify")
    report = VerifyReport(quick=quick, tolerances={e.name: e.tolerance for e in chosen})

    # every dataset first: a missing one is one clear message before minutes of scoring
    missing, jobs = {}, []
    for e in chosen:
        sample = "sample" in e.eval_options
        try:
            kind, units, size = ("handwriting", 0, 0) if sample else _split_size(e, root)
        except DataNotPrepared:
            from seqbench.data.base import get_spec

            missing.setdefault(e.dataset, (get_spec(e.dataset).prepare_command, []))[1].append(e.name)
            continue
        if sample:  # a smoke model's generated sample: small, made on first use
            kind, units, size = ("text" if is_text(e.family) else "handwriting"), 0, 0
        sets = [("static", e.expected), ("dynamic", e.expected_dynamic)]
        limit = None
        if quick:
            q = e.quick or {}
            limit = q.get("limit")
            sets = [("static", q.get("expected") or {}), ("dynamic", q.get("expected_dynamic") or {})]
        for protocol, values in sets:
            if protocol == "static" or values:
                n = units if not limit else (min(limit, size) * (units / size if kind == "handwriting" and size
                                                                 else 1))
                cost = n / _RATES.get((kind, protocol == "dynamic"), 2_000.0)
                jobs.append((e, protocol, values, limit, cost))
    if missing:
        from seqbench.data.base import dataset_dir, get_spec

        lines = [f"{ds} is not prepared under {dataset_dir(get_spec(ds), root).parent} (needed by "
                 f"{', '.join('zoo:' + n for n in names_)}).\n  Run: {cmd}" for ds, (cmd, names_) in missing.items()]
        raise DataNotPrepared("zoo verify: " + "\n".join(lines) + "\n  (set SEQBENCH_HOME or pass --root to look "
                              "elsewhere; or name the entries to verify)")

    checked_weights: dict[str, bool] = {}
    done_cost, done_s = 0.0, 0.0
    total_cost = sum(j[-1] for j in jobs) or 1.0
    for k, (e, protocol, values, limit, cost) in enumerate(jobs, 1):
        ref = f"zoo:{e.name}"
        if e.name not in checked_weights:  # the weights once per entry, before anything is scored with them
            try:
                got = resolve(ref, registry=registry).weights_sha256
                report.checks.append(Check(e.name, "weights sha256", e.weights_sha256[:16], got[:16],
                                           got == e.weights_sha256))
                checked_weights[e.name] = True
            except WeightsChecksumError:
                folder = mirror_folder(e.name)
                got = sha256_file(folder / WEIGHTS) if folder is not None and (folder / WEIGHTS).is_file() else "?"
                report.checks.append(Check(e.name, "weights sha256", e.weights_sha256[:16], got[:16], False,
                                           "the weights are not the pinned ones: not scored"))
                checked_weights[e.name] = False
            except ModelNotAvailable as err:
                report.checks.append(Check(e.name, "weights", "pinned", "missing", False, str(err).split(". ")[0]))
                checked_weights[e.name] = False
        if not checked_weights[e.name]:
            done_cost += cost
            continue
        if quick and not values:
            report.checks.append(Check(e.name, f"quick values ({protocol})", None, None, False,
                                       "the entry pins no quick subset: re-export it, or verify without --quick"))
            done_cost += cost
            continue
        ratio = done_s / done_cost if done_cost and done_s else 1.0
        eta = (total_cost - done_cost) * ratio
        scope = (f"first {limit:,} {'symbols' if is_text(e.family) else 'lines'} of " if limit else "") + \
            f"{e.dataset}/{e.dataset_config}/{e.split}"
        say(f"[{k}/{len(jobs)}] {ref} {protocol} on {scope} (elapsed {_clock(time.perf_counter() - t0)}, "
            f"ETA {_clock(eta)})")
        kw: dict[str, Any] = {}
        if "sample" not in e.eval_options:
            kw["root"] = root
        if is_text(e.family):
            kw["join"] = e.eval_options.get("join", "none")
        if protocol == "dynamic":
            kw.update(dynamic=True, dynamic_lr=e.eval_options.get("dynamic_lr"))
        t1 = time.perf_counter()
        r = evaluate(ref, metrics=list(values) if values else None, limit=limit, device=device, registry=registry,
                     progress=progress, **kw)
        done_s += time.perf_counter() - t1
        done_cost += cost
        if protocol == "static" and e.data_fingerprint:
            fp = r.dataset.get("fingerprint")
            report.checks.append(Check(e.name, "data sha256", e.data_fingerprint[:16], str(fp)[:16],
                                       fp == e.data_fingerprint, "" if fp == e.data_fingerprint else
                                       "scored on other data than the card's: re-prepare the dataset"))
        for name, pinned in values.items():
            got = float(r.value(name))
            agrees = math.isfinite(got) and abs(got - pinned) <= e.tolerance * abs(pinned)
            stated = _card_states(e, pinned, quick)
            note = "" if stated else "README.md does not state the pinned value"
            report.checks.append(Check(e.name, f"{name} ({protocol}{', quick' if quick else ''})", float(pinned),
                                       got, agrees and stated, note))
    report.seconds = time.perf_counter() - t0
    return report


__all__ = ["verify", "verifiable", "quick_limit", "VerifyReport", "Check", "ZooVerifyFailed", "QUICK_LIMITS"]
