"""A run's metrics log: JSON lines, one record per step and one per evaluation.

Written by rank 0 only, atomically rewritten at the start of a run (a resumed run keeps the
records up to its step); :func:`read_log` gives the records back for plots and tables.
"""

from __future__ import annotations

import json
from pathlib import Path

from dalib.io import atomic_write


class MetricsLog:
    """JSON lines, one record per step (and per evaluation); written by rank 0 only."""

    def __init__(self, path: Path | None, enabled: bool, keep_until: int | None) -> None:
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if keep_until is not None and path.is_file():  # a resumed run: drop what comes after
            kept = [
                line
                for line in path.read_text().splitlines()
                if line and json.loads(line)["step"] <= keep_until
            ]
        with atomic_write(path) as temp:
            temp.write_text("".join(f"{line}\n" for line in kept))

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record) + "\n")


def read_log(path: str | Path) -> list[dict]:
    """The records of a metrics log (for plotting: ``[r["loss"] for r in records if "loss" in r]``)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


__all__ = ["MetricsLog", "read_log"]
