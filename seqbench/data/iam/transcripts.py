"""Transcriptions (``ascii/.../<form>.txt``) and writer ids (``original/.../strokes<s>.xml``)."""
from __future__ import annotations

import io
import posixpath
import re

from lxml import etree

_FORM_TXT = re.compile(r"(?:^|/)ascii/(?:[^/]+/)*(?P<form>[^/]+)\.txt$")
_ORIGINAL = re.compile(r"(?:^|/)original/(?:[^/]+/)*(?P<dir>[^/]+)/strokes(?P<suffix>[^/]*)\.xml$")


def form_of_ascii(name: str) -> str | None:
    m = _FORM_TXT.search(name)
    return m.group("form") if m else None


def form_of_original(name: str) -> str | None:
    """``original/a01/a01-000/strokesu.xml`` -> ``a01-000u`` (the form folder plus the file's suffix)."""
    m = _ORIGINAL.search(name)
    return m.group("dir") + m.group("suffix") if m else None


def parse_csr(data: bytes) -> list[str]:
    """The lines of the ``CSR:`` section (the corrected transcription), one per written line.

    The official files are ISO-8859-1; a file that is valid UTF-8 (a re-saved or hand-written one:
    ``é`` as two bytes) is read as UTF-8, so that its ``é`` is not stored as ``Ã©`` (ASCII reads the
    same either way, and real ISO-8859-1 text is almost never valid UTF-8). Blank lines around the
    section are dropped and trailing whitespace of each line is removed; nothing else is changed.
    Raises ValueError when the file has no ``CSR:`` section.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    lines = text.removeprefix("\ufeff").splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == "CSR:")
    except StopIteration:
        raise ValueError("no 'CSR:' section") from None
    body = [ln.rstrip() for ln in lines[start + 1 :]]
    while body and not body[0]:
        body.pop(0)
    while body and not body[-1]:
        body.pop()
    return body


def parse_writer(data: bytes) -> tuple[str | None, str | None]:
    """``(writerID, Form id)`` from the ``<General><Form .../>`` element of an original XML file.

    Reads only as far as the ``<Form>`` element. Returns ``(None, None)`` when the file has none.
    """
    i = data.find(b"<General>", 0, 8192)
    j = data.find(b"</General>", i) if i >= 0 else -1
    if j > i:  # parse just the <General> element (the file holds megabytes of strokes after it)
        try:
            el = etree.fromstring(data[i : j + len(b"</General>")]).find("Form")
            return (el.get("writerID"), el.get("id")) if el is not None else (None, None)
        except etree.XMLSyntaxError:
            pass
    try:
        for _, el in etree.iterparse(io.BytesIO(data), events=("start",), tag="Form", no_network=True):
            return el.get("writerID"), el.get("id")
    except etree.XMLSyntaxError:
        pass  # a broken tail after <Form> is irrelevant; a break before it means no writer id
    return None, None


def line_sort_key(line_id: str) -> tuple[str, int]:
    form, _, num = line_id.rpartition("-")
    return form, int(num) if num.isdigit() else -1


def posix_base(name: str) -> str:
    return posixpath.basename(name)
