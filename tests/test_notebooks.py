"""The notebook runner behind `make run`: order, progress lines, executed copies, timings."""

import json

import nbformat
import pytest

from dalib.config import HOME_ENV, PROFILE_ENV, artifact_root
from dalib.notebooks import find_notebooks, run_notebooks


def _notebook(path, source: str) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbformat.write(nb, path)


@pytest.fixture
def series(tmp_path, monkeypatch):
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "runs"))
    monkeypatch.setenv(PROFILE_ENV, "fast")  # run_notebooks sets it; restored after the test
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "01_first.ipynb", "import os\nprint(os.environ['DALIB_PROFILE'])")
    _notebook(folder / "00_zero.ipynb", "print(2 + 2)")
    (folder / "notes.ipynb").write_text("not numbered: ignored")
    return folder


def test_runs_in_order_writes_copies_and_a_timings_section(series, capsys):
    report = run_notebooks(series, profile="fast")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[1/2] 00_zero.ipynb (fast) ... done in")
    assert lines[1].startswith("[2/2] 01_first.ipynb (fast) ... done in")
    executed = nbformat.read(artifact_root("fast") / "notebooks" / "01_first.ipynb", 4)
    assert executed.cells[0].outputs[0]["text"].strip() == "fast"  # the kernel got the profile
    assert not nbformat.read(series / "01_first.ipynb", 4).cells[0].outputs  # source untouched
    timings = json.loads((artifact_root("fast") / "timings.json").read_text())
    assert sorted(timings) == ["00_zero.ipynb", "01_first.ipynb"]
    text = report.read_text()
    assert "## Timings" in text and "| 00_zero.ipynb |" in text and "**all**" in text

    timings["01_first.ipynb"]["seconds"] = 1234.5  # a marker a rerun would overwrite
    (artifact_root("fast") / "timings.json").write_text(json.dumps(timings))
    run_notebooks(series, profile="fast", only=["01"])  # some notebooks again: table unchanged
    assert "[1/1] 01_first.ipynb (fast) ... done in" in capsys.readouterr().out
    assert json.loads((artifact_root("fast") / "timings.json").read_text()) == timings


def test_a_failing_notebook_stops_the_run_and_keeps_its_copy(series, capsys):
    _notebook(series / "02_broken.ipynb", "raise RuntimeError('boom')")
    with pytest.raises(Exception, match="boom"):
        run_notebooks(series, profile="fast")
    assert "FAILED after" in capsys.readouterr().out
    assert (artifact_root("fast") / "notebooks" / "02_broken.ipynb").is_file()
    assert "02_broken.ipynb" not in json.loads((artifact_root("fast") / "timings.json").read_text())


def test_no_matching_notebooks_is_an_error_that_names_the_folder(series):
    with pytest.raises(FileNotFoundError, match="no notebooks matching"):
        find_notebooks(series, only=["07"])
