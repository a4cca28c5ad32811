"""``seqbench sample``: handwriting from a synthesis or prediction network, text from a language model."""
from __future__ import annotations

import click

from seqbench.checks import SEED_MAX
from seqbench.cli import FiniteFloatRange


@click.command("sample")
@click.option("--model", "model", required=True,
              help="zoo:NAME, hf-hub:org/repo@revision, a checkpoint folder (config.json + model.safetensors) "
              "or package.module:factory; resolved and sha256-checked as seqbench eval does.")
@click.option("--text", "texts", multiple=True,
              help="Text to write (synthesis); repeat for several lines (at most 100, 1,000 characters each).")
@click.option("--bias", type=FiniteFloatRange(), default=0.0, show_default=True,
              help="Sampling bias b >= 0: sigma = exp(sigma_hat - b), pi ~ exp(pi_hat (1 + b)). Paper: 0.15; "
              "1 with priming.")
@click.option("--seed", type=click.IntRange(0, SEED_MAX), default=0, show_default=True,
              help="Random seed (same seed, same sample).")
@click.option("--out", default=None, type=click.Path(dir_okay=False, path_type=str),
              help="Picture (.svg, .png, .pdf) for handwriting; text file (or - for stdout) for a language model.")
@click.option("--png", default=None, type=click.Path(dir_okay=False, path_type=str),
              help="Also write a PNG here.")
@click.option("--arrays", default=None, type=click.Path(dir_okay=False, path_type=str),
              help="Also write the offsets, window weights and positions to this .npz.")
@click.option("--attention", is_flag=True, help="Draw the window weights phi(t, u) under each line.")
@click.option("--prime-id", default=None, help="Imitate the writer of this IAM-OnDB line (e.g. a01-000u-01).")
@click.option("--show-prime", is_flag=True, help="Draw the real priming line above the sample.")
@click.option("--generated-only", is_flag=True,
              help="Leave the priming line's strokes out of the pictures (drawn in grey otherwise).")
@click.option("--data-root", default=None, type=click.Path(file_okay=False, path_type=str),
              help="Datasets root holding the prepared iam-ondb (default: $SEQBENCH_HOME/datasets).")
@click.option("--max-steps", type=int, default=None,
              help="Cap on points per line after priming (default: 40 per character + 100; at most 50,000).")
@click.option("--paper-stop", is_flag=True,
              help="End each line exactly where the paper's stopping rule fires, even mid-stroke (default: finish "
              "the stroke in progress, at most 40 more points, so the last letter is whole).")
@click.option("--allow-nonletter", is_flag=True,
              help="Write characters the vocabulary lacks (digits, ?, ...) as its one non-letter class.")
@click.option("--steps", type=int, default=None,
              help="Points to write (prediction network; default 700, at most 50,000).")
@click.option("-n", "n", type=int, default=1, show_default=True,
              help="Lines to sample at once (prediction network, language model; at most 100).")
@click.option("--prime-text", default="", help="Language model: the string to continue.")
@click.option("--length", type=int, default=200, show_default=True,
              help="Language model: symbols to write (at most 100,000).")
@click.option("--temperature", type=FiniteFloatRange(), default=1.0, show_default=True,
              help="Language model: softmax temperature (1 = the model, 0 = greedy).")
def sample_cmd(model, texts, bias, seed, out, png, arrays, attention, prime_id, show_prime, generated_only, data_root,
               max_steps, paper_stop, allow_nonletter, steps, n, prime_text, length, temperature) -> None:
    """Sample handwriting or text from a trained network and draw it.

    \b
    Examples:
      seqbench sample --model runs/synthesis/best --text "from his travels it might have been" \\
          --bias 0.5 --seed 0 --out out.svg --png out.png --attention
      seqbench sample --model runs/synthesis/best --text "hello world" --prime-id a01-000u-01 --bias 1 --out p.svg
      seqbench sample --model runs/prediction/best --steps 700 --bias 0.5 --out free.png
      seqbench sample --model runs/lm/best --prime-text "the_" --length 200 --temperature 0.8
    """
    from seqbench.sampling.files import sample_to_files

    kw = dict(texts=texts, out=out, png=png, arrays=arrays, attention=attention, show_prime=show_prime,
              steps=steps, length=length, prime_text=prime_text, temperature=temperature, n=n, seed=seed)
    hw = dict(bias=bias, prime=prime_id, data_root=data_root, generated_only=generated_only)
    if texts:
        hw.update(max_steps=max_steps, allow_nonletter=allow_nonletter, finish_stroke=not paper_stop)
    from seqbench.models import is_conditional, is_text
    from seqbench.sampling.load import load_for_sampling

    loaded = load_for_sampling(model)
    text_model = is_text(loaded.model)
    if not text_model:
        kw.update(hw)
    summary = sample_to_files(loaded, **kw)
    if text_model:
        if out is None or out == "-":
            for t in summary["texts"]:
                click.echo(prime_text + t)
    else:
        finished = summary.get("finished") or [0] * len(summary["lines"])
        for i, (npts, ok, more) in enumerate(zip(summary["lines"], summary["stopped"], finished)):
            how = "stopping rule" if ok else (
                f"max-steps cap ({summary['max_steps']})" if is_conditional(loaded.model)
                else "requested length")
            done = f" ({more} of them after it, to finish the last stroke)" if ok and more else ""
            click.echo(f"line {i + 1}: {npts} points ({summary['units']}), ended by the {how}{done}")
    for p in summary["written"]:
        click.echo(f"wrote {p}")


def register(cli: click.Group, prepare: click.Group) -> None:  # noqa: ARG001 (one signature for every module)
    """Add this module's commands (defined above, at module level) to the CLI."""
    cli.add_command(sample_cmd)
