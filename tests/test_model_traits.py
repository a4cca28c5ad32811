"""What a network is (modality, conditional) is declared by its class and asked through the model registry, by
network or by family name; code outside seqbench.models never compares family strings (issue #17)."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from seqbench.errors import UnknownNameError
from seqbench.models import MODELS, SeqModel, build_model, is_conditional, is_handwriting, is_text, modality_of

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class BagConfig:
    vocab_size: int = 5
    hidden_size: int = 4
    unit: str = "char"


class BagOfSymbols(SeqModel):
    """A tiny text family that exists only in this file: an embedding and a linear read-out."""

    family = "test-bag-of-symbols"
    config_class = BagConfig
    modality = "text"

    def __init__(self, config: BagConfig):
        super().__init__(config)
        self.unit = config.unit
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.output = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, tokens, state=None):
        return self.output(self.embed(tokens)), state


@dataclasses.dataclass
class PenConfig:
    input_size: int = 3
    n_mixtures: int = 2
    vocab_size: int = 4


class ConditionalPen(SeqModel):
    """A tiny handwriting family that reads a transcript, defined here alone."""

    family = "test-conditional-pen"
    config_class = PenConfig
    modality = "handwriting"
    conditional = True
    unit = "point"


class Undeclared(SeqModel):
    family = "test-undeclared"
    config_class = BagConfig


@pytest.fixture
def registered(monkeypatch):
    """The three test families in the registry for one test (MODELS has no remove: patch its table)."""
    for cls in (BagOfSymbols, ConditionalPen, Undeclared):
        monkeypatch.setitem(MODELS._items, cls.family, cls)
    return MODELS


def test_the_built_in_networks_declare_their_traits():
    want = {"lstm-lm": ("text", False), "handwriting-prediction": ("handwriting", False),
            "handwriting-synthesis": ("handwriting", True)}
    assert set(want) <= set(MODELS.names())
    for family, (modality, conditional) in want.items():
        cls = MODELS.get(family)
        assert (cls.modality, cls.conditional) == (modality, conditional)
        assert modality_of(family) == modality_of(cls) == modality
        assert is_conditional(family) is is_conditional(cls) is conditional
        assert is_text(family) == (modality == "text") and is_handwriting(family) == (modality == "handwriting")
    lm = build_model("lstm-lm", vocab_size=5, hidden_size=4, num_layers=1)
    syn = build_model("handwriting-synthesis", hidden_size=4, num_layers=1, n_mixtures=2, vocab_size=5)
    pred = build_model("handwriting-prediction", hidden_size=4, num_layers=1, n_mixtures=2)
    assert is_text(lm) and not is_handwriting(lm) and not is_conditional(lm)
    assert is_handwriting(syn) and is_conditional(syn) and not is_text(syn)
    assert is_handwriting(pred) and not is_conditional(pred)


def test_a_family_defined_here_gets_its_traits_by_name_and_by_instance(registered):
    bag = build_model("test-bag-of-symbols", vocab_size=6)
    assert isinstance(bag, BagOfSymbols)
    assert modality_of("test-bag-of-symbols") == modality_of(bag) == modality_of(BagOfSymbols) == "text"
    assert is_text("test-bag-of-symbols") and is_text(bag)
    assert not is_handwriting(bag) and not is_conditional("test-bag-of-symbols") and not is_conditional(bag)

    pen = ConditionalPen(PenConfig())
    assert is_handwriting("test-conditional-pen") and is_handwriting(pen)
    assert is_conditional("test-conditional-pen") and is_conditional(pen) and not is_text(pen)

    # a class that declares nothing, and a plain torch module with only score(): neither text nor handwriting
    for x in ("test-undeclared", Undeclared(BagConfig()), nn.Linear(2, 2)):
        assert modality_of(x) == "" and not is_text(x) and not is_handwriting(x) and not is_conditional(x)


def test_an_unknown_family_name_is_the_registrys_error():
    with pytest.raises(UnknownNameError, match="Did you mean 'lstm-lm'"):
        is_text("lstm-lmm")
    with pytest.raises(UnknownNameError, match="unknown model family"):
        is_conditional("no-such-family")


def test_the_config_checks_follow_the_traits(registered):
    from seqbench.errors import SeqbenchError

    with pytest.raises(SeqbenchError, match="unit='bits' builds no network"):
        build_model("test-bag-of-symbols", unit="bits")  # a text family's unit is char, byte or word
    from seqbench.models import make_config

    with pytest.raises(SeqbenchError, match="a handwriting network reads"):
        make_config("test-conditional-pen", input_size=2)


def test_the_evaluator_and_the_recipes_dispatch_on_the_traits(registered):
    from seqbench.evaluation.evaluator import score_text
    from seqbench.training.recipes import get_recipe

    torch.manual_seed(0)
    bag = build_model("test-bag-of-symbols")
    tokens = torch.randint(0, 5, (2, 6))
    batch = {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "mask": torch.ones(2, 5, dtype=torch.bool)}
    out, _ = score_text(bag, batch, None)
    assert set(out) == {"nll", "n", "errors"}  # the text path: cross-entropy of the logits, argmax errors
    logits, _ = bag(batch["inputs"])
    want = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch["targets"], reduction="none").sum(1)
    assert torch.allclose(out["nll"], want)

    text, hw = get_recipe("tiny-text"), get_recipe("tiny-synthesis")
    assert text.replace(family="test-bag-of-symbols").unit == "bits/char"
    assert hw.replace(family="test-conditional-pen").unit == "nats/line"


def test_no_family_strings_decide_behaviour_outside_the_models():
    """The check of issue #17: no comparison with a family name in seqbench/ or cli/ outside seqbench/models/."""
    pattern = re.compile(r"family *(==|!=|in) *\(?[\"']|startswith\(\"handwriting|== \"lstm-lm\"|"
                         r"\"handwriting-(synthesis|prediction)\" *(==|in)|family\.startswith|fam ==|fam\.startswith")
    files = [p for d in ("seqbench", "cli") for p in sorted((ROOT / d).rglob("*.py"))
             if not p.relative_to(ROOT).as_posix().startswith("seqbench/models/")]
    assert len(files) > 20
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in files
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not hits, "\n".join(hits)


def test_the_networks_answer_for_their_own_scoring():
    """The evaluator computes no loss (issue #17): it asks the network's score_statistics; the text
    cross-entropy exists once (models/lm.py) and the mixture math only in models/mdn.py."""
    src = (ROOT / "seqbench" / "evaluation" / "evaluator.py").read_text(encoding="utf-8")
    for word in ("cross_entropy", "mixture_nll", "squared_error", "mdn", "is_text", "is_handwriting", ".argmax("):
        assert word not in src, word
    ce = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "seqbench").rglob("*.py"))
          if "F.cross_entropy(" in p.read_text(encoding="utf-8")]
    assert ce == ["seqbench/models/lm.py"]

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    pts = torch.cat([torch.randn(2, 9, 2, generator=g), (torch.rand(2, 9, 1, generator=g) < 0.3).float()], -1)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    hw = {"inputs": torch.cat([torch.zeros(2, 1, 3), pts[:, :-1]], 1), "targets": pts, "mask": mask,
          "chars": torch.randint(0, 5, (2, 4), generator=g), "char_mask": torch.ones(2, 4, dtype=torch.bool)}
    tokens = torch.randint(0, 5, (2, 10), generator=g)
    text = {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "mask": mask}
    nets = [(build_model("lstm-lm", vocab_size=5, hidden_size=4, num_layers=2), text, "errors"),
            (build_model("handwriting-prediction", hidden_size=4, num_layers=2, n_mixtures=2), hw, "sse"),
            (build_model("handwriting-synthesis", hidden_size=4, num_layers=2, n_mixtures=2, vocab_size=5), hw, "sse")]
    with torch.no_grad():
        for net, batch, extra in nets:
            whole, _ = net.score_statistics(batch)
            assert set(whole) == {"nll", "n", extra}
            nll, n = net.score(batch)
            assert torch.equal(nll, whole["nll"]) and torch.equal(n, whole["n"]) and n.tolist() == [9, 6]
            # two pieces in time, the state carried: the whole batch's statistics
            cut = [{k: v[:, sl] if k in ("inputs", "targets", "mask") else v for k, v in batch.items()}
                   for sl in (slice(0, 4), slice(4, None))]
            first, state = net.score_statistics(cut[0])
            second, _ = net.score_statistics(cut[1], state)
            for k in whole:
                torch.testing.assert_close(first[k] + second[k], whole[k], rtol=1e-5, atol=1e-5)
