"""TokenStream: every prediction exactly once, across window edges, stream ends and padding."""
from __future__ import annotations

import pytest
import torch

from seqbench.data.streams import TokenStream
from seqbench.errors import SeqbenchError


def _pairs(stream: TokenStream) -> list[tuple[int, int]]:
    out = []
    for w in stream:
        for b in range(w.inputs.shape[0]):
            m = w.mask[b]
            out += list(zip(w.inputs[b][m].tolist(), w.targets[b][m].tolist()))
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 10, 11, 97, 1000])
@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 16])
@pytest.mark.parametrize("window", [1, 4, 5, 100])
def test_every_prediction_exactly_once(n, batch_size, window):
    tokens = torch.arange(n, dtype=torch.int32)  # unique values: a token's value is its position
    s = TokenStream(tokens, batch_size, window)
    pairs = _pairs(s)
    targets = sorted(t for _, t in pairs)
    assert targets == list(range(1, n))  # no target dropped, none twice
    assert all(i == t - 1 for i, t in pairs)  # each input is the token just before its target
    assert s.n_predictions == s.total_predictions == max(n - 1, 0) and s.dropped == 0


def test_windows_continue_each_stream():
    tokens = torch.arange(1000)
    s = TokenStream(tokens, batch_size=4, window=7)
    windows = list(s)
    for prev, nxt in zip(windows, windows[1:]):
        full = nxt.mask[:, 0]
        # the first input of window k+1 is the last target of window k, in every stream
        assert torch.equal(nxt.inputs[full, 0], prev.targets[full, -1])
    # streams are contiguous slices, in order: concatenating stream 0..B-1 gives the corpus
    rows = [torch.cat([w.targets[b][w.mask[b]] for w in windows]) for b in range(4)]
    assert torch.equal(torch.cat(rows), tokens[1:])
    assert max(len(r) for r in rows) - min(len(r) for r in rows) <= 1


def test_padding_is_ignored_by_cross_entropy():
    tokens = torch.randint(0, 5, (53,))
    s = TokenStream(tokens, batch_size=3, window=8)
    logits_total, count = 0.0, 0
    for w in s:
        logits = torch.zeros(*w.inputs.shape, 5)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 5), w.targets.reshape(-1), reduction="sum")
        logits_total += float(loss)
        count += w.n_predictions
        assert (w.targets[~w.mask] == -100).all() and (w.inputs[~w.mask] == 0).all()
    assert count == 52
    assert logits_total == pytest.approx(52 * torch.log(torch.tensor(5.0)).item(), rel=1e-6)


def test_drop_last_gives_full_windows_and_reports_the_rest():
    s = TokenStream(torch.arange(1001), batch_size=3, window=10, drop_last=True)
    windows = list(s)
    assert all(bool(w.mask.all()) for w in windows)
    assert s.n_predictions == 3 * 10 * len(windows) == 990
    assert s.dropped == 1000 - 990
    pairs = _pairs(s)
    assert len({t for _, t in pairs}) == len(pairs)  # still none twice


def test_prime_makes_the_first_token_a_target():
    tokens = torch.arange(1, 21)
    s = TokenStream(tokens, batch_size=2, window=4, prime=0)
    assert sorted(t for _, t in _pairs(s)) == tokens.tolist()
    assert s.n_predictions == 20


def test_resets_and_carry():
    s = TokenStream(torch.arange(200), batch_size=2, window=5, reset_every=3)
    assert [w.reset for w in s][:8] == [True, False, False, True, False, False, True, False]
    assert [w.reset for w in TokenStream(torch.arange(50), 2, 5)] == [True] + [False] * 4
    h = (torch.ones(2, 3, requires_grad=True) * 2, torch.zeros(2, 3, requires_grad=True))
    w0, w1 = s[0], s[1]
    assert w0.carry(h) is None
    carried = w1.carry(h)
    assert isinstance(carried, tuple) and not carried[0].requires_grad and torch.equal(carried[0], h[0])
    assert w1.carry(None) is None


def test_keeps_the_token_dtype_until_the_window():
    tokens = torch.arange(256, dtype=torch.uint8)
    w = TokenStream(tokens, 2, 10)[0]
    assert w.inputs.dtype == torch.int64 and w.targets.dtype == torch.int64
    assert w.inputs[0, 0] == 0 and w.targets[1, 0] == 129


def test_bad_arguments():
    with pytest.raises(SeqbenchError, match="1-D"):
        TokenStream(torch.zeros(2, 2), 1, 1)
    with pytest.raises(SeqbenchError, match=">= 1"):
        TokenStream(torch.arange(5), 0, 1)
    with pytest.raises(SeqbenchError, match="reset_every"):
        TokenStream(torch.arange(5), 1, 1, reset_every=0)
    with pytest.raises(IndexError):
        TokenStream(torch.arange(5), 1, 2)[3]


class _FakeSplit:
    """Just what load_tokens reads from a SplitDataset."""

    def __init__(self, table, info=None, config="char"):
        self._t, self.info, self.config = table, info or {}, config
        self.spec = type("S", (), {"name": "fake"})()
        self.path = "fake.parquet"

    def to_arrow(self):
        return self._t


def test_load_tokens_across_arrow_chunks_and_slices():
    import pyarrow as pa

    from seqbench.data.streams import load_tokens

    rows = [[1, 2, 3], [4], [], [5, 6], [7, 8, 9, 10]]
    arr = pa.array(rows, pa.list_(pa.int32()))
    chunked = pa.chunked_array([arr.slice(0, 2), arr.slice(2, 3)])  # sliced chunks keep offsets
    ds = _FakeSplit(pa.table({"ids": chunked}), {"configs": {"char": {"eol_id": 0}}})
    assert load_tokens(ds).tolist() == list(range(1, 11))
    assert load_tokens(ds, eol=True).tolist() == [1, 2, 3, 0, 4, 0, 0, 5, 6, 0, 7, 8, 9, 10, 0]
    b = pa.array([b"abc", b"de", b"", b"fgh"], pa.binary())
    ds = _FakeSplit(pa.table({"bytes": pa.chunked_array([b.slice(1, 2), b.slice(3, 1)])}))
    t = load_tokens(ds)
    assert t.dtype == torch.uint8 and bytes(t.numpy()) == b"defgh"
    with pytest.raises(SeqbenchError, match="PTB char streams only"):
        load_tokens(ds, eol=True)
    with pytest.raises(SeqbenchError, match="not a text corpus"):
        load_tokens(_FakeSplit(pa.table({"x": [1]})))
