"""The numbers of Graves (2013), Tables 1-4, as comparison rows for reports (from ../shared/PAPER.md).

Each row names the seqbench setting it belongs to (dataset, configuration, split, model family, protocol) and its
values in seqbench's metric names. Table 1's word-level "BPC" (bits per word / 5.6) has no seqbench metric and is
kept as a note; its error rates are fractions here (28.5 % → 0.285).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PaperRow:
    id: str
    table: str
    setting: str
    dataset: str
    config: str
    split: str
    family: str
    protocol: str
    metrics: dict[str, float] = field(default_factory=dict)
    note: str = ""
    arch: dict[str, int] = field(default_factory=dict)  # model config fields that tell rows of a setting apart


def _t1(input_, reg, dyn, bpc, ppl, err, epochs):
    key = {"none": "none", "weight noise": "wn", "adaptive weight noise": "awn"}[reg]
    metrics = {"perplexity": ppl, "error_rate": err / 100}
    note = f"{epochs} epochs"
    if input_ == "char":
        metrics["bits_per_char"] = bpc
    else:
        note += f"; the paper's word-level BPC {bpc} = bits per word / 5.6"
    return PaperRow(f"table1-{input_}-{key}-{'dynamic' if dyn else 'static'}", "Table 1",
                    f"PTB {input_}, {reg}, {'dynamic' if dyn else 'static'}", "ptb", input_, "test", "lstm-lm",
                    "dynamic" if dyn else "static", metrics, note)


PAPER_ROWS: tuple[PaperRow, ...] = (
    _t1("char", "none", False, 1.32, 167, 28.5, 9), _t1("char", "none", True, 1.29, 148, 28.0, 9),
    _t1("char", "weight noise", False, 1.27, 140, 27.4, 25), _t1("char", "weight noise", True, 1.24, 124, 26.9, 25),
    _t1("char", "adaptive weight noise", False, 1.26, 133, 27.4, 26),
    _t1("char", "adaptive weight noise", True, 1.24, 122, 26.9, 26),
    _t1("word", "none", False, 1.27, 138, 77.8, 11), _t1("word", "none", True, 1.25, 126, 76.9, 11),
    _t1("word", "weight noise", False, 1.25, 126, 76.9, 14), _t1("word", "weight noise", True, 1.23, 117, 76.2, 14),
    PaperRow("table2-train", "Table 2", "enwik8 7×700, training set", "enwik8", "graves2013", "train", "lstm-lm",
             "static", {"bits_per_byte": 1.42}),
    PaperRow("table2-valid-static", "Table 2", "enwik8 7×700, validation, static", "enwik8", "graves2013", "valid",
             "lstm-lm", "static", {"bits_per_byte": 1.67}),
    PaperRow("table2-valid-dynamic", "Table 2", "enwik8 7×700, validation, dynamic", "enwik8", "graves2013",
             "valid", "lstm-lm", "dynamic", {"bits_per_byte": 1.33}),
    PaperRow("table3-1layer", "Table 3", "prediction, 1 layer, no regularisation", "iam-ondb", "graves2013", "valid",
             "handwriting-prediction", "static", {"nll_nats_per_line": -1025.7, "sse_per_point": 0.40},
             arch={"num_layers": 1, "hidden_size": 900}),
    PaperRow("table3-3layer", "Table 3", "prediction, 3 layers, no regularisation", "iam-ondb", "graves2013",
             "valid", "handwriting-prediction", "static", {"nll_nats_per_line": -1041.0, "sse_per_point": 0.41},
             arch={"num_layers": 3, "hidden_size": 400}),
    PaperRow("table3-3layer-awn", "Table 3", "prediction, 3 layers, adaptive weight noise", "iam-ondb",
             "graves2013", "valid", "handwriting-prediction", "static",
             {"nll_nats_per_line": -1057.7, "sse_per_point": 0.41}, arch={"num_layers": 3, "hidden_size": 400}),
    PaperRow("table4-none", "Table 4", "synthesis, no regularisation", "iam-ondb", "graves2013", "valid",
             "handwriting-synthesis", "static", {"nll_nats_per_line": -1096.9, "sse_per_point": 0.23}),
    PaperRow("table4-awn", "Table 4", "synthesis, adaptive weight noise", "iam-ondb", "graves2013", "valid",
             "handwriting-synthesis", "static", {"nll_nats_per_line": -1128.2, "sse_per_point": 0.23}),
)

PAPER: dict[str, PaperRow] = {r.id: r for r in PAPER_ROWS}


def paper_rows_for(dataset: str, config: str, split: str, family: str | None, protocol: str,
                   model_config: dict | None = None) -> list[PaperRow]:
    """The paper's rows for the same setting (same dataset, configuration, split, family and protocol).

    With ``model_config`` (the network's config fields), rows that name an architecture (Table 3's 1 × 900 and
    3 × 400 networks) are kept only when it matches; when none matches, every row of the setting is returned.
    """
    rows = [r for r in PAPER_ROWS if (r.dataset, r.config, r.split, r.protocol) == (dataset, config, split, protocol)
            and (family is None or r.family == family)]
    if model_config:
        same = [r for r in rows if all(model_config.get(k) == v for k, v in r.arch.items())]
        rows = same or rows
    return rows


__all__ = ["PaperRow", "PAPER_ROWS", "PAPER", "paper_rows_for"]
