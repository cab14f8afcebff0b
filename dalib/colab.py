"""The Colab badge and setup cell of every notebook, stamped from one repository setting.

The project's public home lives in exactly one place, ``[project.urls] Repository`` in
``pyproject.toml`` (its branch beside it, ``[tool.dalib] branch``). Everything that points at
it is derived from there by :func:`stamp_notebooks` (``python -m dalib colab``):

- an "Open in Colab" badge in each notebook's first markdown cell (under its title), the
  same badges in the README's notebook table, and the README's install line;
- the first code cell's setup block: on Colab it pip-installs dalib from the repository (its
  version ranges admit Colab's preinstalled torch and torchvision, which pip then keeps) and
  makes ``colab`` the default profile;
  elsewhere it imports dalib, says how to install it when missing, and prints the versions.

``python -m dalib colab --repository URL [--branch B]`` re-points a fork (it rewrites the
setting, then stamps); ``--check`` stamps nothing and names every notebook that disagrees.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SETUP_BEGIN = "# Setup, stamped by `python -m dalib colab` from pyproject.toml: edit the setting there."
SETUP_END = "# (end of the stamped setup)"
BADGE_SVG = "https://colab.research.google.com/assets/colab-badge.svg"
_BADGE_LINE = re.compile(r"^\[!\[Open In Colab\]\(" + re.escape(BADGE_SVG) + r"\)\]\([^)]*\)$")
_GITHUB = re.compile(r"^https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$")


@dataclass(frozen=True)
class Home:
    """Where the project lives: a GitHub repository URL, a branch, and the distribution name."""

    repository: str
    branch: str
    distribution: str

    @property
    def owner_name(self) -> str:
        """``owner/name`` of the GitHub repository (what Colab's URLs use)."""
        match = _GITHUB.match(self.repository)
        if match is None:
            raise ValueError(
                f"repository {self.repository!r} is not a GitHub address "
                "(https://github.com/OWNER/NAME): Colab opens notebooks from GitHub only"
            )
        return f"{match[1]}/{match[2]}"

    @property
    def install_command(self) -> str:
        """The pip command the setup cell runs on Colab."""
        url = f"https://github.com/{self.owner_name}.git"
        return f'pip install -q "{self.distribution} @ git+{url}@{self.branch}"'

    def badge(self, notebook: str) -> str:
        """The Markdown badge opening ``notebook`` (a path in the repository) in Colab."""
        target = f"https://colab.research.google.com/github/{self.owner_name}/blob/{self.branch}/{notebook}"
        return f"[![Open In Colab]({BADGE_SVG})]({target})"


def read_home(pyproject: Path) -> Home:
    """The :class:`Home` of ``pyproject`` (``[project] name``, ``[project.urls] Repository``,
    ``[tool.dalib] branch``); a missing setting is an error naming the file and the key."""
    try:
        settings = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"cannot read {pyproject}: {err}") from err
    project = settings.get("project", {})
    repository = project.get("urls", {}).get("Repository")
    branch = settings.get("tool", {}).get("dalib", {}).get("branch")
    for key, value in (("[project] name", project.get("name")),
                       ("[project.urls] Repository", repository), ("[tool.dalib] branch", branch)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{pyproject}: {key} is missing or not a string")
    home = Home(repository.rstrip("/"), branch, project["name"])
    home.owner_name  # noqa: B018 - validates the address
    return home


def write_home(pyproject: Path, repository: str, branch: str) -> Home:
    """Rewrite the repository and branch settings of ``pyproject`` in place; return the new home."""
    text = pyproject.read_text(encoding="utf-8")
    for key, value in (("Repository", repository.rstrip("/")), ("branch", branch)):
        pattern = rf'^({key}\s*=\s*)"[^"]*"'
        text, count = re.subn(pattern, lambda m, v=value: f'{m[1]}"{v}"', text, count=1, flags=re.MULTILINE)
        if count != 1:
            raise ValueError(f'{pyproject}: no `{key} = "..."` line to rewrite')
    Home(repository.rstrip("/"), branch, "check").owner_name  # noqa: B018 - validates the address
    pyproject.write_text(text, encoding="utf-8")
    return read_home(pyproject)


def setup_block(home: Home) -> str:
    """The stamped first lines of every notebook's first code cell (no trailing newline)."""
    return "\n".join([
        SETUP_BEGIN,
        "import os",
        "import sys",
        "",
        f"DALIB_INSTALL = {home.install_command!r}",
        'if "google.colab" in sys.modules:  # Colab: install dalib; its ranges keep Colab\'s torch',
        '    get_ipython().run_line_magic("pip", DALIB_INSTALL.removeprefix("pip "))',
        '    os.environ.setdefault("DALIB_PROFILE", "colab")  # sized for one free T4 session',
        "try:",
        "    import dalib",
        "except ImportError as err:  # pragma: no cover - shown to readers without dalib",
        '    raise ImportError("dalib is not installed: in a clone of the repository run `pip install -e .` "',
        '                      f"(or `make test`, which creates .venv); anywhere else `{DALIB_INSTALL}`") from err',
        "import torch",
        "",
        'print(f"dalib {dalib.__version__} | torch {torch.__version__} | python {sys.version.split()[0]}")',
        SETUP_END,
    ])


def _cell_text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _set_cell_text(cell: dict, text: str) -> None:
    lines = text.split("\n")
    cell["source"] = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def _with_badge(markdown: str, badge: str) -> str:
    """The markdown with exactly one badge: under its ``# `` title line, else first."""
    kept: list[str] = []
    for line in markdown.split("\n"):
        if _BADGE_LINE.match(line):
            if kept and kept[-1] == "":
                kept.pop()  # the blank line stamped before it
            continue
        kept.append(line)
    at = 1 if kept and kept[0].startswith("# ") else 0
    rest = kept[at:] if kept[at:] and kept[at] == "" else [""] + kept[at:]
    return "\n".join(kept[:at] + ([""] if at else []) + [badge] + rest)


def _with_setup(code: str, block: str, where: str) -> str:
    if SETUP_BEGIN in code:
        start, end = code.index(SETUP_BEGIN), code.find(SETUP_END)
        if end < 0:
            raise ValueError(f"{where}: the stamped setup block has no end line {SETUP_END!r}")
        return code[:start] + block + code[end + len(SETUP_END):]
    return block + "\n\n" + code


def stamp(notebook: dict, home: Home, relative: str) -> dict:
    """A copy of the notebook JSON with its badge and setup block stamped for ``home``.

    ``relative`` is the notebook's path inside the repository (what the badge opens)."""
    stamped = json.loads(json.dumps(notebook))
    cells = stamped.get("cells", [])
    markdown = next((c for c in cells if c.get("cell_type") == "markdown"), None)
    code = next((c for c in cells if c.get("cell_type") == "code"), None)
    if markdown is None or code is None:
        raise ValueError(f"{relative}: needs a markdown cell and a code cell to stamp")
    _set_cell_text(markdown, _with_badge(_cell_text(markdown), home.badge(relative)))
    _set_cell_text(code, _with_setup(_cell_text(code), setup_block(home), relative))
    return stamped


def notebooks_of(repo: Path) -> list[Path]:
    """Every notebook the series ships: ``notebooks/NN_*.ipynb`` and their solutions."""
    folder = repo / "notebooks"
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb")) + sorted(folder.glob("solutions/[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no notebooks under {folder}")
    return found


def readme_stamped(readme: str, home: Home) -> str:
    """``readme`` with a Colab badge in the last cell of each table row that links a notebook
    (``[...](notebooks/NN_....ipynb)``: the notebook table, whose last column is Colab), and
    every ``"<distribution> @ git+..."`` install requirement pointing at ``home``."""
    requirement = home.install_command.split(" ", 3)[-1]
    readme = re.sub(rf'"{re.escape(home.distribution)} @ git\+[^"\s]+"', lambda _: requirement, readme)
    link = re.compile(r"\]\((notebooks/[0-9][0-9]_[^)]+\.ipynb)\)")
    out = []
    for line in readme.split("\n"):
        match = link.search(line)
        if match and line.startswith("|") and line.endswith("|") and line.count("|") >= 3:
            cells = line.split("|")
            cells[-2] = f" {home.badge(match[1])} "
            line = "|".join(cells)
        out.append(line)
    return "\n".join(out)


def stamp_notebooks(repo: Path, check: bool = False) -> list[str]:
    """Stamp every notebook (and the README's badges) of the checkout ``repo`` from its
    pyproject.toml; with ``check``, write nothing. Returns the paths (relative to ``repo``)
    that differed from the stamped form."""
    home = read_home(repo / "pyproject.toml")
    differing = []
    for path in notebooks_of(repo):
        relative = path.relative_to(repo).as_posix()
        try:
            notebook = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read notebook {path}: {err}") from err
        stamped = stamp(notebook, home, relative)
        if stamped != notebook:
            differing.append(relative)
            if not check:
                path.write_text(json.dumps(stamped, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    readme = repo / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        new = readme_stamped(text, home)
        if new != text:
            differing.append("README.md")
            if not check:
                readme.write_text(new, encoding="utf-8")
    return differing


__all__ = ["Home", "notebooks_of", "read_home", "readme_stamped", "setup_block", "stamp",
           "stamp_notebooks", "write_home"]
