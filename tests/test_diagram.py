"""The method map (dalib.diagram): consistent boxes and arrows, true notebook numbers."""

from pathlib import Path

import pytest

from dalib import diagram

ROOT = Path(__file__).resolve().parents[1]


def test_every_arrow_joins_known_boxes_and_every_box_is_joined():
    keys = set(diagram.NODES)
    ends = {key for start, end, _ in diagram.EDGES for key in (start, end)}
    assert ends <= keys
    assert keys <= ends, f"boxes without an arrow: {sorted(keys - ends)}"
    assert set(diagram.LABEL_AT) <= {(s, e) for s, e, _ in diagram.EDGES}


def test_the_notebook_badges_name_real_notebooks_and_cover_the_series():
    named = {n for node in diagram.NODES.values() for n in node.notebooks}
    series = {int(p.name[:2]) for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert named == series


def test_pipeline_map_draws_every_box_and_arrow():
    fig = diagram.pipeline_map()
    ax = fig.axes[0]
    texts = {t.get_text() for t in ax.texts}
    assert all(node.text in texts for node in diagram.NODES.values())
    legend = len(diagram.KIND_COLORS)
    assert len(ax.patches) == len(diagram.NODES) + len(diagram.EDGES) + legend


def test_an_arrow_to_an_unknown_box_is_refused(monkeypatch):
    monkeypatch.setattr(diagram, "EDGES", (*diagram.EDGES, ("teacher", "nowhere", "")))
    with pytest.raises(ValueError, match="nowhere"):
        diagram.pipeline_map()


def test_the_readme_shows_the_committed_map():
    assert (ROOT / "docs" / "pipeline_map.png").is_file()
    assert "docs/pipeline_map.png" in (ROOT / "README.md").read_text()
