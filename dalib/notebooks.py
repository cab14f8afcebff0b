"""Execute the notebook series in order, in one profile, and gather the run report.

``python -m dalib run-notebooks --profile full`` is what ``make run`` calls. Each notebook runs
in a fresh kernel with ``DALIB_PROFILE`` set; executed copies go to
``runs/<profile>/notebooks/`` (the checkout's notebooks stay untouched unless ``inplace``),
then :func:`dalib.report.build_report` writes ``runs/<profile>/report.md``, whose "Timings"
section lists each notebook's wall time in the last run of the whole series (kept in
``runs/<profile>/timings.json``; a run of some notebooks, ``only``, prints its times but leaves
that table alone, since notebooks rerun over cached checkpoints take a fraction of the time).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from dalib.config import PROFILE_ENV, Profile, artifact_root, get_profile
from dalib.io import atomic_write
from dalib.report import build_report, markdown_table, write_section


def find_notebooks(folder: Path, only: Sequence[str] = ()) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` in ``folder``, in order; ``only`` filters by prefix."""
    if not folder.is_dir():
        raise FileNotFoundError(f"notebook folder {folder} does not exist")
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [p for p in found if any(p.name.startswith(prefix) for prefix in only)]
    if not found:
        raise FileNotFoundError(f"no notebooks matching {list(only) or 'NN_*.ipynb'} in {folder}")
    return found


def record_timing(profile: Profile, notebook: str, seconds: float) -> Path:
    """Store one notebook's wall time and rewrite the report's "Timings" section; return the
    timings file (``{notebook: {"seconds", "finished"}}``)."""
    path = artifact_root(profile) / "timings.json"
    timings = json.loads(path.read_text()) if path.is_file() else {}
    finished = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    timings[notebook] = {"seconds": round(seconds, 1), "finished": finished}
    with atomic_write(path) as temp:
        temp.write_text(json.dumps(timings, indent=2, sort_keys=True) + "\n")
    rows = [
        [name, f"{t['seconds'] / 60:.1f}", t["finished"]] for name, t in sorted(timings.items())
    ]
    total = sum(t["seconds"] for t in timings.values())
    rows.append(["**all**", f"**{total / 60:.1f}**", ""])
    table = markdown_table(["notebook", "minutes", "finished"], rows)
    write_section(
        "99_timings",
        "Timings",
        f"Wall time per notebook in the last run of the whole series, this machine:\n\n{table}",
        profile,
    )
    return path


def run_notebooks(
    folder: Path,
    profile: str = "full",
    only: Sequence[str] = (),
    inplace: bool = False,
    timeout: int = 3600,
) -> Path:
    """Execute the series; print one progress line per notebook; return the report path.

    A failing notebook stops the run with its error (the partly executed copy is still
    written, so the failing cell can be read).
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    prof = get_profile(profile)
    out_dir = artifact_root(prof) / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = find_notebooks(folder, only)
    os.environ[PROFILE_ENV] = prof.name  # inherited by each kernel
    total_start = time.perf_counter()
    for i, path in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {path.name} ({prof.name}) ...", end=" ", flush=True)
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )
        target = path if inplace else out_dir / path.name
        try:
            client.execute()
        except CellExecutionError:
            nbformat.write(nb, target)
            print(f"FAILED after {time.perf_counter() - start:.0f} s; see {target}", flush=True)
            raise
        nbformat.write(nb, target)
        seconds = time.perf_counter() - start
        if not only:
            record_timing(prof, path.name, seconds)
        print(f"done in {seconds:.0f} s", flush=True)
    report = build_report(prof)
    print(f"all {len(notebooks)} notebooks ran in {time.perf_counter() - total_start:.0f} s")
    print(f"executed notebooks: {folder if inplace else out_dir}")
    print(f"report: {report}")
    return report
