"""The one training loop behind every dalib model: :func:`fit`.

It runs AdamW with an encoder and a decoder learning-rate group (:mod:`dalib.optim`), linear
warm-up then linear decay to 0, gradient clipping, optional mixed precision on CUDA, periodic
evaluation, a JSON-lines metrics log (:mod:`dalib.runlog`), a tqdm progress bar,
DistributedDataParallel under torchrun, and checkpoints that resume exactly
(:mod:`dalib.resume`). What is trained on is the caller's: a ``batches(step, device)``
function and a ``step_fn`` that turns a batch into a loss. All randomness of a step (flip,
perturbation, CutMix) comes from a generator re-seeded from (seed, rank, step), and batches
from (seed, epoch, rank) (:mod:`dalib.mixing`), so a resumed job ends with the same weights as
an uninterrupted one. The depth models train here, and so do the segmentation heads and the
offline stand-ins (:mod:`dalib.segmentation`, :mod:`dalib.standin`), which give ``fit`` their
own module to call and keep no files.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from dalib.checkpoint import save_checkpoint
from dalib.config import amp_dtype, stable_seed
from dalib.distributed import DistInfo, all_reduce_mean, barrier
from dalib.model import DepthNet
from dalib.optim import TrainSettings, lr_factor, make_optimizer
from dalib.resume import check_same_run, load_training_state, save_training_state, set_rng_state
from dalib.runlog import MetricsLog

StepFn = Callable[[nn.Module, dict, torch.Generator, int], tuple[Tensor, dict[str, Tensor]]]
"""(net, batch, generator, step) -> (loss, {name: 0-dim tensor or float} to log); ``net`` maps
[0, 1] images as :class:`dalib.model.DepthNet` does."""


@dataclass
class Run:
    """One training run, everything :func:`fit` needs besides the step.

    model: the DepthAnything to train; batches: ``batches(step, device) -> batch dict``;
    settings: the optimisation (:class:`dalib.optim.TrainSettings`); info: this process
    (:func:`dalib.distributed.init_distributed`); final_path, resume_dir, log_path: where it
    writes (:func:`dalib.config.run_paths`; None: that file is not written, and without a
    ``resume_dir`` there is nothing to resume); validate: ``validate(net) -> dict`` logged under
    ``"eval"`` every ``eval_every`` steps and at the end (rank 0, eval mode, no grad; ``net``
    maps [0, 1] images like :class:`~dalib.model.DepthNet`); resume: continue the latest
    checkpoint in ``resume_dir`` (a finished run returns at once), else any old one is
    deleted; metadata: str -> str stored with the final weights; stop_after: end abruptly
    after that many steps without a final checkpoint (a stand-in for a kill); heads: extra
    trainable decoders (see DepthNet) at the decoder's learning rate, whose weights live in
    the resumable state, not in ``final_path``; net: the module ``step_fn`` is given (default
    ``DepthNet(model, heads)``), whose trainable parameters must all be in ``model`` or
    ``heads``, the ones the optimiser steps; name: the progress bar's label (default
    ``final_path``'s stem).
    """

    model: nn.Module
    batches: Callable[[int, torch.device], dict]
    settings: TrainSettings
    info: DistInfo
    final_path: Path | None = None
    resume_dir: Path | None = None
    log_path: Path | None = None
    validate: Callable[[nn.Module], dict] | None = None
    resume: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)
    stop_after: int | None = None
    heads: Mapping[str, nn.Module] = field(default_factory=dict)
    net: nn.Module | None = None
    name: str | None = None


def _restore(run: Run) -> tuple[nn.Module, dict | None]:
    """The model to train and the resumed state (None: a fresh run, old checkpoints gone)."""
    if run.resume_dir is None:
        return run.model, None
    if run.resume and (found := load_training_state(run.resume_dir)) is not None:
        model, state = found
        check_same_run(state["settings"], run.settings, run.resume_dir)
        return model, state
    if run.info.is_main:  # a fresh run: an old run's checkpoints must never be resumed into it
        for old in run.resume_dir.glob("step-*"):
            old.unlink()
    return run.model, None


def _net(run: Run, model: nn.Module, heads: nn.ModuleDict) -> nn.Module:
    """The module ``step_fn`` is given: ``run.net`` or a DepthNet of ``model`` and ``heads``."""
    if run.net is None:
        return DepthNet(model, heads)
    if run.resume_dir is not None:
        raise ValueError("a Run with its own net keeps no resume state: leave resume_dir None")
    stepped = {id(p) for p in (*model.parameters(), *heads.parameters())}
    missed = [n for n, p in run.net.named_parameters() if p.requires_grad and id(p) not in stepped]
    if missed:
        raise ValueError(
            f"Run.net has trainable parameters outside model and heads, which the optimiser "
            f"would not step: {missed[:3]}"
        )
    return run.net


def _logged(loss: Tensor, parts: Mapping[str, Tensor | float], info: DistInfo) -> dict[str, float]:
    """The step's loss and parts as floats, averaged over processes, in one host sync."""
    values = [loss.detach().float().reshape(())]
    values += [
        torch.as_tensor(v, device=loss.device).detach().float().reshape(()) for v in parts.values()
    ]
    stacked = torch.stack(values)
    means = (all_reduce_mean(stacked) if info.distributed else stacked).tolist()
    return {"loss": means[0], **dict(zip(parts, means[1:]))}


def fit(run: Run, step_fn: StepFn) -> nn.Module:
    """Train ``run.model`` for ``run.settings.steps`` steps of ``step_fn``; write
    ``run.final_path``; return the trained model."""
    settings, info, device = run.settings, run.info, run.info.device
    sync = barrier if info.distributed else lambda: None  # a lone process (e.g. rank 0
    # training a stand-in while the others wait) must not enter the group's collectives
    model, state = _restore(run)
    start = state["step"] if state is not None else 0
    sync()
    model = model.to(device).train()
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    heads = nn.ModuleDict(dict(run.heads))
    net = _net(run, model, heads).to(device).train()
    trained = (
        DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
        if info.distributed
        else net
    )
    optimizer = make_optimizer(model, settings, heads.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, settings.steps, settings.warmup)
    )
    dtype = amp_dtype(settings.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    if state is not None:
        heads.load_state_dict(state.get("heads", {}))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
    keep_until = start if state is not None else None
    log = MetricsLog(run.log_path, info.is_main and run.log_path is not None, keep_until)
    generator = torch.Generator(device)
    autocast = (
        (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    )

    def checkpoint(done: int) -> None:
        if info.is_main and run.resume_dir is not None:
            snapshot = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "settings": asdict(settings),
                "heads": heads.state_dict(),
            }
            save_training_state(run.resume_dir, done, model, snapshot)

    def validate(done: int) -> None:
        if run.validate is not None and info.is_main:
            net.eval()
            with torch.no_grad():
                log.write({"step": done, "eval": run.validate(net)})
            net.train()

    bar = tqdm(
        total=settings.steps,
        initial=start,
        desc=run.name or (run.final_path.stem if run.final_path else "training"),
        disable=not (settings.progress and info.is_main),
    )
    for step in range(start, settings.steps):
        started = time.perf_counter()
        generator.manual_seed(stable_seed("step", settings.seed, info.rank, step))
        batch = run.batches(step, device)
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
        values = _logged(loss, parts, info)  # the step's one host sync: timing includes its compute
        images = sum(v.shape[0] for k, v in batch.items() if k.endswith("image")) * info.world_size
        seconds = time.perf_counter() - started
        speed = images / seconds
        data_share = (loaded - started) / seconds  # share of the step spent building the batch
        log.write({"step": done, **values, **lrs, "img_per_s": speed, "data_share": data_share})
        bar.set_postfix(loss=f"{values['loss']:.4f}", img_s=f"{speed:.1f}")
        bar.update()
        if settings.eval_every and done % settings.eval_every == 0 and done < settings.steps:
            validate(done)
        if (
            settings.checkpoint_every
            and done % settings.checkpoint_every == 0
            and done < settings.steps
        ):
            checkpoint(done)
        if run.stop_after is not None and done >= run.stop_after:
            bar.close()
            return model
    bar.close()
    if state is None or start < settings.steps:
        validate(settings.steps)
        checkpoint(settings.steps)
    if info.is_main and run.final_path is not None:
        save_checkpoint(model, run.final_path, {"step": str(settings.steps), **run.metadata})
    sync()
    return model


__all__ = ["Run", "StepFn", "fit"]
