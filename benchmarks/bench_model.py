"""Speed of dalib.model.DepthAnything: inference and training throughput, achieved GFLOP/s.

    python benchmarks/bench_model.py                       # micro, tiny, vits at 98..224
    python benchmarks/bench_model.py --skip-table --compare-reference [--official CLONE]
    python benchmarks/bench_model.py --channels-last both  # NCHW vs channels_last head
    python benchmarks/bench_model.py --sizes vits,vitl --resolutions 98,518 --no-train --infer-batch 1

For every (size, resolution): parameters, forward GFLOP per image (counted with
torch.utils.flop_counter.FlopCounterMode, attention included: :data:`CPU_ATTENTION_FLOPS`),
inference images/s (batch --infer-batch, no_grad), training images/s (forward + backward +
AdamW step, batch printed) and the achieved GFLOP/s against a measured fp32 2048^2 matmul
peak on this machine. Combinations whose estimated time exceeds --budget seconds are skipped
(and listed). ``--compare-reference`` times dalib's vits at 518x518 beside Hugging Face
transformers' DepthAnythingForDepthEstimation (ViT-S config, SDPA attention; when installed)
and, with ``--official``, the released code of a local clone, all with dalib's weights and in
rotating rounds in one process, then splits dalib's forward by stage (attention, MLP, DPT
head) with each stage's GFLOP/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from dalib.config import set_threads
from dalib.convert import official_from_transformers
from dalib.model import SIZES, DepthAnything, export_official_state_dict, load_official_checkpoint


def best_time(fn, repeats: int, warmup: int = 2) -> float:
    """Fastest wall time of ``repeats`` calls of fn (seconds), after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak(side: int = 2048, repeats: int = 5) -> float:
    """Measured fp32 GFLOP/s of a side x side matmul."""
    a, b = torch.randn(side, side), torch.randn(side, side)
    return 2 * side**3 / best_time(lambda: a @ b, repeats) / 1e9


def _attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _attention_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _attention_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _attention_backward_flops,
}
"""torch 2.14's FlopCounterMode has no formula for the CPU flash-attention kernels that
scaled_dot_product_attention runs on a CPU and counts them as 0 FLOPs (pytorch/pytorch#195460):
at 518 px that drops 35 of ViT-S + DPT's 115 GFLOP. The CUDA kernels' formulas fit them (same
leading arguments); the functions get the tensors' shapes."""


def flop_counter() -> FlopCounterMode:
    """A FlopCounterMode that also counts attention on the CPU (:data:`CPU_ATTENTION_FLOPS`)."""
    return FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS)


def count_flops(fn) -> int:
    with flop_counter() as counter:
        fn()
    return counter.get_total_flops()


def build(encoder: str, channels_last: bool) -> DepthAnything:
    model = DepthAnything(encoder)
    if channels_last:
        model.depth_head.to(memory_format=torch.channels_last)
    return model


def train_throughput(
    model: DepthAnything, side: int, batch: int, repeats: int
) -> tuple[float, int]:
    """(images/s, FLOPs per step) of forward + backward + AdamW at ``batch`` x side^2."""
    x = torch.randn(batch, 3, side, side)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step():
        opt.zero_grad(set_to_none=True)
        model(x).mean().backward()
        opt.step()

    flops = count_flops(lambda: model(x).mean().backward())
    return batch / best_time(step, repeats), flops


def bench_one(encoder: str, side: int, args, peak: float, channels_last: bool) -> str | None:
    """One table row, or None when its estimated time exceeds ``args.budget``."""
    model = build(encoder, channels_last).eval()
    with torch.no_grad():
        fwd_flops = count_flops(lambda: model(torch.randn(1, 3, side, side)))
    big = SIZES[encoder].embed_dim >= 768
    train_batch = 0 if args.no_train else max(1, args.train_batch // 4) if big else args.train_batch
    # each timing repeats (repeats + 2 warm-up) calls; a training image costs ~3 forwards
    images = args.infer_batch + 3 * train_batch
    if (args.repeats + 2) * fwd_flops * images / (0.15 * peak * 1e9) > args.budget:
        return None
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    xi = torch.randn(args.infer_batch, 3, side, side)
    with torch.no_grad():
        infer = args.infer_batch / best_time(lambda: model(xi), args.repeats)
    row = (
        f"{encoder:>5} {side:>4} {'CL' if channels_last else '  '} {params / 1e6:>7.2f}M "
        f"{fwd_flops / 1e9:>8.2f} {infer:>8.2f} {fwd_flops * infer / 1e9:>7.1f} "
        f"({100 * fwd_flops * infer / 1e9 / peak:>3.0f}%)"
    )
    if not train_batch:
        return row
    train, step_flops = train_throughput(model, side, train_batch, args.repeats)
    gflops = step_flops / train_batch * train / 1e9
    return f"{row} {train_batch:>3} {train:>8.2f} {gflops:>7.1f} ({100 * gflops / peak:>3.0f}%)"


def transformers_vits(side: int):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        image_size=518,
        patch_size=14,
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        out_indices=[9, 10, 11, 12],
        layerscale_value=1.0,
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        fusion_hidden_size=64,
        patch_size=14,
        neck_hidden_sizes=[48, 96, 192, 384],
        reassemble_hidden_size=384,
        head_hidden_size=32,
    )
    model = DepthAnythingForDepthEstimation(config).eval()
    # the wrapper refuses SDPA at construction, but its DINOv2 backbone dispatches on this at
    # run time: give the reference the same fused attention dalib uses (eager is slower)
    model.backbone.config._attn_implementation = "sdpa"
    return model


def official_vits(repo: Path) -> nn.Module:
    """The released code's ViT-S model (``DPT_DINOv2`` of a local clone of
    github.com/LiheYoung/Depth-Anything; its DINOv2 is built from the clone's torchhub folder,
    so nothing is downloaded)."""
    if not (repo / "depth_anything" / "dpt.py").is_file():
        raise SystemExit(f"--official {repo}: no depth_anything/dpt.py there (a clone of the released code)")
    sys.path.insert(0, str(repo))
    cwd = os.getcwd()
    os.chdir(repo)  # torch.hub.load(source="local") reads 'torchhub/...' relative to here
    try:
        from depth_anything.dpt import DPT_DINOv2

        return DPT_DINOv2(encoder="vits", features=64, out_channels=[48, 96, 192, 384]).eval()
    finally:
        os.chdir(cwd)


def rounds(fns: dict[str, Callable[[], object]], n: int) -> dict[str, list[float]]:
    """Wall times of ``n`` rounds in which every fn runs once, the order rotating from round
    to round, so that a load change on this shared machine hits every side alike."""
    names, times = list(fns), {name: [] for name in fns}
    for k in range(n):
        for name in names[k % len(names):] + names[: k % len(names)]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def compare_implementations(args, peak: float) -> None:
    """dalib's ViT-S at 518 px beside Hugging Face transformers (when installed) and the
    released code (``--official``), with equal weights, batch 1, no_grad: one table."""
    side = 518
    torch.manual_seed(0)
    ours = DepthAnything("vits").eval()
    others: dict[str, nn.Module] = {}
    try:
        import transformers

        reference = transformers_vits(side)
        load_official_checkpoint(ours, official_from_transformers(reference.state_dict()))
        others[f"transformers {transformers.__version__} (SDPA)"] = reference
    except ImportError:
        print("transformers is not installed: its row is left out")
    if args.official:
        official = official_vits(Path(args.official))
        official.load_state_dict(export_official_state_dict(ours), strict=True)
        others["released code (LiheYoung/Depth-Anything)"] = official
    x = torch.randn(1, 3, side, side)
    with torch.no_grad():
        flops = count_flops(lambda: ours(x))
        expected = ours(x)
        outputs = {"dalib": expected}
        fns = {"dalib": lambda: ours(x)}
        for name, model in others.items():
            if name.startswith("transformers"):
                fns[name] = lambda m=model: m(pixel_values=x).predicted_depth
            else:
                fns[name] = lambda m=model: m(x)
            outputs[name] = fns[name]()
        for fn in fns.values():
            fn()  # warm-up
        times = rounds(fns, args.pairs)
    print(f"\nViT-S + DPT at {side}x{side}, batch 1, no_grad, equal weights, {flops / 1e9:.1f} GFLOP "
          f"(attention counted), {args.pairs} rotating rounds, matmul peak {peak:.0f} GFLOP/s:")
    print("| implementation | best s | median s | GFLOP/s | % of peak | dalib faster by (median of rounds) | max rel. diff to dalib |")
    print("|---|---|---|---|---|---|---|")
    scale = expected.abs().max()
    for name, t in times.items():
        ratio = median(a / b for a, b in zip(t, times["dalib"], strict=True))
        diff = float((outputs[name] - expected).abs().max() / scale)
        print(f"| {name} | {min(t):.3f} | {median(t):.3f} | {flops / min(t) / 1e9:.0f} | "
              f"{100 * flops / min(t) / 1e9 / peak:.0f} % | x{ratio:.2f} | {diff:.1e} |")


def _stages(model: nn.Module) -> dict[str, list[nn.Module]]:
    blocks = model.pretrained.blocks
    return {
        "attention (qkv, SDPA, proj)": [b.attn for b in blocks],
        "MLP (fc1, GELU, fc2)": [b.mlp for b in blocks],
        "DPT head": [model.depth_head],
    }


def stage_split(encoder: str, side: int, repeats: int, peak: float) -> None:
    """Where a forward's time goes: wall time per stage (forward hooks, best of ``repeats``
    runs) and each stage's counted FLOPs, so that a slow stage shows as low GFLOP/s."""
    torch.manual_seed(0)
    model = DepthAnything(encoder).eval()
    images = torch.randn(1, 3, side, side)
    stages = _stages(model)
    spent: dict[str, float] = {}
    started: dict[int, float] = {}

    def before(module, _inputs):
        started[id(module)] = time.perf_counter()

    def after(name):
        def hook(module, _inputs, _output):
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - started[id(module)]

        return hook

    handles = [
        handle
        for name, modules in stages.items()
        for m in modules
        for handle in (m.register_forward_pre_hook(before), m.register_forward_hook(after(name)))
    ]
    with torch.inference_mode():
        with flop_counter() as counter:
            model(images)
        counts = counter.get_flop_counts()
        best: dict[str, float] = {}
        totals = []
        for _ in range(repeats + 1):
            spent.clear()
            start = time.perf_counter()
            model(images)
            totals.append(time.perf_counter() - start)
            for name, seconds in spent.items():
                best[name] = min(best.get(name, seconds), seconds)
    for handle in handles:
        handle.remove()

    def flops_of(modules: list[nn.Module]) -> float:
        names = {m: n for n, m in model.named_modules()}
        return sum(
            sum(counts.get(f"DepthAnything.{names[m]}", {}).values()) for m in modules
        )

    total = min(totals)
    print(f"\nstage split of the {encoder} forward at {side} px ({total:.3f} s, best of "
          f"{len(totals)}; matmul peak {peak:.0f} GFLOP/s):")
    print("| stage | s | share | GFLOP | GFLOP/s | % of peak |")
    print("|---|---|---|---|---|---|")
    rest = total
    for name, modules in stages.items():
        seconds, flops = best.get(name, 0.0), flops_of(modules)
        rest -= seconds
        rate = flops / seconds / 1e9 if seconds else 0.0
        print(f"| {name} | {seconds:.3f} | {100 * seconds / total:.0f} % | {flops / 1e9:.1f} | "
              f"{rate:.0f} | {100 * rate / peak:.0f} % |")
    print(f"| the rest (patch embedding, norms, read-outs) | {rest:.3f} | {100 * rest / total:.0f} % | | | |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="micro,tiny,vits", help="comma list of encoders")
    parser.add_argument("--resolutions", default="98,224", help="comma list of square sides (px)")
    parser.add_argument("--infer-batch", type=int, default=4)
    parser.add_argument("--train-batch", type=int, default=16, help="(vitb/vitl use a quarter)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-train", action="store_true", help="inference columns only")
    parser.add_argument("--pairs", type=int, default=6, help="timed rounds in --compare-reference")
    parser.add_argument(
        "--budget", type=float, default=60.0, help="skip combos estimated above this (s)"
    )
    parser.add_argument("--channels-last", choices=["no", "yes", "both"], default="no")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--compare-reference",
        action="store_true",
        help="also time vits at 518 beside transformers (when installed) and --official, and split it by stage",
    )
    parser.add_argument(
        "--official", default=None, help="a local clone of github.com/LiheYoung/Depth-Anything to time too"
    )
    parser.add_argument("--skip-table", action="store_true", help="only the reference comparison")
    args = parser.parse_args()
    threads = set_threads(args.threads)
    peak = matmul_peak()
    print(
        f"torch {torch.__version__}, {threads} threads, fp32 2048^2 matmul peak {peak:.1f} GFLOP/s"
    )
    if not args.skip_table:
        layouts = {"no": [False], "yes": [True], "both": [False, True]}[args.channels_last]
        print(
            f"{'size':>5} {'px':>4} CL {'params':>8} {'GFLOP/im':>8} {'infer/s':>8} "
            f"{'GFLOP/s':>14} "
            f"{'bs':>3} {'train/s':>8} {'GFLOP/s':>14}"
        )
        skipped = []
        for encoder in args.sizes.split(","):
            for side in (int(s) for s in args.resolutions.split(",")):
                for channels_last in layouts:
                    row = bench_one(encoder, side, args, peak, channels_last)
                    print(row) if row else skipped.append(f"{encoder}@{side}")
        if skipped:
            print(
                f"skipped (estimated over {args.budget:.0f} s): {', '.join(sorted(set(skipped)))}"
            )
    if args.compare_reference:
        compare_implementations(args, peak)
        stage_split("vits", 518, args.repeats, peak)


if __name__ == "__main__":
    main()
