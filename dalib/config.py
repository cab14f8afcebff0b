"""Run profiles, seeds, device and thread choice, and where artifacts live.

One switch, read here and nowhere else: ``DALIB_PROFILE=fast|full|colab|gpu`` (default ``full``).
Notebooks and scripts ask :func:`get_profile` for sizes and never branch on the flag.

- ``fast``: seconds per notebook; just enough data and steps to run every code path (CI, tests).
- ``full``: the toy-scale experiment whose outputs are committed in the notebooks
  (``make run``, about an hour on 2 CPU cores).
- ``colab``: ViT-S from DINOv2 at 196 px, sized so that the whole series fits one free Colab
  session on a T4 (about 48 min of rendering and compute by ``benchmarks/size_colab.py``:
  FLOPs and the 2-core rendering measured, the T4's speed estimated).
- ``gpu``: the same experiment scaled for a single larger CUDA GPU (hours on a T4).

Artifacts (datasets, checkpoints, pseudo labels, reports) go under ``runs/<profile>/`` of the
source checkout, or of the current directory for a pip-installed dalib; ``DALIB_HOME``
overrides the root (``$DALIB_HOME/<profile>/``). Real datasets converted by
``data_scripts/`` are looked for under ``./data/<name>/`` (``DALIB_DATA`` overrides).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

PROFILE_ENV = "DALIB_PROFILE"
HOME_ENV = "DALIB_HOME"
DATA_ENV = "DALIB_DATA"
DEVICE_ENV = "DALIB_DEVICE"


@dataclass(frozen=True)
class Profile:
    """Every size a notebook or job needs, in one place.

    Image sides are in pixels and multiples of the ViT patch (14). Counts are images per
    synthetic domain. Steps are optimiser steps.
    """

    name: str
    image_size: int  # square training / evaluation crop side, px (multiple of 14)
    render_size: int  # side at which synthetic scenes are rendered, px (>= image_size)
    n_labeled: int  # labeled images per labeled domain
    n_unlabeled: int  # unlabeled images per unlabeled domain
    n_eval: int  # images per held-out domain for zero-shot evaluation
    n_photo_crops: int  # random crops of the bundled real photographs added to the pool
    encoder: str  # model size for teacher and student (see dalib.model)
    batch_size: int  # labeled images per batch (student batches add 2x unlabeled)
    teacher_steps: int
    student_steps: int
    semantic_steps: int  # training of the frozen synthetic-semantics ViT (dalib.semantic)
    probe_steps: int  # segmentation transfer: head (and encoder) steps (notebook 09)
    metric_steps: int  # metric-depth fine-tuning steps per run (notebook 08)
    eval_every: int  # steps between evaluations on held-out domains
    checkpoint_every: int  # steps between resumable checkpoints
    seeds: tuple[int, ...]  # seeds of repeated experiments (ablations)
    progress: bool  # show tqdm progress bars (off in fast so nbval output is stable)
    # the DINOv2 slot: initialises the teacher's and students' encoders and is the frozen
    # encoder of L_feat: None (random init, no L_feat by default), "synthetic" (the offline
    # stand-in, dalib.standin) or "dinov2" (timm's weights, online)
    pretrained_encoder: str | None = None
    real_labeled: tuple[str, ...] = ()  # converted real sets (data_scripts) added when present

    def replace(self, **changes) -> Profile:
        """A copy with some fields changed, e.g. ``profile.replace(teacher_steps=10)``."""
        return dataclasses.replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "fast": Profile(
        name="fast",
        image_size=56,
        render_size=64,
        n_labeled=8,
        n_unlabeled=8,
        n_eval=4,
        n_photo_crops=8,
        encoder="micro",
        batch_size=4,
        teacher_steps=3,
        student_steps=3,
        semantic_steps=4,
        probe_steps=4,
        metric_steps=3,
        eval_every=3,
        checkpoint_every=2,
        seeds=(0,),
        progress=False,
        pretrained_encoder="synthetic",
    ),
    "full": Profile(
        name="full",
        image_size=98,
        render_size=112,
        n_labeled=400,  # 3 labeled domains: 1,200 images, the narrow labeled set
        n_unlabeled=3800,  # 8 unlabeled domains + 1,600 photo crops: a pool of 32,000 (26.7x)
        n_eval=200,
        n_photo_crops=1600,
        encoder="micro",  # best validation AbsRel per CPU minute (benchmarks/study_model.py)
        batch_size=8,  # students: 8 labeled + 16 pseudo-labeled; 2000 steps see the pool once
        teacher_steps=2000,
        student_steps=2000,  # = the teacher's: equal labeled images seen (16,000)
        semantic_steps=2000,
        probe_steps=150,
        metric_steps=150,
        eval_every=500,
        checkpoint_every=500,
        seeds=(0, 1, 2),
        progress=True,
        pretrained_encoder="synthetic",  # the stand-in for DINOv2 (dalib.standin)
    ),
    "gpu": Profile(
        name="gpu",
        image_size=224,
        render_size=256,
        n_labeled=4000,
        n_unlabeled=8000,
        n_eval=300,
        n_photo_crops=4000,
        encoder="vits",
        batch_size=32,
        teacher_steps=10000,
        student_steps=10000,
        semantic_steps=5000,
        probe_steps=2000,
        metric_steps=5000,
        eval_every=1000,
        checkpoint_every=1000,
        seeds=(0, 1, 2),
        pretrained_encoder="dinov2",
        real_labeled=("nyuv2",),
        progress=True,
    ),
    "colab": Profile(
        name="colab",
        image_size=196,  # 14x14 tokens
        render_size=224,
        n_labeled=1000,  # 3 labeled domains: 3,000 images
        n_unlabeled=4000,  # 8 unlabeled domains + 1,000 photo crops: a pool of 33,000 (11x)
        n_eval=200,
        n_photo_crops=1000,
        encoder="vits",
        batch_size=16,  # students: 16 labeled + 32 pseudo-labeled; 1,000 steps see the pool once
        teacher_steps=1000,
        student_steps=1000,  # = the teacher's, as in full
        semantic_steps=1000,
        probe_steps=300,
        metric_steps=500,
        eval_every=250,
        checkpoint_every=250,
        seeds=(0, 1, 2),
        pretrained_encoder="dinov2",
        real_labeled=("nyuv2",),
        progress=True,
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """The profile named ``name``, else ``$DALIB_PROFILE``, else ``full``.

    Raises ``ValueError`` naming the valid profiles for an unknown name.
    """
    chosen = name if name is not None else os.environ.get(PROFILE_ENV, "full")
    chosen = chosen.strip().lower()
    if chosen not in PROFILES:
        source = "argument name" if name is not None else f"${PROFILE_ENV}"
        raise ValueError(
            f"unknown profile {chosen!r} (from {source}); choose one of {sorted(PROFILES)}"
        )
    return PROFILES[chosen]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a CPU generator seeded the same."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run the block, then restore Python's, NumPy's and torch's (CPU) global RNG states, so
    that whatever it draws (or whether it runs at all) does not shift later draws."""
    python, numpy_state, torch_state = (
        random.getstate(),
        np.random.get_state(),
        torch.get_rng_state(),
    )
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)


def get_device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``prefer`` or ``$DALIB_DEVICE`` if given, else CUDA, else CPU.

    Apple's MPS is used only when asked for by name (its kernels differ enough from CUDA/CPU
    that silent use would surprise). Asking for an unavailable device raises ``RuntimeError``.
    """
    wanted = prefer or os.environ.get(DEVICE_ENV)
    if wanted is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(wanted)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {wanted!r} was asked for but CUDA is not available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device {wanted!r} was asked for but MPS is not available")
    return device


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` ("auto", "off", "bf16", "fp16") on ``device`` (None: full
    precision). "auto" uses bf16 on CUDA GPUs that have it, else fp16, and nothing on CPU, where
    bf16 autocast made training several times slower on the 2-core development machine."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def cpu_count() -> int:
    """The CPUs this process may use (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads to ``n`` (default: the CPUs this process may use).

    Returns the number set. Inter-op threads stay at torch's default.
    """
    if n is None:
        n = cpu_count()
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    torch.set_num_threads(n)
    return n


def _default_home() -> Path:
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout / "runs"
    return Path.cwd() / "runs"


def data_root() -> Path:
    """Where converted real datasets live: ``$DALIB_DATA``, else ``./data``."""
    return Path(os.environ.get(DATA_ENV) or "data").expanduser()


def artifact_root(profile: Profile | str | None = None) -> Path:
    """``runs/<profile>/`` (created if missing): where datasets, checkpoints and reports go."""
    if not isinstance(profile, Profile):
        profile = get_profile(profile)
    home = os.environ.get(HOME_ENV)
    root = (Path(home).expanduser() if home else _default_home()) / profile.name
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create the artifact folder {root}: {err}") from err
    return root


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from the ``str`` of ``parts``; stable across runs (unlike ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def resolve(
    profile: Profile | str | None, root: str | os.PathLike | None = None
) -> tuple[Profile, Path]:
    """(the Profile, the artifact folder) for a job's ``profile`` (a Profile, its name, or None:
    ``$DALIB_PROFILE``) and ``root`` (None: :func:`artifact_root` of the profile)."""
    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    return profile, Path(root) if root is not None else artifact_root(profile)


def run_paths(root: Path, name: str) -> dict[str, Path]:
    """Where a run named ``name`` writes under the artifact ``root``: final weights
    (``checkpoints/<name>.safetensors``), resume folder and metrics log."""
    return {
        "final_path": root / "checkpoints" / f"{name}.safetensors",
        "resume_dir": root / "checkpoints" / "resume" / name,
        "log_path": root / "logs" / f"{name}.jsonl",
    }
