"""Sample and write the results to files in one call (what ``seqbench sample`` runs)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from seqbench.sampling.errors import SamplingError


def arrays_bytes(sample: Any) -> bytes:
    """The ``.npz`` of a :class:`~seqbench.sampling.HandwritingSample`: offsets_i, phi_i, kappa_i per line, and
    texts, stopped, finished (points drawn after the stopping rule fired, to finish the last stroke), prime_len."""
    import io

    arrays: dict[str, Any] = {}
    for i, off in enumerate(sample.offsets):
        arrays[f"offsets_{i}"] = off
        if sample.phi is not None:
            arrays[f"phi_{i}"] = sample.phi[i]
            arrays[f"kappa_{i}"] = sample.kappa[i]
    arrays["texts"] = np.array(sample.texts or [], dtype=str)
    arrays["stopped"] = np.array(sample.stopped, dtype=bool)
    arrays["finished"] = np.array(sample.finished or [0] * len(sample.offsets), dtype=np.int64)
    arrays["prime_len"] = np.array(sample.prime_len)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _npz_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix != ".npz":  # what numpy would write; the returned path is the file that exists
        path = path.with_name(path.name + ".npz")
    return path


def save_arrays(sample: Any, path: str | os.PathLike) -> Path:
    """Write a :class:`~seqbench.sampling.HandwritingSample` to ``.npz`` (see :func:`arrays_bytes`)."""
    from seqbench.paths import atomic_write_bytes

    return atomic_write_bytes(_npz_path(path), arrays_bytes(sample))


def write_all(outputs: Sequence[tuple[Path, bytes]]) -> list[Path]:
    """Write every (path, bytes) whole, or none of them, mode 0644 (:func:`seqbench.paths.atomic_write_all`)."""
    from seqbench.paths import atomic_write_all

    return atomic_write_all(outputs)


def _generated_part(s: Any) -> Any:
    """The sample without its priming rows (offsets, φ, κ from row ``prime_len`` on)."""
    import dataclasses

    k = s.prime_len
    if not k:
        return s
    cut = (lambda xs: None if xs is None else [x[k:] for x in xs])  # noqa: E731
    return dataclasses.replace(s, offsets=cut(s.offsets), phi=cut(s.phi), kappa=cut(s.kappa), prime_len=0)


def sample_to_files(model: Any, *, texts: Sequence[str] = (), out: str | os.PathLike | None = None,
                    png: str | os.PathLike | None = None, arrays: str | os.PathLike | None = None,
                    attention: bool = False, show_prime: bool = False, steps: int | None = None,
                    length: int = 200, prime_text: str = "", temperature: float = 1.0, n: int = 1,
                    generated_only: bool = False, **kwargs: Any) -> dict:
    """Sample from ``model`` by its family and write the picture(s) (handwriting) or the text (language models).

    Returns a summary: what was written, the number of points per line, and whether each line was ended by the
    stopping rule (``stopped``) or by ``max_steps``. ``generated_only``: the pictures leave out the priming
    line's strokes (drawn in grey otherwise), e.g. to publish samples primed with data one may not redistribute.
    """
    from seqbench.paths import atomic_write_text, check_output_path
    from seqbench.models import is_conditional, is_text
    from seqbench.sampling import sample
    from seqbench.sampling.load import load_for_sampling

    loaded = load_for_sampling(model)
    text_model = is_text(loaded.model)
    # everything that can be checked is checked before sampling (the output paths, matplotlib, the options), and
    # every output is rendered in memory first, then all are written together (write_all): whole, or not at all
    if text_model:
        if out is not None and str(out) != "-":
            check_output_path(out, what="text file")
    else:
        from seqbench.sampling.draw import IMAGE_SUFFIXES, require_matplotlib

        for p in (out, png):
            if p is not None and Path(p).suffix.lower() not in IMAGE_SUFFIXES:
                raise SamplingError(f"{p}: unknown picture format; use one of {', '.join(IMAGE_SUFFIXES)}")
            if p is not None:
                check_output_path(p, what="picture")
        if arrays is not None:
            check_output_path(_npz_path(arrays), what="arrays file")
        if out is not None or png is not None:
            require_matplotlib()
        if show_prime and (kwargs.get("prime") is None or not isinstance(kwargs["prime"], str)):
            raise SamplingError("--show-prime needs --prime-id")
    summary: dict[str, Any] = {"model": loaded.source, "family": loaded.family, "written": []}
    if text_model:
        if texts:
            raise SamplingError("a language model writes its own text; give the start of it with --prime-text, "
                                "not --text")
        s = sample(loaded, prime=prime_text, length=length, temperature=temperature, n=n, seed=kwargs.get("seed"))
        body = "".join(prime_text + t + "\n" for t in s.texts)
        summary["texts"] = s.texts
        if out is not None and str(out) != "-":
            atomic_write_text(out, body)
            summary["written"].append(str(out))
        return summary
    if is_conditional(loaded.model) and not texts:
        raise SamplingError("a handwriting synthesis network needs --text (repeat it to write several lines)")
    text: Any = None
    if texts:
        text = list(texts) if len(texts) > 1 else texts[0]
    s = sample(loaded, text, steps=steps, n=n, **kwargs)
    summary.update(lines=[len(o) for o in s.offsets], stopped=s.stopped, units=s.units, prime_len=s.prime_len,
                   texts=s.texts, max_steps=s.max_steps, finished=s.finished)
    items: list[Any] = [_generated_part(s) if generated_only else s]
    labels = None
    if show_prime:
        from seqbench.sampling.handwriting import find_line

        row, _ = find_line(kwargs["prime"], root=kwargs.get("data_root"), config=kwargs.get("data_config",
                                                                                            "graves2013"))
        items = [row, s]
        labels = [f"priming line {row['id']}"] + [f"generated: {t}" for t in (s.texts or [""] * len(s))]
    outputs: list[tuple[Path, bytes]] = []
    if out is not None or png is not None:
        from seqbench.sampling.draw import figure, render

        fig = figure(items, labels=labels, attention=attention and s.phi is not None)
        outputs += [(Path(p), render(fig, Path(p).suffix)) for p in (out, png) if p is not None]
    if arrays is not None:
        outputs.append((_npz_path(arrays), arrays_bytes(s)))
    summary["written"] += [str(p) for p in write_all(outputs)]
    summary["sample"] = s
    return summary


__all__ = ["sample_to_files", "save_arrays", "arrays_bytes", "write_all"]
