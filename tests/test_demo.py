"""The README's first command runs the embedded default; keep it working."""
from click.testing import CliRunner

from seqbench.cli.main import cli


def test_demo_smoke_run(tmp_path):
    r = CliRunner().invoke(cli, ["demo", "--workdir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "SMOKE RUN" in r.output and "torch batch: inputs (4," in r.output
    svg = next(tmp_path.glob("*.svg")).read_text()
    assert svg.startswith("<svg") and "<polyline" in svg


def test_version_and_help():
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0 and "seqbench" in r.output
    r = CliRunner().invoke(cli, ["prepare", "--help"])
    assert r.exit_code == 0 and "iam" in r.output
