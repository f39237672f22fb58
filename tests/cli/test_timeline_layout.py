"""The timeline's label layout: labels on a row never overlap, whatever their number and place."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tools.cassette_cli.timeline import _Label, _layout

CHAR = 1.0
EDGE = 200.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, EDGE), st.text("abcdefghij ", min_size=1, max_size=40)), max_size=30))
def test_labels_never_overlap_and_are_the_text_or_a_shortened_prefix(items: list[tuple[float, str]]) -> None:
    labels = [_Label(x, text, "#000") for x, text in items]
    placed = _layout(labels, CHAR, EDGE)
    spans: dict[int, list[tuple[float, float]]] = {}
    for lb, level, text, right in placed:
        assert 0 <= level < 3
        assert text == lb.text or (text.endswith("…") and lb.text.startswith(text[:-1]) and len(text) >= 5)
        width = (len(text) + 1) * CHAR
        x0 = lb.x - width if right else lb.x
        assert right == (lb.x + width > EDGE)
        spans.setdefault(level, []).append((x0, x0 + width))
    for extents in spans.values():
        extents.sort()
        assert all(a[1] <= b[0] + 1e-9 for a, b in zip(extents, extents[1:]))


def test_sparse_labels_are_kept_whole() -> None:
    labels = [_Label(x, "a label", "#000") for x in (0.0, 50.0, 100.0)]
    assert [(lv, text) for _, lv, text, _ in _layout(labels, CHAR, EDGE)] == [(0, "a label")] * 3
    crowded = [_Label(float(x), "a long label here", "#000") for x in range(0, 8)]
    placed = _layout(crowded, CHAR, EDGE)
    assert [lv for _, lv, _, _ in placed] == [0, 1, 2]  # a fourth would overlap: left out (hover title stays)
