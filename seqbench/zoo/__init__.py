"""The model zoo: one registry entry per pretrained model (after timm's pretrained configs).

An entry says what the model is (family + config), how it was trained (recipe), where it is evaluated (dataset,
configuration, split, metrics, protocol), where its files live (Hugging Face Hub repo id + pinned revision, and
the sha256 of its weights), which numbers it must reproduce, and its license. ``zoo/NAME/`` in the checkout
holds exactly what the Hub repo holds (config.json, model.safetensors, README.md) and serves as the offline
mirror.

An entry whose model has not been trained yet has ``revision=None`` and ``weights_sha256=None``: it documents
the paper's setting (and its numbers, through ``paper``) and resolving it explains how to train it.

>>> get_entry("synth-3layer").dataset, get_entry("synth-3layer").split
('iam-ondb', 'valid')
"""
from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seqbench.registry import Registry

#: Hub organisation of the seqbench zoo (repo ids are ``HUB_ORG/NAME``).
HUB_ORG = "seqbench"

IAM_LICENSE = ("Weights trained on IAM-OnDB: the database is free for non-commercial research only "
               "(https://fki.tic.heia-fr.ch/databases/iam-on-line-handwriting-database); the same restriction "
               "applies to these weights. Code: Apache-2.0.")
PTB_LICENSE = ("Weights trained on the Penn Treebank (Mikolov's preprocessing of LDC99T42; LDC license terms "
               "apply to the text). Code: Apache-2.0.")
ENWIK8_LICENSE = "Weights trained on enwik8 (Wikipedia text, CC BY-SA). Code: Apache-2.0."


@dataclass(frozen=True)
class ZooEntry:
    """A pretrained model of the zoo. ``expected`` holds the metric values ``seqbench eval --model zoo:NAME``
    must reproduce (within ``tolerance``, relative), measured by ``recipe``'s run; empty until trained."""

    name: str
    family: str  # seqbench.models registry name
    config: dict[str, Any]  # the family's config fields
    recipe: str  # how the weights were (or are to be) trained
    dataset: str
    dataset_config: str
    split: str
    metrics: tuple[str, ...]
    description: str
    license: str
    hub_repo: str = ""
    revision: str | None = None  # pinned commit of hub_repo; None = not published yet
    weights_sha256: str | None = None
    expected: dict[str, float] = field(default_factory=dict)
    tolerance: float = 1e-4
    protocol: str = "static"  # "static" or "dynamic"
    eval_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"chunk": 10000} for enwik8
    paper: str | None = None  # id of the paper's row this model reproduces (seqbench.evaluation.paper)
    smoke: bool = False  # a tiny smoke-test model, not a benchmark result
    data_fingerprint: str | None = None  # sha256 of the split the expected values were measured on
    # a model still in training: {"status": "in training", "steps", "epochs", "cpu_hours", "recipe"} of the run
    # its weights come from (the card in zoo/NAME says the same, with the curve); empty once it is finished
    training: dict[str, Any] = field(default_factory=dict)
    # text models: the values of `seqbench eval --model zoo:NAME --dynamic` (SGD at eval_options["dynamic_lr"],
    # chosen on the validation split); empty where the model has no measured dynamic result
    expected_dynamic: dict[str, float] = field(default_factory=dict)
    # the quick check (`seqbench zoo verify --quick`): {"limit": N, "expected": {...}, "expected_dynamic": {...}},
    # the values of `seqbench eval --model zoo:NAME --limit N [--dynamic]` (the first N lines or symbols of the
    # split), measured and printed to pin by `seqbench zoo export`
    quick: dict[str, Any] = field(default_factory=dict)

    def status(self, mirrored: bool = False) -> str:
        """One line on where the model stands (``seqbench zoo list``): smoke model, in training (epochs,
        CPU-hours), published, or not trained; ``mirrored``: zoo/NAME holds it."""
        if self.smoke:
            s = "smoke-test model, not a benchmark"
        elif self.training:
            t = self.training
            s = f"{t.get('status', 'in training')}: {t.get('epochs', 0):.2f} epochs, {t.get('cpu_hours', 0):.1f} CPU-hours"
        elif self.published:
            s = "published @" + str(self.revision)[:12]
        else:
            s = "not on the Hub" if mirrored else "not yet trained"
        return s + (", in zoo/" if mirrored else "")

    @property
    def repo_id(self) -> str:
        return self.hub_repo or f"{HUB_ORG}/{self.name}"

    @property
    def published(self) -> bool:
        return self.revision is not None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["metrics"] = list(self.metrics)
        d["repo_id"] = self.repo_id
        return d


ZOO: Registry[ZooEntry] = Registry("zoo model")


def register(entry: ZooEntry) -> ZooEntry:
    return ZOO.add(entry.name, entry)


def get_entry(name: str) -> ZooEntry:
    """The zoo entry ``name`` (an unknown name raises with close matches)."""
    return ZOO.get(name)


def entries() -> list[ZooEntry]:
    return [ZOO.get(n) for n in ZOO.names()]


def mirror_dirs() -> list[Path]:
    """Folders searched for ``NAME/`` mirrors of zoo repos, in order: ``$SEQBENCH_ZOO`` (os.pathsep-separated),
    the checkout's ``zoo/``, an installed copy under ``<prefix>/share/seqbench/zoo``."""
    out: list[Path] = []
    env = os.environ.get("SEQBENCH_ZOO")
    if env:
        out += [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    out.append(Path(__file__).resolve().parents[2] / "zoo")
    out.append(Path(sys.prefix) / "share" / "seqbench" / "zoo")
    return out


def mirror_folder(name: str) -> Path | None:
    """The first mirror folder ``zoo/NAME`` that holds a config.json, or None."""
    for d in mirror_dirs():
        if (d / name / "config.json").is_file():
            return d / name
    return None


_HW_METRICS = ("nll_nats_per_line", "sse_per_point", "nll_nats_per_point", "nll_nats_per_line_raw",
               "nll_nats_per_point_raw")
_NOT_TRAINED = "not yet trained: "


def _hw(name, family, layers, hidden, paper, reg, recipe, synthesis=False):
    # synthesis: the network reads a transcript (the K = 10 window over the 57 classes). Said here, in the table,
    # so that importing the zoo does not import torch to ask the model registry.
    cfg = {"hidden_size": hidden, "num_layers": layers, "n_mixtures": 20}
    if synthesis:
        cfg.update(n_window=10, vocab_size=57)
    kind = "synthesis" if synthesis else "prediction"
    return ZooEntry(
        name=name, family=family, config=cfg, recipe=recipe, dataset="iam-ondb", dataset_config="graves2013",
        split="valid", metrics=_HW_METRICS, license=IAM_LICENSE, paper=paper,
        description=f"{_NOT_TRAINED}handwriting {kind} network, {layers} × {hidden} LSTM, {reg} "
                    f"(Graves 2013, Table {4 if kind == 'synthesis' else 3})")


def _lm(name, config, vocab, hidden, layers, unit, dataset, split, paper, reg, recipe, metrics, **kw):
    return ZooEntry(
        name=name, family="lstm-lm",
        config={"vocab_size": vocab, "hidden_size": hidden, "num_layers": layers, "unit": unit},
        recipe=recipe, dataset=dataset, dataset_config=config, split=split, metrics=metrics,
        license=PTB_LICENSE if dataset == "ptb" else ENWIK8_LICENSE, paper=paper,
        description=f"{_NOT_TRAINED}{layers} × {hidden} LSTM {unit} model, {reg}", **kw)


# The paper's models (Graves 2013, Tables 1-4). None is trained yet: no revision, no weights, no expected values.
for _e in (
    _hw("pred-1layer", "handwriting-prediction", 1, 900, "table3-1layer", "no regularisation",
        "iam-prediction-1x900"),
    _hw("pred-3layer", "handwriting-prediction", 3, 400, "table3-3layer", "no regularisation",
        "iam-prediction-3x400"),
    _hw("pred-3layer-awn", "handwriting-prediction", 3, 400, "table3-3layer-awn", "adaptive weight noise",
        "iam-prediction-3x400-awn"),
    _hw("synth-3layer", "handwriting-synthesis", 3, 400, "table4-none", "no regularisation",
        "iam-synthesis-3x400", synthesis=True),
    _hw("synth-3layer-awn", "handwriting-synthesis", 3, 400, "table4-awn", "adaptive weight noise",
        "iam-synthesis-3x400-awn", synthesis=True),
    _lm("ptb-char", "char", 49, 1000, 1, "char", "ptb", "test", "table1-char-none-static", "no regularisation",
        "ptb-char-1x1000", ("bits_per_char", "perplexity", "error_rate")),
    _lm("ptb-char-wn", "char", 49, 1000, 1, "char", "ptb", "test", "table1-char-wn-static", "weight noise",
        "ptb-char-1x1000-wn", ("bits_per_char", "perplexity", "error_rate")),
    _lm("ptb-char-awn", "char", 49, 1000, 1, "char", "ptb", "test", "table1-char-awn-static",
        "adaptive weight noise", "ptb-char-1x1000-awn", ("bits_per_char", "perplexity", "error_rate")),
    _lm("ptb-word", "word", 10000, 1000, 1, "word", "ptb", "test", "table1-word-none-static", "no regularisation",
        "ptb-word-1x1000", ("perplexity", "bits_per_word", "error_rate")),
    _lm("ptb-word-wn", "word", 10000, 1000, 1, "word", "ptb", "test", "table1-word-wn-static", "weight noise",
        "ptb-word-1x1000-wn", ("perplexity", "bits_per_word", "error_rate")),
    # vocab 256: the prepared enwik8 stream holds raw bytes (205 of them occur; Sec. 3.2's 205 inputs)
    _lm("enwik8-7layer", "graves2013", 256, 700, 7, "byte", "enwik8", "valid", "table2-valid-static",
        "no regularisation", "enwik8-7x700", ("bits_per_byte", "error_rate"),
        # Sec. 3.2: 100-byte sequences, state reset every 100 sequences -> chunks of 10,000 bytes
        eval_options={"chunk": 10_000}),
):
    register(_e)


def _pin(name: str, **fields: Any) -> None:
    """Replace a paper entry by its trained state (what `seqbench zoo export` printed to pin)."""
    import dataclasses

    old = ZOO.get(name)
    ZOO._items[name] = dataclasses.replace(old, description=old.description.removeprefix(_NOT_TRAINED), **fields)


# Trained (or in training) on the project's 2-core CPU; the weights are in zoo/NAME (the offline mirror), not yet
# on the Hub (revision None). Numbers: `seqbench eval --model zoo:NAME` on the whole split, this checkout.
_TRAINED: dict[str, dict[str, Any]] = {
    "synth-3layer": dict(
        # the run: iam-synthesis-3x400-fast (truncated BPTT) from scratch, 2026-12-03; the weights of its best
        # validation, step 112,800 (restore-best halved the rate to 5e-4 at 67,200, 2.5e-4 at 79,200 and 1.25e-4
        # at 103,200)
        recipe="iam-synthesis-3x400-fast",
        weights_sha256="b80f403c681cba29cdcb0b87d30cdd2a419b82552bc3510d2bbede391c64a287",
        expected={"nll_nats_per_line": -1097.0982751859578, "nll_nats_per_line_raw": 3432.476574060324,
                  "nll_nats_per_point": -1.7780369798660265, "nll_nats_per_point_raw": 5.562920313741844,
                  "sse_per_point": 0.42841536500668304},
        data_fingerprint="94557d20d7ae0d7ad2ab00b17cc91f11168fab99ead04348e3b16d069ecc8b2b",
        # `seqbench zoo verify --quick`: `seqbench eval --model zoo:synth-3layer --limit 64`
        quick={"limit": 64,
               "expected": {"nll_nats_per_line": -883.7094169855118, "sse_per_point": 0.7061137833685627,
                            "nll_nats_per_point": -1.5970802441779222, "nll_nats_per_line_raw": 3178.248717991605,
                            "nll_nats_per_point_raw": 5.743877049429948}},
        training={"status": "in training: truncated BPTT from scratch (iam-synthesis-3x400-fast: 100-point chunks "
                            "of bucketed batches of 4, Adam 1e-3, restore-best; the rate halved to 5e-4 at step "
                            "67,200, 2.5e-4 at 79,200 and 1.25e-4 at 103,200), best validation at step 112,800; it "
                            "continues from its run folder",
                  "steps": 112800, "epochs": 6.105548037889039,
                  "cpu_hours": 6.060201388888888, "recipe": "iam-synthesis-3x400-fast"}),
    "pred-3layer": dict(
        # the run: iam-prediction-3x400 with data.bucket, data.batch_size=4, data.chunk=100, data.valid_limit=256,
        # optimizer=adam, optimizer_args.lr=1e-3, eval_every=2400, then lr_plateau=3 from step 34,854 on (what
        # iam-prediction-3x400-fast holds) and lr_plateau=1 from step 134,400; the weights of its best validation,
        # step 148,800
        weights_sha256="a3a86422e225c8806c349eb49db19c9e33ebda57b7928e5e0772b21a6a5fe865",
        expected={"nll_nats_per_line": -1042.2657681333837, "nll_nats_per_line_raw": 3487.3090811128977,
                  "nll_nats_per_point": -1.6891714448056272, "nll_nats_per_point_raw": 5.651785848802243,
                  "sse_per_point": 0.6806598056332809},
        data_fingerprint="94557d20d7ae0d7ad2ab00b17cc91f11168fab99ead04348e3b16d069ecc8b2b",
        # `seqbench zoo verify --quick`: `seqbench eval --model zoo:pred-3layer --limit 64`
        quick={"limit": 64,
               "expected": {"nll_nats_per_line": -837.7366528511047, "sse_per_point": 0.9631104595735962,
                            "nll_nats_per_point": -1.5139961534597663, "nll_nats_per_line_raw": 3224.2214821260122,
                            "nll_nats_per_point_raw": 5.826961140148104}},
        training={"status": "trained to Table 3's row: truncated BPTT (iam-prediction-3x400-fast: 100-point chunks "
                            "of bucketed batches of 4, Adam 1e-3, restore-best; the rate halved to 5e-4 at step "
                            "57,600, 2.5e-4 at 76,800, 1.25e-4 at 98,400, 6.25e-5 at 136,800 and 3.125e-5 at "
                            "144,000), best validation at step 148,800; the run folder can continue",
                  "steps": 148800, "epochs": 8.046287784567134,
                  "cpu_hours": 6.794534444444444, "recipe": "iam-prediction-3x400"}),
    "pred-1layer": dict(
        # the runs: iam-prediction-1x900-fast (truncated BPTT) from scratch, 2026-12-03, to step 26,400; continued from
        # those weights at Adam 5e-4, 2026-12-04 and 2026-12-05 (restore-best to 2.5e-4, 1.25e-4, 6.25e-5), weight
        # averaging (ema 0.999) from its step 67,855, to its best average at step 88,800; a third run from that
        # average on 2026-12-05 (Adam 1.25e-4, ema 0.9995): its average at its best validation, its step 16,800
        recipe="iam-prediction-1x900-fast",
        weights_sha256="7d10ae6b2e01d463b7ab160ac21e1a9bab3fc5d696d98ac7aa63628aff95e976",
        expected={"nll_nats_per_line": -1026.074487171518, "nll_nats_per_line_raw": 3503.5003620747634,
                  "nll_nats_per_point": -1.6629306813729088, "nll_nats_per_point_raw": 5.678026612234961,
                  "sse_per_point": 0.7009642226508463},
        data_fingerprint="94557d20d7ae0d7ad2ab00b17cc91f11168fab99ead04348e3b16d069ecc8b2b",
        # `seqbench zoo verify --quick`: `seqbench eval --model zoo:pred-1layer --limit 64`
        quick={"limit": 64,
               "expected": {"nll_nats_per_line": -818.3660361170769, "nll_nats_per_line_raw": 3243.59209886004,
                            "nll_nats_per_point": -1.4789886852707457, "nll_nats_per_point_raw": 5.861968608337124,
                            "sse_per_point": 1.0134424009181198}},
        training={"status": "trained: Table 3's row reached (truncated BPTT, iam-prediction-1x900-fast, with weight "
                            "averaging), 6.48 CPU-hours from scratch; training stopped on 2026-12-05 with the "
                            "validation level since the run's step 16,800",
                  "steps": 16800, "epochs": 0.9084518466446764, "cpu_hours": 6.475766666666667,
                  "recipe": "iam-prediction-1x900-fast"}),
    "ptb-char": dict(
        recipe="ptb-char-1x1000-fast",
        weights_sha256="22718164bdaa8e0c57052dca4a64c4ff6e6fdcd3ba1b823a4848717944e523d9",
        expected={"bits_per_char": 1.3533558245811326, "perplexity": 195.50461790695246,
                  "error_rate": 0.2895680810811422},
        # on the `_`-joined stream it trained on; dynamic: SGD lr 1e-3, chosen on the whole validation split
        # among 3e-4, 1e-3 and 3e-3 (1.37491, 1.36360, 1.36667 bits/char)
        eval_options={"dynamic_lr": 0.001, "join": "space"},
        expected_dynamic={"bits_per_char": 1.3306162493976617, "perplexity": 178.92052722662098,
                          "error_rate": 0.28606237045709854},
        data_fingerprint="818429806d673ab6c8dc717b68a464af63647c4905f144ee84f3e2592657b43a",
        # `seqbench zoo verify --quick`: `seqbench eval --model zoo:ptb-char --limit 10000` (static and dynamic)
        quick={"limit": 10000,
               "expected": {"bits_per_char": 1.3684115034832776, "perplexity": 207.3220320490674,
                            "error_rate": 0.2921},
               "expected_dynamic": {"bits_per_char": 1.3472655860525165, "perplexity": 190.9178702476018,
                                    "error_rate": 0.2873}},
        training={"status": "stopped at its level: ptb-char-1x1000-fast on the `_`-joined stream with random window "
                            "offsets, batches of 64, norm clipping 1.0 and restore-best, weight averaging (ema "
                            "0.995) from step 1,709; from 5.4 epochs on the network overfits (its trained weights' "
                            "validation loss rose while their training loss fell) and two halvings of the rate "
                            "found no better average; stopped on 2026-12-05 at step 5,620",
                  "steps": 4200, "epochs": 5.363984674329502, "cpu_hours": 2.4003238888888885,
                  "recipe": "ptb-char-1x1000-fast"}),
    "ptb-char-wn": dict(
        recipe="ptb-char-1x1000-wn-fast",
        weights_sha256="f1cf24cca2d6179ab6e37698c35f4b078cceed7c034e5cd94f14eda6f8cfd0c2",
        expected={"bits_per_char": 1.3661205690871137, "perplexity": 205.47880478398528,
                  "error_rate": 0.2928455023608735},
        # dynamic: SGD 3e-3, chosen on the whole validation split among 3e-4, 1e-3, 3e-3 (1.39015, 1.37512,
        # 1.36551); 1e-2, scored afterwards on the same split to bracket it: 1.41638
        eval_options={"dynamic_lr": 0.003, "join": "space"},
        expected_dynamic={"bits_per_char": 1.334417775374936, "perplexity": 181.59167883874514,
                          "error_rate": 0.28683765011154533},
        data_fingerprint="818429806d673ab6c8dc717b68a464af63647c4905f144ee84f3e2592657b43a",
        # `seqbench zoo verify --quick`: `seqbench eval --model zoo:ptb-char-wn --limit 10000` (static and dynamic)
        quick={"limit": 10000,
               "expected": {"bits_per_char": 1.376167349779617, "perplexity": 213.68580751226895, "error_rate": 0.2984},
               "expected_dynamic": {"bits_per_char": 1.3424150269923847, "perplexity": 187.34187009574623,
                                    "error_rate": 0.2881}},
        training={"status": "stopped at its training budget: weight noise (std 0.075, the paper's, one sample per "
                            "batch of 64 windows) from zoo:ptb-char's step-4,200 average, 1,877 steps (1.19 "
                            "CPU-hours) on 2026-12-05; its validation stayed 0.011 bits/char above its "
                            "unregularised parent's (1.4099 against 1.3990), still falling by about 0.001 per 300 "
                            "steps", "steps": 1800, "epochs": 2.2988505747126435,
                  "cpu_hours": 3.520445555555555, "recipe": "ptb-char-1x1000-wn-fast"}),
}
for _name, _fields in _TRAINED.items():
    _pin(_name, **_fields)


__all__ = ["ZooEntry", "ZOO", "HUB_ORG", "register", "get_entry", "entries", "mirror_dirs", "mirror_folder"]


# A tiny smoke-test model that ships in zoo/tiny-synth: the whole stack runs offline in seconds with it. Its numbers
# are about the generated IAM-shaped sample (seqbench.zoo.smoke.ensure_sample), NOT a benchmark result.
register(ZooEntry(
    name="tiny-synth", family="handwriting-synthesis",
    config={"hidden_size": 32, "num_layers": 2, "n_mixtures": 3, "n_window": 3, "vocab_size": 57, "peephole": True,
            "input_size": 3},
    recipe=("tiny-synthesis --set data.source=iam-ondb --set data.config=graves2013 --set model.vocab_size=57 "
            "--set data.n_train=0 --set data.n_valid=0 --set max_steps=300 --set eval_every=50 (best: step 150), "
            "SEQBENCH_HOME holding the generated sample (make_sample forms_per_split=3, seed 0)"),
    dataset="iam-ondb", dataset_config="graves2013", split="valid",
    metrics=("nll_nats_per_line", "nll_nats_per_point", "sse_per_point"),
    description=("smoke-test model: a 2 × 32 synthesis network trained for 150 steps on the generated IAM-shaped "
                 "sample (loops along a baseline, not handwriting); a smoke run, not a benchmark"),
    license=("Trained only on data seqbench generates (seqbench.data.iam.synthetic); no IAM-OnDB data. "
             "Apache-2.0, like the code."),
    weights_sha256="4335bef0826bff61c1c25454fff8e65725d779d759f5a4ac91e1fd119e3ad4d2",
    expected={"nll_nats_per_line": -18.002411074108547, "nll_nats_per_point": -0.16267238922387242,
              "sse_per_point": 0.3488403831619814},
    tolerance=1e-4, eval_options={"sample": {"forms_per_split": 3, "seed": 0}}, smoke=True,
    quick={"limit": 64,
           "expected": {"nll_nats_per_line": -18.002408239576553, "nll_nats_per_point": -0.1626723636106315,
                        "sse_per_point": 0.34884039082201607}},
    data_fingerprint="fa50bd7e5c171c4c484dc2952352ccf402f99a221c5034c4e70c0270aa570017"))


def export(model, entry: ZooEntry | str, folder, **kwargs):
    """Write a zoo folder for ``model`` (see :func:`seqbench.zoo.card.export`)."""
    from seqbench.zoo.card import export as _export

    return _export(model, get_entry(entry) if isinstance(entry, str) else entry, folder, **kwargs)


__all__ += ["export"]
