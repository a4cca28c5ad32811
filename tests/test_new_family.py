"""A new network family needs only SeqModel's interface (issue #17): two tiny families defined in this file alone,
registered (not edited into seqbench), each run through train → save → load → evaluate → sample.

- ``test-gru-lm``: a GRU language model (text: symbol ids in, logits out; its state one batch-first tensor);
- ``test-gru-pen``: a GRU handwriting prediction network with the mixture density output of
  :mod:`seqbench.models.mdn` (no stepper of its own: the samplers step its ``forward``).

Neither has LSTM layers, (h, c) pairs, a ``stepper`` or a ``score`` of its own; seqbench scores, trains, saves,
loads, evaluates and samples them from what they declare (``family``, ``config_class``, ``modality``, ``unit``)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import seqbench
from seqbench.training import train
from seqbench.models import MODELS, SeqModel, mdn
from seqbench.training.recipes import DataSpec, Recipe


# -- the two families, here and nowhere else ---------------------------------------------------------------------------
@dataclasses.dataclass
class GRULMConfig:
    vocab_size: int = 50
    hidden_size: int = 16
    unit: str = "char"


class GRULM(SeqModel):
    """Embedding → one GRU layer → linear read-out. ``forward(tokens (B, T), state (B, 1, H) or None)``."""

    family = "test-gru-lm"
    config_class = GRULMConfig
    modality = "text"

    def __init__(self, config: GRULMConfig):
        super().__init__(config)
        self.unit = config.unit
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.rnn = nn.GRU(config.hidden_size, config.hidden_size, batch_first=True)
        self.output = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, tokens: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h0 = None if state is None else state.transpose(0, 1).contiguous()  # torch's GRU wants (1, B, H)
        out, h = self.rnn(self.embed(tokens), h0)
        return self._clip_output(self.output(out)), h.transpose(0, 1)  # the state batch-first: (B, 1, H)


@dataclasses.dataclass
class GRUPenConfig:
    hidden_size: int = 16
    n_mixtures: int = 2
    input_size: int = 3


class GRUPen(SeqModel):
    """(Δx, Δy, end-of-stroke) → one GRU layer → the 1 + 6M mixture density outputs (eqs. 17-23)."""

    family = "test-gru-pen"
    config_class = GRUPenConfig
    modality = "handwriting"
    unit = "point"

    def __init__(self, config: GRUPenConfig):
        super().__init__(config)
        self.rnn = nn.GRU(config.input_size, config.hidden_size, batch_first=True)
        self.output = nn.Linear(config.hidden_size, mdn.output_size(config.n_mixtures))

    def forward(self, inputs: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        out, h = self.rnn(inputs, state)  # a state seqbench never looks into: torch's (1, B, H)
        return self._clip_output(self.output(out)), h


@pytest.fixture
def families(monkeypatch):
    """The two families in the registry for one test, gone afterwards (MODELS has no remove: patch its table)."""
    for cls in (GRULM, GRUPen):
        monkeypatch.setitem(MODELS._items, cls.family, cls)
    yield
    for cls in (GRULM, GRUPen):
        assert MODELS._items.get(cls.family) is cls


def _ptb_symbols(ptb_root) -> int:
    return seqbench.load_dataset("ptb", "char", "valid", root=ptb_root).info["configs"]["char"]["vocab_size"]


def test_a_text_family_defined_here_trains_saves_loads_evaluates_and_samples(families, ptb_root, tmp_path):
    V = _ptb_symbols(ptb_root)
    recipe = Recipe(name="test-gru-lm-ptb", description="a GRU LM defined in the test file", family="test-gru-lm",
                    model=dict(vocab_size=V, hidden_size=16, unit="char"),
                    data=DataSpec("ptb", "char", batch_size=4, window=20, root=str(ptb_root)),
                    optimizer="adam", optimizer_args=dict(lr=1e-2), max_epochs=50, max_steps=12, eval_every=6,
                    patience=100)
    assert recipe.unit == "bits/char"
    run = tmp_path / "run"
    result = train(recipe, run, quiet=True)
    assert result.steps == 12 and np.isfinite(result.best_valid)
    # the carried state (one tensor, not (h, c) pairs) is checkpointed in last/ and a resumed run continues
    from safetensors.torch import load_file

    saved = load_file(str(run / "last" / "training_state.safetensors"))
    assert saved["carry"].shape == (4, 1, 16)
    resumed = train(None, run, resume=True, max_steps=14, quiet=True)
    assert resumed.steps == 14
    best = run / "best"
    cfg = json.loads((best / "config.json").read_text())
    assert cfg["model"]["family"] == "test-gru-lm" and cfg["symbols"]  # the PTB symbols, for the sampler

    # load: the folder names its family; the registry builds it
    from seqbench.models.io import load_pretrained

    net = load_pretrained(best)
    assert isinstance(net, GRULM) and net.config == GRULMConfig(vocab_size=V, hidden_size=16)

    # evaluate: the folder (its recipe names the data) and the loaded network give the same numbers
    r = seqbench.evaluate(str(best), root=ptb_root)
    assert (r.dataset["name"], r.dataset["config"], r.dataset["split"]) == ("ptb", "char", "valid")
    assert r.model["family"] == "test-gru-lm" and r.metrics["bits_per_char"]["value"] > 0
    r2 = seqbench.evaluate(net, "ptb", "char", "valid", root=ptb_root, window=7, batch_size=3)
    assert r2.metrics["bits_per_char"]["value"] == pytest.approx(r.metrics["bits_per_char"]["value"], rel=1e-5)
    # and they are the network's own cross-entropy, computed here by hand
    from seqbench.data.streams import load_tokens

    tokens = load_tokens(seqbench.load_dataset("ptb", "char", "valid", root=ptb_root)).long()
    with torch.no_grad():
        logits, _ = net(tokens[None, :-1])
        nats = torch.nn.functional.cross_entropy(logits[0], tokens[1:], reduction="sum")
    assert r.totals["nll_nats"] == pytest.approx(float(nats), rel=1e-5)

    # sample: text from the folder (symbols from its config.json), primed, several lines
    s = seqbench.sample(str(best), prime="the_", length=15, n=3, seed=0, temperature=0.7)
    assert len(s) == 3 and all(len(t) == 15 for t in s.texts)
    assert s.texts == seqbench.sample(net, prime="the_", length=15, n=3, seed=0, temperature=0.7,
                                      symbols=cfg["symbols"]).texts
    assert seqbench.sample(str(best), prime="the_", length=10, temperature=0).texts[0]  # greedy

    # the commands too (in this process, where the family is registered)
    from click.testing import CliRunner

    from seqbench.cli.main import cli

    out = CliRunner().invoke(cli, ["sample", "--model", str(best), "--prime-text", "the_", "--length", "15",
                                   "-n", "3", "--seed", "0", "--temperature", "0.7"])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == ["the_" + t for t in s.texts]
    out = CliRunner().invoke(cli, ["eval", "--model", str(best), "--root", str(ptb_root), "--json", "-q"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["totals"]["nll_nats"] == pytest.approx(r.totals["nll_nats"], rel=1e-6)


def test_a_handwriting_family_defined_here_trains_saves_loads_evaluates_and_samples(families, iam_root, tmp_path):
    recipe = Recipe(name="test-gru-pen-iam", description="a GRU mixture density network defined in the test file",
                    family="test-gru-pen", model=dict(hidden_size=16, n_mixtures=2),
                    data=DataSpec("iam-ondb", "graves2013", batch_size=4, root=str(iam_root)),
                    optimizer="adam", optimizer_args=dict(lr=3e-3), clip_output=100.0, weight_noise="adaptive",
                    max_epochs=50, max_steps=6, eval_every=3, patience=100)  # noise on the GRU's weights too
    assert recipe.unit == "nats/line"
    run = tmp_path / "run"
    result = train(recipe, run, quiet=True)
    assert result.steps == 6 and np.isfinite(result.best_valid)
    best = run / "best"
    cfg = json.loads((best / "config.json").read_text())
    assert cfg["model"]["family"] == "test-gru-pen" and "offset_stats" in cfg  # samples in board units

    from seqbench.zoo.hub import load_model

    net, resolved = load_model(str(best))
    assert isinstance(net, GRUPen) and resolved.folder == best

    r = seqbench.evaluate(str(best), root=iam_root)
    assert (r.dataset["name"], r.dataset["split"]) == ("iam-ondb", "valid") and r.model["family"] == "test-gru-pen"
    assert np.isfinite(r.metrics["nll_nats_per_line"]["value"])
    r2 = seqbench.evaluate(net, "iam-ondb", "graves2013", "valid", root=iam_root, batch_size=1)
    assert r2.totals["nll_nats"] == pytest.approx(r.totals["nll_nats"], rel=1e-5)

    # sample: unconditional handwriting through the default one-step interface (the network's forward)
    s = seqbench.sample(str(best), steps=25, n=2, bias=0.5, seed=0)
    assert len(s) == 2 and [o.shape for o in s.offsets] == [(25, 3), (25, 3)] and s.stats is not None
    assert set(np.unique(s.offsets[0][:, 2])) <= {0.0, 1.0} and np.isfinite(s.strokes(0)).all()
    from seqbench.sampling import generate

    ref = generate(net, 25, n=2, bias=0.5, seed=0, stepper="reference")
    for a, b in zip(s.offsets, ref.offsets):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # a priming line of the data set the network was trained on, then its own points
    row = seqbench.load_dataset("iam-ondb", "graves2013", "train", root=iam_root)[0]
    p = seqbench.sample(str(best), steps=10, seed=0, prime=row["id"], data_root=iam_root)
    assert p.prime_len > 0 and p.offsets[0].shape == (p.prime_len + 10, 3)

    from click.testing import CliRunner

    from seqbench.cli.main import cli

    out = CliRunner().invoke(cli, ["sample", "--model", str(best), "--steps", "25", "-n", "2", "--bias", "0.5",
                                   "--arrays", str(tmp_path / "s.npz")])
    assert out.exit_code == 0, out.output
    assert "line 2: 25 points" in out.output and (tmp_path / "s.npz").is_file()


def test_a_carried_state_of_any_shape_round_trips_through_a_checkpoint():
    from seqbench.training.trainer import _state_from, _state_tensors

    g = torch.Generator().manual_seed(0)
    lstm = [(torch.randn(2, 3, generator=g), torch.randn(2, 3, generator=g)) for _ in range(2)]
    assert sorted(_state_tensors(lstm, "carry")) == ["carry.0.c", "carry.0.h", "carry.1.c", "carry.1.h"]  # as before
    for state in (lstm, torch.randn(2, 1, 4, generator=g), [torch.randn(2, 4, generator=g), lstm]):
        back = _state_from(_state_tensors(state, "carry"), "carry", "cpu")
        flat = lambda s: [s] if torch.is_tensor(s) else [t for x in s for t in flat(x)]  # noqa: E731
        assert len(flat(back)) == len(flat(state)) and all(torch.equal(a, b) for a, b in zip(flat(back), flat(state)))
    assert _state_tensors(None, "carry") == {} and _state_from({}, "carry", "cpu") is None


def test_the_families_are_gone_outside_their_fixture():
    """Runs after the tests above (file order): the registry holds the built-in families only."""
    assert "test-gru-lm" not in MODELS.names() and "test-gru-pen" not in MODELS.names()
