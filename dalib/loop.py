"""The one training loop behind the teacher and the student.

:func:`fit` runs AdamW with an encoder and a decoder learning-rate group, linear warm-up then
linear decay to 0, gradient clipping, optional mixed precision on CUDA, periodic evaluation,
a JSON-lines metrics log, a tqdm progress bar, DistributedDataParallel under torchrun, and
checkpoints that resume exactly. What is trained on is the caller's: a ``batches(step,
device)`` function and a ``step_fn`` that turns a batch into a loss.

Resumable checkpoints live in ``<resume_dir>/step-XXXXXXXX.safetensors`` (weights, via
:func:`dalib.checkpoint.save_checkpoint`) + ``step-XXXXXXXX.state.pt`` (optimiser, scheduler,
grad scaler, step, RNG states; loadable with ``torch.load(weights_only=True)``), both written
atomically, the state last, so a state file always has its weights. All randomness of a step
(flip, perturbation, CutMix) comes from a generator re-seeded from (seed, rank, step), and
batches from (seed, epoch, rank) (:mod:`dalib.mixing`); with the saved optimiser and scheduler
a resumed job therefore ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from dalib.checkpoint import save_checkpoint
from dalib.distributed import DistInfo, all_reduce_mean, barrier
from dalib.inference import IMAGENET_MEAN, IMAGENET_STD
from dalib.io import atomic_write
from dalib.model import load_checkpoint
from dalib.textures import stable_seed


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings of one run. ``batch_size`` is labeled images per process and step."""

    steps: int
    batch_size: int
    lr_encoder: float = 5e-5
    lr_decoder: float = 5e-4  # 10x the encoder's, as in the paper
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of the steps with a linear warm-up from 0
    clip_norm: float = 1.0  # max global gradient norm; 0 disables clipping
    amp: str = "auto"  # "auto" (bf16/fp16 on CUDA, off on CPU), "off", "bf16", "fp16"
    channels_last: bool = False  # measured: no gain on the 2-core CPU (tiny@98: 53.1 vs 52.7 img/s)
    seed: int = 0
    checkpoint_every: int = 0  # steps between resumable checkpoints; 0: only at the end
    eval_every: int = 0  # steps between evaluations; 0: only at the end
    progress: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(
                f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}"
            )
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ValueError(f"amp must be 'auto', 'off', 'bf16' or 'fp16', got {self.amp!r}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup}")


class DepthNet(nn.Module):
    """A DepthAnything fed with [0, 1] images: the one place inputs are ImageNet-normalised.

    ``forward(images (B, 3, H, W) in [0, 1]) -> (disparity (B, H, W), features)``, where
    ``features`` are the encoder's four read-outs, each (B, C, H/14, W/14). ``heads`` are
    extra trainable decoders on the shared encoder (e.g. the auxiliary segmentation decoder),
    each ``head(last read-out, (H, W)) -> Tensor``; ``forward(images, with_heads=True)`` also
    returns their outputs ``{name: output}``. They run inside the forward so that DDP
    synchronises their gradients like the model's.
    """

    def __init__(self, model: nn.Module, heads: Mapping[str, nn.Module] | None = None) -> None:
        super().__init__()
        self.model = model
        self.heads = nn.ModuleDict(dict(heads or {}))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor, with_heads: bool = False):
        features = self.model.forward_features((images - self.mean) / self.std)
        disparity = self.model.depth_head(features).squeeze(1)
        if not with_heads:
            return disparity, features
        size = images.shape[-2:]
        return disparity, features, {k: h(features[-1], size) for k, h in self.heads.items()}


StepFn = Callable[[nn.Module, dict, torch.Generator, int], tuple[Tensor, dict[str, float]]]
"""(net, batch, generator, step) -> (loss, {name: value}); net maps [0, 1] images as DepthNet."""


def make_optimizer(
    model: nn.Module, settings: TrainSettings, extra: Iterable[nn.Parameter] = ()
) -> torch.optim.AdamW:
    """AdamW over two groups: ``model.pretrained`` (encoder lr), the rest and ``extra``
    (decoder lr)."""
    encoder = [p for p in model.pretrained.parameters() if p.requires_grad]
    ids = {id(p) for p in encoder}
    decoder = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    decoder += [p for p in extra if p.requires_grad]
    groups = [
        {"params": encoder, "lr": settings.lr_encoder, "name": "encoder"},
        {"params": decoder, "lr": settings.lr_decoder, "name": "decoder"},
    ]
    return torch.optim.AdamW(groups, weight_decay=settings.weight_decay)


def lr_factor(step: int, steps: int, warmup: float) -> float:
    """Learning-rate multiplier at ``step``: linear 0 -> 1 over the warm-up, then 1 -> 0."""
    warm = round(warmup * steps)
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (steps - step) / max(1, steps - warm))


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (None: full precision).

    "auto" uses bf16 on CUDA GPUs that have it, else fp16, and nothing on CPU, where bf16
    autocast made training several times slower on the 2-core development machine.
    """
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


# ---------------------------------------------------------------- resumable checkpoints


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
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


def _check_same_run(saved: dict, settings: TrainSettings, resume_dir: Path) -> None:
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


# ---------------------------------------------------------------- metrics log


class MetricsLog:
    """JSON lines, one record per step (and per evaluation); written by rank 0 only."""

    def __init__(self, path: Path, enabled: bool, keep_until: int | None) -> None:
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


# ---------------------------------------------------------------- the loop


def fit(
    model: nn.Module,
    step_fn: StepFn,
    batches: Callable[[int, torch.device], dict],
    settings: TrainSettings,
    info: DistInfo,
    final_path: Path,
    resume_dir: Path,
    log_path: Path,
    evaluate: Callable[[nn.Module], dict] | None = None,
    resume: bool = False,
    metadata: dict[str, str] | None = None,
    stop_after: int | None = None,
    heads: Mapping[str, nn.Module] | None = None,
) -> nn.Module:
    """Train ``model`` for ``settings.steps`` steps; write ``final_path``; return the model.

    ``evaluate(net)`` (rank 0, eval mode, no grad; ``net`` maps [0, 1] images like
    :class:`DepthNet`) returns a dict logged under ``"eval"``, every ``eval_every`` steps and
    at the end. With ``resume`` the latest checkpoint in ``resume_dir`` is continued (a run
    that had finished returns at once); without it, any old one is ignored and overwritten.
    ``stop_after`` ends the job abruptly after that many steps without a final checkpoint
    (a stand-in for a kill). ``heads`` (see :class:`DepthNet`) train with the decoder's
    learning rate; their weights live in the resumable state, not in ``final_path``.
    """
    device = info.device
    start, state = 0, None
    if resume and (found := load_training_state(resume_dir)) is not None:
        model, state = found
        start = state["step"]
        _check_same_run(state["settings"], settings, resume_dir)
    elif info.is_main:  # a fresh run: an old run's checkpoints must never be resumed into it
        for old in resume_dir.glob("step-*"):
            old.unlink()
    barrier()
    model = model.to(device).train()
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = DepthNet(model, heads).to(device)
    trained = (
        DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
        if info.distributed
        else net
    )
    optimizer = make_optimizer(model, settings, net.heads.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, settings.steps, settings.warmup)
    )
    dtype = amp_dtype(settings.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    if state is not None:
        net.heads.load_state_dict(state.get("heads", {}))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
    log = MetricsLog(log_path, info.is_main, keep_until=start if state is not None else None)
    generator = torch.Generator(device)
    autocast = (
        (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    )

    def checkpoint(done: int) -> None:
        if info.is_main:
            snapshot = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "settings": asdict(settings),
                "heads": net.heads.state_dict(),
            }
            save_training_state(resume_dir, done, model, snapshot)

    def run_eval(done: int) -> None:
        if evaluate is not None and info.is_main:
            net.eval()
            with torch.no_grad():
                log.write({"step": done, "eval": evaluate(net)})
            net.train()

    bar = tqdm(
        total=settings.steps,
        initial=start,
        desc=final_path.stem,
        disable=not (settings.progress and info.is_main),
    )
    for step in range(start, settings.steps):
        started = time.perf_counter()
        generator.manual_seed(stable_seed("step", settings.seed, info.rank, step))
        batch = batches(step, device)
        loaded = time.perf_counter()
        with autocast():
            loss, parts = step_fn(trained, batch, generator, step)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        if settings.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), settings.clip_norm)
        scaler.step(optimizer)
        scaler.update()
        lrs = {f"lr_{g['name']}": g["lr"] for g in optimizer.param_groups}
        scheduler.step()
        done = step + 1
        images = sum(v.shape[0] for k, v in batch.items() if k.endswith("image")) * info.world_size
        seconds = time.perf_counter() - started
        speed = images / seconds
        mean_loss = float(all_reduce_mean(loss.detach().float()))
        data_share = (loaded - started) / seconds  # share of the step spent building the batch
        log.write(
            {
                "step": done,
                "loss": mean_loss,
                **parts,
                **lrs,
                "img_per_s": speed,
                "data_share": data_share,
            }
        )
        bar.set_postfix(loss=f"{mean_loss:.4f}", img_s=f"{speed:.1f}")
        bar.update()
        if settings.eval_every and done % settings.eval_every == 0 and done < settings.steps:
            run_eval(done)
        if (
            settings.checkpoint_every
            and done % settings.checkpoint_every == 0
            and done < settings.steps
        ):
            checkpoint(done)
        if stop_after is not None and done >= stop_after:
            bar.close()
            return model
    bar.close()
    if state is None or start < settings.steps:
        run_eval(settings.steps)
        checkpoint(settings.steps)
    if info.is_main:
        save_checkpoint(model, final_path, {"step": str(settings.steps), **(metadata or {})})
    barrier()
    return model
