"""What reaching a target loss would take, from a run's validation curve.

A model still in training says how far it is from the paper and how fast it is closing the gap. The rate is
measured, not modelled: a least-squares line through the last validations of the current stretch of the
schedule (since the last change of its settings, e.g. a lower learning rate on ``--resume --set``), in the
loss's unit per core-hour. Where the rate over those last validations is lower than over the whole stretch,
the curve is levelling off and the hours at the recent rate are a lower bound *for this schedule*; a change of
schedule (a lower rate, say) can move the curve by a step, as the zoo's runs have shown.

Losses here are lower-is-better (nats/line, bits/char), as all of the paper's are.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

#: validations the recent rate is fitted on
RECENT = 5
#: recipe fields whose change on ``--resume --set`` starts a new stretch of the schedule (others, such as
#: max_steps or patience, change when a run stops, not how it learns)
SCHEDULE_PREFIXES = ("optimizer_args.", "lr_", "ema")  # ema: what is validated changes (the average)


def is_schedule_field(key: str) -> bool:
    """Whether changing this recipe field on resume changes how the run learns (a new stretch of its curve)."""
    return any(key.startswith(p) for p in SCHEDULE_PREFIXES)


def _slope(points: Sequence[Mapping[str, Any]]) -> float | None:
    """Least-squares slope of loss against core-hours (unit per core-hour); None if the hours do not vary."""
    xs = [float(p["cpu_hours"]) for p in points]
    ys = [float(p["loss"]) for p in points]
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def current_stretch(valid: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The validations since the last change of schedule: those of the highest ``regime`` (as
    :func:`seqbench.zoo.card.training_status` numbers them; points of an earlier run have none)."""
    own = [v for v in valid if v.get("regime") is not None]
    if not own:
        return []
    k = max(int(v["regime"]) for v in own)
    return [v for v in own if int(v["regime"]) == k]


def project(valid: Sequence[Mapping[str, Any]], value: float, target: float, *, recent: int = RECENT,
            change: Mapping[str, Any] | None = None) -> dict:
    """How far ``value`` (the weights' score on the entry's split) is from ``target`` (the paper's), and at
    the curve's recent rate how many more core-hours that would take.

    ``valid``: validation points {"step", "cpu_hours", "loss", "regime"} in the same unit as ``value``
    (the run's own validation set may be a subset of the entry's split: the *rate* is taken from it, the
    *gap* from ``value``). Returns {"gap", "reached", "since_step", "validations", "rate_recent",
    "rate_stretch", "hours", "levelling"}; rates are the loss's fall per core-hour (positive = improving),
    ``hours`` is None where the recent rate is not an improvement or there are under 3 validations;
    ``levelling`` is None where the stretch has no more than ``recent`` validations (nothing to compare).
    ``change``: the change of schedule that began the current stretch ({"step", "changed": {key: [old, new]}},
    as training_status's ``schedule_changes`` lists them), reported as ``change``; None for a run's start."""
    gap = float(value) - float(target)
    out: dict[str, Any] = {"gap": gap, "reached": gap <= 0, "since_step": None, "change": None, "validations": 0,
                           "rate_recent": None, "rate_stretch": None, "hours": None, "levelling": None}
    stretch = current_stretch(valid)
    if not stretch:
        return out
    out["since_step"] = int(change["step"]) if change else int(stretch[0]["step"])
    out["change"] = dict(change) if change else None
    out["validations"] = len(stretch)
    if len(stretch) < 3:
        return out
    s_recent, s_all = _slope(stretch[-recent:]), _slope(stretch)
    out["rate_recent"] = -s_recent if s_recent is not None else None
    out["rate_stretch"] = -s_all if s_all is not None else None
    # with no more validations than the recent fit takes, both fits are the same points: nothing to compare
    if len(stretch) > recent and out["rate_recent"] is not None and out["rate_stretch"] is not None:
        out["levelling"] = out["rate_recent"] < out["rate_stretch"]
    if not out["reached"] and out["rate_recent"] is not None and out["rate_recent"] > 0:
        out["hours"] = gap / out["rate_recent"]
    return out


def _g(x: Any) -> str:
    return format(x, "g") if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def _moved(rate: float, unit: str, per: str) -> str:
    """A fall per hour (positive = improving) in words: "fell by 0.8 bits/char per core-hour", or "rose by" where
    the loss went up (never "fell by -0.2")."""
    return f"{'fell' if rate >= 0 else 'rose'} by {abs(rate):.3g} {unit} per {per}"


def after_weights(after: Mapping[str, Any] | None, unit: str) -> tuple[str, bool] | None:
    """What a run did after the weights a card shows (``training_status``'s ``after``: its validations past
    their step) in one sentence, and whether it validated better later; None where it did not go on."""
    if not after or not after.get("validations"):
        return None
    n, here = int(after["validations"]), after.get("loss_at_weights")
    text = (f"The run went on past these weights to step {int(after['to_step']):,} ({n} more validation"
            f"{'s' if n > 1 else ''}, {float(after['cpu_hours']):.2g} more core-hours)")
    best, at = float(after["best_loss"]), int(after["best_step"])
    if here is not None and best < float(here):
        return (text + f" and validated better there ({best:.5g} {unit} at step {at:,}, against {float(here):.5g} "
                "at these weights): these are not its best weights.", True)
    vs = f", against {float(here):.5g} at these weights" if here is not None else ""
    return text + f" without a better validation (its best after them: {best:.5g} {unit} at step {at:,}{vs}).", False


def describe(p: Mapping[str, Any], unit: str, target_name: str = "the paper's value") -> str:
    """One paragraph of :func:`project`'s answer, with its units, and what the run did after the weights where
    ``p`` has ``after`` (:func:`after_weights`)."""
    if p["reached"]:
        return f"These weights are {-p['gap']:.4g} {unit} better than {target_name}."
    text = _describe_gap(p, unit, target_name)
    later = after_weights(p.get("after"), unit)
    if later is None:
        return text
    sentence, better = later
    if not better and p.get("hours") is not None:
        sentence += " That projection does not hold: the run has levelled off."
    return f"{text} {sentence}"


def _describe_gap(p: Mapping[str, Any], unit: str, target_name: str) -> str:
    text = f"{p['gap']:.4g} {unit} to go to {target_name}."
    if p["validations"] < 3 or p["rate_recent"] is None:
        return text + (f" Too few validations since step {p['since_step']:,} (the start of this stretch of the "
                       "schedule) to measure a rate." if p["since_step"] is not None
                       else " No validation curve to measure a rate on.")
    n = min(RECENT, p["validations"])
    over_all = (f" ({_moved(p['rate_stretch'], unit, 'core-hour')} over all {p['validations']})"
                if p["validations"] > n and p["rate_stretch"] is not None else "")
    what = "; ".join(f"{k} {_g(a)} → {_g(b)}" for k, (a, b) in (p.get("change") or {}).get("changed", {}).items())
    since = (f"Since the last change of schedule (step {p['since_step']:,}{': ' + what if what else ''})"
             if p.get("change") else f"Since this run's start (first validation at step {p['since_step']:,})")
    moved = _moved(p["rate_recent"], unit, "core-hour")
    text += f" {since} the validation loss {moved} over its last {n} validations{over_all}."
    if p["hours"] is None:
        return text + " At that rate it does not get there: this schedule has levelled off."
    text += f" At the recent rate that is about {p['hours']:.3g} more core-hours"
    if p["levelling"] is None:
        return text + (f"; with only {p['validations']} validations in this stretch there are too few to tell "
                       "whether it is levelling off.")
    return text + ("; the rate is falling, so for this schedule that is a lower bound." if p["levelling"]
                   else "; the rate is not falling yet.")


__all__ = ["project", "describe", "after_weights", "current_stretch", "is_schedule_field", "RECENT", "SCHEDULE_PREFIXES"]
