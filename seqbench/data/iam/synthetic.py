"""Make a small IAM-OnDB-shaped source folder (official archive layout) from generated strokes.

Used by the tests and by ``seqbench demo``: it exercises the real prepare path without the
licensed data. The "handwriting" is loops along a baseline, not real writing.

>>> make_sample("/tmp/iam-sample", forms_per_split=2)  # doctest: +SKIP
"""
from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly hex "
         "every jolly zebra from his travels it might have been").split()


@dataclass
class SampleOptions:
    forms_per_split: int = 2
    lines_per_form: int = 3
    seed: int = 0
    corrupt_line: str | None = None  # a line id whose XML is truncated
    mismatch_form: str | None = None  # a form whose transcription has one line fewer
    unlisted_form: bool = True  # one form in no split list
    extracted: bool = False  # write folders instead of archives
    extra_members: list[tuple[str, bytes]] = field(default_factory=list)  # added to the stroke archive


def _line_xml(rng: np.random.Generator, n_strokes: int, t0: float) -> tuple[bytes, int, int]:
    out = [
        '<?xml version="1.0" encoding="ISO-8859-1"?>',
        "<WhiteboardCaptureSession>",
        "  <WhiteboardDescription>",
        '    <SensorLocation corner="top_left"/>',
        '    <DiagonallyOppositeCoords x="6512" y="1376"/>',
        '    <VerticallyOppositeCoords x="966" y="1376"/>',
        '    <HorizontallyOppositeCoords x="6512" y="787"/>',
        "  </WhiteboardDescription>",
        "  <StrokeSet>",
    ]
    x0, t, n_points = 1000.0, t0, 0
    for _ in range(n_strokes):
        n = int(rng.integers(8, 40))
        phase = np.linspace(0, 2 * np.pi * rng.uniform(1, 3), n)
        xs = x0 + np.cumsum(rng.uniform(4, 14, n)) + 25 * np.cos(phase)
        ys = 1100 + 120 * np.sin(phase) + rng.normal(0, 3, n)
        ts = t + 0.015 * np.arange(n)
        out.append(f'    <Stroke colour="black" start_time="{ts[0]:.2f}" end_time="{ts[-1]:.2f}">')
        out += [f'      <Point x="{int(a)}" y="{int(b)}" time="{c:.2f}"/>' for a, b, c in zip(xs, ys, ts)]
        out.append("    </Stroke>")
        x0, t, n_points = float(xs[-1]) + rng.uniform(20, 80), float(ts[-1]) + rng.uniform(0.1, 0.4), n_points + n
    out += ["  </StrokeSet>", "</WhiteboardCaptureSession>", ""]
    return "\n".join(out).encode("latin-1"), n_strokes, n_points


def _add(tf: tarfile.TarFile | None, root: Path, name: str, data: bytes) -> None:
    if tf is None:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 1104537600, 0o644
    tf.addfile(info, io.BytesIO(data))


def make_sample(dest: str | os.PathLike, forms_per_split: int = 2, **kw) -> dict:
    """Write a sample source folder to ``dest``; return its expected counts."""
    opts = SampleOptions(forms_per_split=forms_per_split, **kw)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(opts.seed)
    lists = {"trainset": [], "testset_v": [], "testset_t": [], "testset_f": []}
    forms: list[str] = []
    k = 0
    for name in lists:
        for _ in range(opts.forms_per_split):
            form = f"a{k // 10:02d}-{k % 10:03d}{'uvwxyz'[k % 6]}"
            lists[name].append(form)
            forms.append(form)
            k += 1
    if opts.unlisted_form:
        forms.append("z00-001")
    counts = {"lines": 0, "strokes": 0, "points": 0, "per_list": {n: 0 for n in lists}, "unassigned": 0}
    owner = {f: n for n, fs in lists.items() for f in fs}

    def open_tar(fname: str):
        return None if opts.extracted else tarfile.open(dest / fname, "w:gz", format=tarfile.USTAR_FORMAT)

    st, at, ot = open_tar("lineStrokes-all.tar.gz"), open_tar("ascii-all.tar.gz"), open_tar("original-xml-subset.tar.gz")
    try:
        t0 = 100.0
        for fi, form in enumerate(forms):
            top, mid = form[:3], form.split("-")[0] + "-" + form.split("-")[1][:3]
            texts = []
            for ln in range(1, opts.lines_per_form + 1):
                lid = f"{form}-{ln:02d}"
                data, ns, npts = _line_xml(rng, int(rng.integers(3, 7)), t0)
                t0 += 30
                if lid == opts.corrupt_line:
                    data = data[: len(data) // 2]  # truncated XML
                else:
                    counts["lines"] += 1
                    counts["strokes"] += ns
                    counts["points"] += npts
                    if form in owner:
                        counts["per_list"][owner[form]] += 1
                    else:
                        counts["unassigned"] += 1
                _add(st, dest, f"lineStrokes/{top}/{mid}/{lid}.xml", data)
                texts.append(" ".join(rng.choice(WORDS, size=int(rng.integers(3, 7)))))
            if form == opts.mismatch_form:
                texts = texts[:-1]
            txt = "OCR:\n\n" + "\n".join(texts) + "\n\nCSR:\n\n" + "\n".join(texts) + "\n"
            _add(at, dest, f"ascii/{top}/{mid}/{form}.txt", txt.encode("latin-1"))
            if fi % 2 == 0:  # writer ids for half the forms, as with the partial original XML
                suffix = form[len(mid):]
                xml = (f'<?xml version="1.0" encoding="ISO-8859-1"?>\n<WhiteboardCaptureSession>\n  <General>\n'
                       f'    <Form id="{form}" writerID="{10000 + fi}"/>\n  </General>\n</WhiteboardCaptureSession>\n')
                _add(ot, dest, f"original/{top}/{mid}/strokes{suffix}.xml", xml.encode())
        for name, data in opts.extra_members:
            _add(st, dest, name, data)
    finally:
        for tf in (st, at, ot):
            if tf is not None:
                tf.close()
    (dest / "splits").mkdir(exist_ok=True)
    for name, fs in lists.items():
        (dest / "splits" / f"{name}.txt").write_text("".join(f" {f}\n" for f in fs))
    counts["lists"] = lists
    return counts
