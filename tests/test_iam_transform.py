"""The model-ready transform and the vocabularies, on hand-made lines with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from seqbench.data.iam.transform import Cleaning, Flat, OffsetTransform
from seqbench.data.iam.vocab import GRAVES57, NONLETTER, full_vocabulary
from seqbench.errors import SeqbenchError


def line(xs, ys, eos, ts=None):
    ts = ts if ts is not None else [0.015 * i for i in range(len(xs))]
    return {"x": np.array(xs), "y": np.array(ys), "t": np.array(ts), "eos": np.array(eos, dtype=bool)}


def test_offsets_have_the_null_first_input_convention():
    tr = OffsetTransform()
    f = Flat.from_lines([line([0, 3, 5, 20], [0, 4, 4, 10], [0, 0, 1, 1])])
    off, offsets = tr.raw_offsets(tr.clean(f).flat)
    assert off.tolist() == [[3, 4, 0], [2, 0, 1], [15, 6, 1]]
    assert offsets.tolist() == [0, 3]


def test_lines_do_not_leak_into_each_other():
    tr = OffsetTransform()
    f = Flat.from_lines([line([0, 1], [0, 1], [0, 1]), line([1000, 1002, 1003], [0, 0, 0], [0, 0, 1])])
    off, offsets = tr.raw_offsets(tr.clean(f).flat)
    assert offsets.tolist() == [0, 1, 3]
    assert off[:, 0].tolist() == [1, 2, 1]


def test_spike_is_removed_and_jump_splits_the_stroke():
    tr = OffsetTransform(Cleaning(spike_threshold=100))
    spike = line([0, 5, 900, 10, 15], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1])
    jump = line([0, 5, 900, 905], [0, 0, 0, 0], [0, 0, 0, 1])
    cl = tr.clean(Flat.from_lines([spike, jump]))
    assert cl.removed_spikes == 1 and cl.split_strokes == 1
    assert cl.flat.x.tolist() == [0, 5, 10, 15, 0, 5, 900, 905]
    assert cl.flat.eos.tolist() == [False, False, False, True, False, True, False, True]
    assert cl.flat.offsets.tolist() == [0, 4, 8]


def test_missing_readings_are_interpolated():
    tr = OffsetTransform(Cleaning(gap_min_length=50, sampling_period=0.01))
    # a 0.04 s gap (4 periods) over 90 units: 3 readings are missing
    ln = line([0, 10, 100, 110], [0, 0, 0, 0], [0, 0, 0, 1], ts=[0.0, 0.01, 0.05, 0.06])
    short = line([0, 10, 20], [0, 0, 0], [0, 0, 1], ts=[0.0, 0.01, 0.5])  # slow but short: untouched
    cl = tr.clean(Flat.from_lines([ln, short]))
    assert cl.interpolated_points == 3 and cl.touched_steps == 1
    assert np.allclose(cl.flat.x[:7], [0, 10, 32.5, 55, 77.5, 100, 110])
    assert cl.flat.eos.tolist()[:7] == [False] * 6 + [True]
    assert cl.flat.offsets.tolist() == [0, 7, 10]


def test_fit_and_apply_normalise():
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(20):
        n = 50
        eos = np.zeros(n, bool)
        eos[[10, 30, n - 1]] = True
        lines.append(line(np.cumsum(rng.normal(5, 3, n)), np.cumsum(rng.normal(0, 4, n)), eos))
    tr = OffsetTransform()
    st = tr.fit(lines)
    seq, offsets = tr.apply(lines, st)
    assert seq.dtype == np.float32 and len(seq) == st.n_offsets == 20 * 49
    assert abs(seq[:, 0].mean()) < 1e-5 and abs(seq[:, 0].std() - 1) < 1e-4
    assert abs(seq[:, 1].mean()) < 1e-5 and abs(seq[:, 1].std() - 1) < 1e-4
    back = tr.denormalise(seq, st)
    assert np.allclose(back[:49, 0], np.diff(lines[0]["x"]), atol=1e-3)


def test_single_point_line_is_an_error():
    tr = OffsetTransform()
    with pytest.raises(SeqbenchError, match="fewer than 2 points"):
        tr.raw_offsets(Flat.from_lines([line([0], [0], [1])]))


def test_graves57():
    assert GRAVES57.size == 57
    ids = GRAVES57.encode('Hi, "Q" 42!')
    non = GRAVES57.table.get("?", GRAVES57.fallback)
    assert GRAVES57.symbols[non] == NONLETTER
    assert [GRAVES57.symbols[i] for i in ids] == ["H", "i", ",", " ", '"', "Q", '"', " ", NONLETTER, NONLETTER, NONLETTER]


def test_full_vocabulary_rejects_unknown_characters_by_name():
    v = full_vocabulary(["abc", "a1"])
    assert v.symbols == ("1", "a", "b", "c") and v.encode("ca1") == [3, 1, 0]
    with pytest.raises(SeqbenchError, match=r"cannot write 'XZ'"):
        v.encode("aXZ")
