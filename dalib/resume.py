"""Resumable training state: a run's weights, optimiser, scheduler, scaler, step and RNG states.

``<resume_dir>/step-XXXXXXXX.safetensors`` holds the weights (:func:`dalib.checkpoint.
save_checkpoint`) and ``step-XXXXXXXX.state.pt`` the rest (loadable with
``torch.load(weights_only=True)``), both written atomically, the state last, so a state file
always has its weights; older steps are deleted once a newer one is complete. With the saved
optimiser, scheduler and RNG states a resumed job ends with the same weights as an
uninterrupted one (:func:`dalib.loop.fit`).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dalib.checkpoint import save_checkpoint
from dalib.io import atomic_write
from dalib.model import load_checkpoint
from dalib.optim import TrainSettings


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    random.setstate(tuple(x if not isinstance(x, list) else tuple(x) for x in state["python"]))


def _resume_files(resume_dir: Path) -> list[tuple[int, Path]]:
    """(step, state path) of the complete resumable checkpoints in ``resume_dir``, by step."""
    found = []
    for state in resume_dir.glob("step-*.state.pt"):
        step = int(state.name.split(".")[0].removeprefix("step-"))
        if state.with_name(f"step-{step:08d}.safetensors").is_file():
            found.append((step, state))
    return sorted(found)


def save_training_state(resume_dir: Path, step: int, model: nn.Module, state: dict) -> Path:
    """Write the step's weights, then its state (both atomic); delete older checkpoints."""
    resume_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, resume_dir / f"step-{step:08d}.safetensors", {"step": str(step)})
    path = resume_dir / f"step-{step:08d}.state.pt"
    with atomic_write(path) as temp:
        torch.save({**state, "step": step, "rng": _rng_state()}, temp)
    for old_step, old in _resume_files(resume_dir):
        if old_step != step:
            old.unlink(missing_ok=True)
            old.with_name(f"step-{old_step:08d}.safetensors").unlink(missing_ok=True)
    return path


def load_training_state(resume_dir: Path) -> tuple[nn.Module, dict] | None:
    """The latest (model, state) in ``resume_dir``, or None if there is none."""
    files = _resume_files(resume_dir)
    if not files:
        return None
    step, path = files[-1]
    state = torch.load(path, map_location="cpu", weights_only=True)
    return load_checkpoint(path.with_name(f"step-{step:08d}.safetensors")), state


_SAME_RUN_FIELDS = (
    "steps",
    "batch_size",
    "lr_encoder",
    "lr_decoder",
    "weight_decay",
    "warmup",
    "clip_norm",
    "amp",
    "seed",
)


def check_same_run(saved: dict, settings: TrainSettings, resume_dir: Path) -> None:
    """Raise ValueError if ``settings`` differ from the resumed run's in what shapes the weights."""
    changed = {
        k: (saved.get(k), getattr(settings, k))
        for k in _SAME_RUN_FIELDS
        if saved.get(k) != getattr(settings, k)
    }
    if changed:
        raise ValueError(
            f"cannot resume {resume_dir}: settings changed (saved, now): {changed}; "
            "rerun without resume to start over"
        )


__all__ = ["check_same_run", "load_training_state", "save_training_state", "set_rng_state"]
