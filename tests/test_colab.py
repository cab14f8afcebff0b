"""The Colab badge and setup cell: stamped from pyproject.toml, checked, re-pointed, executed."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import types
from pathlib import Path

import pytest

from dalib import colab
from dalib.__main__ import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    """A copy of the repository's pyproject, README and notebooks (sources only)."""
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    for path in colab.notebooks_of(REPO):
        target = tmp_path / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return tmp_path


def _first(notebook: Path, kind: str) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == kind)["source"])


def test_the_setting_is_read_from_pyproject():
    home = colab.read_home(REPO / "pyproject.toml")
    assert home.repository == "https://github.com/dalib-edu/dalib"
    assert home.branch == "main"
    assert home.distribution != "dalib", "PyPI's dalib is another project"
    assert home.install_command == (
        f'pip install -q "{home.distribution} @ git+https://github.com/dalib-edu/dalib.git@main"'
    )


def test_committed_notebooks_and_readme_agree_with_the_setting(capsys):
    assert main(["colab", "--check", "--repo", str(REPO)]) == 0, capsys.readouterr().out


def test_check_names_each_notebook_that_disagrees(checkout: Path, capsys):
    notebook = checkout / "notebooks" / "03_teacher_training.ipynb"
    data = json.loads(notebook.read_text())
    for cell in data["cells"]:
        cell["source"] = [line.replace("dalib-edu/dalib", "someone/else") for line in cell["source"]]
    notebook.write_text(json.dumps(data))
    assert main(["colab", "--check", "--repo", str(checkout)]) == 1
    out = capsys.readouterr().out
    assert "notebooks/03_teacher_training.ipynb" in out
    assert "notebooks/04_pseudo_labeling.ipynb" not in out


def test_a_fork_is_re_pointed_by_one_command_and_stamping_is_idempotent(checkout: Path, capsys):
    assert main(["colab", "--repo", str(checkout), "--repository",
                 "https://github.com/fork-owner/dalib-fork", "--branch", "dev"]) == 0
    pyproject = (checkout / "pyproject.toml").read_text()
    assert 'Repository = "https://github.com/fork-owner/dalib-fork"' in pyproject
    assert 'branch = "dev"' in pyproject
    for path in colab.notebooks_of(checkout):
        relative = path.relative_to(checkout).as_posix()
        markdown, code = _first(path, "markdown"), _first(path, "code")
        assert markdown.count("colab-badge.svg") == 1, relative
        assert (f"colab.research.google.com/github/fork-owner/dalib-fork/blob/dev/{relative}"
                in markdown), relative
        assert "git+https://github.com/fork-owner/dalib-fork.git@dev" in code, relative
        assert "dalib-edu/dalib" not in markdown + code, relative
    readme = (checkout / "README.md").read_text()
    assert "colab.research.google.com/github/fork-owner/dalib-fork/blob/dev/notebooks/00_" in readme
    assert "github/dalib-edu/dalib/blob" not in readme
    assert f'"{colab.read_home(REPO / "pyproject.toml").distribution} @ git+https://github.com/fork-owner/dalib-fork.git@dev"' in readme
    assert "dalib-edu/dalib.git" not in readme
    before = {p: p.read_bytes() for p in colab.notebooks_of(checkout)}
    capsys.readouterr()
    assert main(["colab", "--check", "--repo", str(checkout)]) == 0
    assert colab.stamp_notebooks(checkout) == []
    assert before == {p: p.read_bytes() for p in colab.notebooks_of(checkout)}


def test_bad_settings_are_named():
    home = colab.Home("https://gitlab.com/a/b", "main", "dalib-edu")
    with pytest.raises(ValueError, match="not a GitHub address"):
        home.badge("notebooks/00.ipynb")
    with pytest.raises(SystemExit, match="pyproject.toml not found"):
        main(["colab", "--repo", "/nonexistent-folder"])


def _run_setup_cell(code: str, on_colab: bool) -> tuple[list[tuple[str, str]], str]:
    """Execute the stamped block of a setup cell; return the recorded %pip calls and stdout."""
    block = code[: code.index(colab.SETUP_END) + len(colab.SETUP_END)]
    calls: list[tuple[str, str]] = []
    shell = types.SimpleNamespace(run_line_magic=lambda magic, line: calls.append((magic, line)))
    saved = sys.modules.get("google.colab")
    if on_colab:
        sys.modules["google.colab"] = types.ModuleType("google.colab")
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(block, "<setup cell>", "exec"), {"get_ipython": lambda: shell})  # noqa: S102 - the cell under test
    finally:
        if on_colab:
            if saved is None:
                del sys.modules["google.colab"]
            else:
                sys.modules["google.colab"] = saved
    return calls, out.getvalue()


def test_setup_cell_on_colab_issues_exactly_the_stamped_command(monkeypatch):
    home = colab.read_home(REPO / "pyproject.toml")
    monkeypatch.setenv("DALIB_PROFILE", "recorded")  # so that teardown restores the original
    for path in colab.notebooks_of(REPO):
        monkeypatch.delenv("DALIB_PROFILE")
        calls, out = _run_setup_cell(_first(path, "code"), on_colab=True)
        assert calls == [("pip", home.install_command.removeprefix("pip "))], path.name
        assert "dalib 0.1.0 | torch " in out
        assert os.environ["DALIB_PROFILE"] == "colab"  # the profile sized for one session
    monkeypatch.setenv("DALIB_PROFILE", "gpu")  # a choice made before the cell is kept
    _run_setup_cell(_first(REPO / "notebooks" / "00_setup_and_data.ipynb", "code"), on_colab=True)
    assert os.environ["DALIB_PROFILE"] == "gpu"


def test_setup_cell_elsewhere_installs_nothing_and_prints_versions(monkeypatch):
    monkeypatch.setenv("DALIB_PROFILE", "recorded")  # so that teardown restores the original
    monkeypatch.delenv("DALIB_PROFILE")
    calls, out = _run_setup_cell(_first(REPO / "notebooks" / "00_setup_and_data.ipynb", "code"),
                                 on_colab=False)
    assert calls == [] and "DALIB_PROFILE" not in os.environ
    assert re.match(r"dalib \S+ \| torch \S+ \| python 3\.\d+", out)


def test_nobody_is_told_to_pip_install_dalib_from_the_index():
    wrong = re.compile(r"pip install (?:-[-\w]+ +)*[\"']?dalib(?![-\w])(?! @)")
    texts = {p: p.read_text() for p in [REPO / "README.md", *colab.notebooks_of(REPO)]}
    offenders = [f"{p.name}: {m[0]}" for p, t in texts.items() for m in wrong.finditer(t)]
    assert offenders == []


def test_pip_plans_no_change_to_torch_or_torchvision(tmp_path: Path):
    """The Colab install line's requirement, pointed at this checkout, in a fresh venv that
    holds this environment's packages (torch and torchvision included) but not dalib: pip
    must plan to install dalib alone. Offline: --no-index, so a torch it would have to change
    fails the resolution instead of downloading."""
    home = colab.read_home(REPO / "pyproject.toml")
    packages = Path(sysconfig.get_paths()["purelib"])
    shared = tmp_path / "shared"
    shared.mkdir()
    for entry in packages.iterdir():
        lowered = entry.name.lower().replace("-", "_")
        if lowered.startswith(("dalib", "__editable__", "_dalib")):
            continue
        (shared / entry.name).symlink_to(entry)
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True)
    fresh_python = fresh / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    fresh_purelib = subprocess.run(
        [str(fresh_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip()
    Path(fresh_purelib, "shared.pth").write_text(str(shared) + "\n")
    report = tmp_path / "report.json"
    requirement = f"{home.distribution} @ {REPO.as_uri()}"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(fresh_python), "install", "--dry-run",
         "--no-index", "--no-build-isolation", "--quiet", "--report", str(report), requirement],
        check=False, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    planned = [item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]]
    assert planned == [home.distribution]
