"""seqbench.evaluation.breakdown: a handwriting network's loss and squared error by kind of step."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from seqbench.data.iam.torch import collate
from seqbench.data.iam.transform import OffsetStats
from seqbench.data.iam.vocab import GRAVES57
from seqbench.errors import SeqbenchError
from seqbench.evaluation.breakdown import describe, step_breakdown
from seqbench.models import build_model

STATS = OffsetStats(mean_dx=0.0, std_dx=10.0, mean_dy=0.0, std_dy=10.0, n_lines=1, n_offsets=1)


class Lines:
    """What step_breakdown reads of a torch view of IAM-OnDB: items, stats, transform name and vocabulary.

    Every line: pen-down steps of 1 normalised unit (10 board units), a pen-up move of 25 units (250 board units)
    after each third point, and one 60-unit move (600 board units) after the line's first stroke."""

    def __init__(self, n: int, T: int):
        self.stats, self.transform, self.vocab = STATS, SimpleNamespace(name="graves2013-offsets-v1"), GRAVES57
        self.items = []
        for k in range(n):
            s = torch.zeros(T, 3)
            s[:, 0] = 1.0
            s[2::3, 2] = 1.0  # the pen lifts after points 2, 5, 8, ...: the next step is a move in the air
            s[3::3, 0] = 25.0
            s[3, 0] = 60.0
            self.items.append({"id": f"l{k}", "strokes": s, "text": "ab", "chars": torch.tensor([1, 2])})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _net(family="handwriting-prediction"):
    torch.manual_seed(0)
    return build_model(family, hidden_size=8, num_layers=1, n_mixtures=2)


def test_the_parts_add_up_to_the_networks_own_score():
    net, lines = _net(), Lines(5, 13)
    r = step_breakdown(net, lines, lines=None, batch_size=2)
    with torch.no_grad():
        stats, _ = net.score_statistics(collate(lines.items))
    assert r["lines"] == 5 and r["points"] == 5 * 13
    assert r["nll_nats_per_line"] == pytest.approx(float(stats["nll"].sum()) / 5, rel=1e-5)
    assert r["sse_per_point"] == pytest.approx(float(stats["sse"].sum()) / (5 * 13), rel=1e-5)
    up, down = r["pen_up"], r["pen_down"]
    assert up["points_share"] == pytest.approx(4 / 13)  # after points 2, 5, 8, 11 of 13
    assert up["points_share"] + down["points_share"] == pytest.approx(1)
    assert up["nll_nats_per_line"] + down["nll_nats_per_line"] == pytest.approx(r["nll_nats_per_line"])
    assert up["sse_share"] + down["sse_share"] == pytest.approx(1)
    assert up["sse_share"] > 0.9  # an untrained network cannot guess the long moves


def test_step_lengths_are_in_board_units():
    r = step_breakdown(_net(), Lines(2, 13), thresholds=(100.0, 300.0, 1000.0))
    longer = {row["board_units"]: row for row in r["longer_than"]}
    assert longer[100.0]["points_share"] == pytest.approx(4 / 13)  # the moves of 250 and 600 board units
    assert longer[300.0]["points_share"] == pytest.approx(1 / 13)  # the 600-unit move alone
    assert longer[1000.0]["points_share"] == 0 and longer[1000.0]["nll_nats_per_line"] == 0
    for row in r["longer_than"]:
        assert row["nll_nats_per_line"] + row["others_nll_nats_per_line"] == pytest.approx(r["nll_nats_per_line"])
    text = "\n".join(describe(r))
    assert "pen-up moves" in text and "steps > 300 board units: 7.69 % of the points" in text


def test_synthesis_networks_read_their_text():
    r = step_breakdown(_net("handwriting-synthesis"), Lines(3, 10), lines=2)
    assert r["lines"] == 2 and r["points"] == 20


def test_refusals_name_the_problem():
    with pytest.raises(SeqbenchError, match="for handwriting networks"):
        step_breakdown(build_model("lstm-lm", vocab_size=5, hidden_size=4, num_layers=1), Lines(1, 5))
    with pytest.raises(SeqbenchError, match="lines must be at least 1"):
        step_breakdown(_net(), Lines(1, 5), lines=0)
    with pytest.raises(SeqbenchError, match="thresholds must be finite"):
        step_breakdown(_net(), Lines(1, 5), thresholds=(float("nan"),))
    other = {"graves2013-offsets-v1": {**STATS.to_dict(), "std_dx": 41.8}}
    with pytest.raises(SeqbenchError, match="other statistics"):
        step_breakdown(_net(), Lines(1, 5), offset_stats=other, where="zoo/x/config.json")
    small = build_model("handwriting-synthesis", hidden_size=8, num_layers=1, n_mixtures=2, vocab_size=5)
    with pytest.raises(SeqbenchError, match="5 character classes"):
        step_breakdown(small, Lines(1, 5))
