"""The run report: every table a run produces, gathered into ``runs/<profile>/report.md``.

Notebooks and jobs add sections with :func:`write_section`; each section is its own small
Markdown file under ``runs/<profile>/report.d/`` (so notebooks can run in any order, alone or
again), and :func:`build_report` joins them, sorted by key, under a header that states the
machine and library versions.
"""

from __future__ import annotations

import os
import platform
import re
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from dalib.config import Profile, artifact_root, cpu_count, get_profile

_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], floatfmt: str = ".3f"
) -> str:
    """A GitHub Markdown table; floats are formatted with ``floatfmt``."""

    def cell(value: object) -> str:
        return format(value, floatfmt) if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {row!r} has {len(row)} cells, header has {len(header)}")
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def _sections_dir(profile: Profile | str | None) -> Path:
    return artifact_root(profile) / "report.d"


def write_section(key: str, title: str, body: str, profile: Profile | str | None = None) -> Path:
    """Write (or replace) one report section; ``key`` orders sections, e.g. ``"03_teacher"``."""
    if not _KEY.match(key):
        raise ValueError(f"report section key {key!r} may only use letters, digits, '_', '-', '.'")
    folder = _sections_dir(profile)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(f"## {title}\n\n{body.strip()}\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def machine_summary() -> str:
    """One line per fact: CPU, threads, torch version, device."""
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    cpus = cpu_count()
    return "\n".join(
        [
            f"- machine: {platform.machine()} {platform.processor() or ''}".rstrip(),
            f"- CPUs available: {cpus}; torch threads: {torch.get_num_threads()}",
            f"- GPU: {cuda}",
            f"- python {platform.python_version()}, torch {torch.__version__}",
        ]
    )


def build_report(profile: Profile | str | None = None) -> Path:
    """Join every section into ``runs/<profile>/report.md`` and return its path."""
    if not isinstance(profile, Profile):
        profile = get_profile(profile)
    sections = (
        sorted(_sections_dir(profile).glob("*.md")) if _sections_dir(profile).is_dir() else []
    )
    parts = [
        f"# dalib run report: profile `{profile.name}`",
        f"Built {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.",
        "### Machine\n\n" + machine_summary(),
    ]
    parts += [path.read_text(encoding="utf-8").strip() for path in sections]
    if not sections:
        parts.append("_No sections were written by this run._")
    out = artifact_root(profile) / "report.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out
