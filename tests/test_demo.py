"""The README's first command runs the embedded default; keep it working."""
import json
import re

import pytest
from click.testing import CliRunner

from seqbench.cli.main import cli
from seqbench.evaluation.records import EvalResult
from seqbench.zoo import get_entry, mirror_folder


def _card_values(card: str) -> dict[str, float]:
    """metric → value from the model-index block of a zoo model card."""
    return {m: float(v) for m, v in re.findall(r"- type: (\w+)\n\s+value: (\S+)", card)}


def test_demo_smoke_run(tmp_path):
    r = CliRunner().invoke(cli, ["demo", "--workdir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "SMOKE RUN" in r.output and "torch batch: inputs (4," in r.output
    svg = (tmp_path / "a00-000u-01.svg").read_text()
    assert svg.startswith("<svg") and "<polyline" in svg

    # zoo:tiny-synth evaluated on the sample the demo prepared: the record round-trips ...
    record = tmp_path / "tiny-synth-eval.json"
    assert f"record: {record}" in r.output
    res = EvalResult.load(record)
    assert res.to_dict() == json.loads(record.read_text())
    assert EvalResult.from_dict(json.loads(res.to_json())) == res
    assert res.model["zoo"] == "tiny-synth" and res.model["source"] == "mirror"
    entry = get_entry("tiny-synth")
    assert res.dataset["fingerprint"] == entry.data_fingerprint and res.paper == []
    assert res.dataset["generated_sample"] is True  # the smoke sample, passed in by the demo

    # ... and its numbers are the model card's (the zoo entry's expected values and the card's model-index)
    card = _card_values((mirror_folder("tiny-synth") / "README.md").read_text())
    assert card == entry.expected
    for name, value in card.items():
        assert res.value(name) == pytest.approx(value, rel=1e-6), name
        mv = res.metrics[name]
        assert f"{name}" in r.output and f"{mv['value']:.6g} {mv['unit']}" in r.output
    assert "nll_nats_per_line    -18.0024 nats/line" in r.output
    assert "= the model card's values" in r.output and "DIFFERS" not in r.output

    # ... and the model wrote a line
    sample = tmp_path / "tiny-synth-sample.svg"
    assert f"{sample}" in r.output
    text = sample.read_text()
    assert text.startswith("<svg") and text.count("<polyline") > 1
    assert "not a benchmark, and not comparable with the paper" in r.output

    # ... and the zoo's paper-size synthesis network wrote the gallery's line, with its window, saying where it stands
    png = tmp_path / "synth-3layer-sample.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{png}" in r.output and "'from his travels it might have been' at bias 0.5" in r.output
    score = get_entry("synth-3layer").expected["nll_nats_per_line"]
    assert f"{score:.1f} nats/line on testset_v" in r.output


def test_version_and_help():
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0 and "seqbench" in r.output
    r = CliRunner().invoke(cli, ["prepare", "--help"])
    assert r.exit_code == 0 and "iam" in r.output
    r = CliRunner().invoke(cli, ["demo", "--help"])
    assert r.exit_code == 0 and "zoo:tiny-synth" in r.output and "not a benchmark" in r.output
