"""What each ``python -m dalib`` command does, one function a command (``cmd_<name>(args)``,
returning the exit status). ``dalib.__main__`` holds the command line's grammar and calls
these; their imports are inside them, so that ``python -m dalib --help`` stays quick.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dalib.config import artifact_root, get_profile


def cmd_run_notebooks(args: argparse.Namespace) -> int:
    from dalib.notebooks import run_notebooks

    run_notebooks(
        Path(args.folder), profile=args.profile or "full", only=args.only, inplace=args.inplace
    )
    return 0


def cmd_colab(args: argparse.Namespace) -> int:
    from dalib.colab import read_home, stamp_notebooks, write_home

    repo = Path(args.repo)
    pyproject = repo / "pyproject.toml"
    if not pyproject.is_file():
        raise SystemExit(f"error: {pyproject} not found: --repo must be the repository's checkout")
    if args.check and (args.repository or args.branch):
        raise SystemExit("error: --check reads the setting; it cannot also change it")
    home = read_home(pyproject)
    if args.repository or args.branch:
        home = write_home(pyproject, args.repository or home.repository, args.branch or home.branch)
        print(f"{pyproject}: repository {home.repository}, branch {home.branch}")
    differing = stamp_notebooks(repo, check=args.check)
    if args.check:
        for relative in differing:
            print(f"{relative}: badge or setup cell disagrees with {home.repository}@{home.branch}")
        if differing:
            print("run `python -m dalib colab` to stamp them", file=sys.stderr)
            return 1
        print(f"every notebook points at {home.repository}@{home.branch}")
        return 0
    print(f"stamped {len(differing)} file(s) for {home.repository}@{home.branch}"
          + "".join(f"\n  {relative}" for relative in differing))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from dalib.report import build_report

    print(build_report(args.profile))
    return 0


def _root(args: argparse.Namespace) -> Path:
    return Path(args.out) if args.out else artifact_root(args.profile)


def cmd_synth(args: argparse.Namespace) -> int:
    import numpy as np

    from dalib import synth
    from dalib.data import SPLIT_SEEDS, SynthDepthDataset, write_depth
    from dalib.io import write_png
    from dalib.sample import to_uint8

    profile = get_profile(args.profile)
    out = Path(args.out) if args.out else artifact_root(profile) / "dataset"
    groups = {
        "labeled": synth.LABELED,
        "unlabeled": synth.UNLABELED,
        "validation": synth.VALIDATION,
        "held_out": synth.HELD_OUT,
    }
    unknown = sorted(set(args.domains or ()) - set(synth.DOMAINS))
    if unknown:
        raise SystemExit(f"--domains: unknown {unknown}; choose from {sorted(synth.DOMAINS)}")
    counts = {
        "labeled": profile.n_labeled,
        "unlabeled": profile.n_unlabeled,
        "validation": profile.n_eval,
        "held_out": profile.n_eval,
    }
    splits = {"labeled": "train", "unlabeled": "train", "validation": "val", "held_out": "test"}
    for group, domains in groups.items():
        listed = []
        for domain in [d for d in domains if not args.domains or d in args.domains]:
            scenes = SynthDepthDataset(
                domain,
                args.n or counts[group],
                args.size or profile.image_size,
                artifact_root(profile) / "data",
                seed=SPLIT_SEEDS[splits[group]],
                render_size=max(profile.render_size, args.size or 0),
                progress=profile.progress,
            )
            for i in range(len(scenes)):
                sample, stem = scenes[i], f"{domain}/{{}}/{i:05d}.png"
                write_png(out / stem.format("images"), to_uint8(sample["image"]))
                write_depth(out / stem.format("depths"), sample["depth"], scale=args.depth_scale)
                write_png(
                    out / stem.format("semantic"), sample["semantic"].numpy().astype(np.uint8)
                )
                listed.append(stem.format("images"))
        (out / f"{group}.txt").parent.mkdir(parents=True, exist_ok=True)
        (out / f"{group}.txt").write_text("".join(f"{line}\n" for line in listed))
    print(
        f"wrote {out} (images/, depths/ at scale {args.depth_scale}, semantic/ per domain; *.txt splits)"
    )
    return 0


def _extra_labeled(args: argparse.Namespace) -> list:
    if not args.images:
        return []
    from dalib.data import RGBDFolder

    if not args.depths:
        raise SystemExit("--images needs --depths (16-bit depth PNGs paired by name)")
    size = get_profile(args.profile).image_size
    return [RGBDFolder(args.images, args.depths, depth_scale=args.depth_scale, size=size)]


def _settings(args: argparse.Namespace) -> dict:
    return {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr_encoder": args.lr_encoder,
        "lr_decoder": args.lr_decoder,
        "seed": args.seed,
        "amp": args.amp,
    }


def cmd_train_teacher(args: argparse.Namespace) -> int:
    from dalib.train import train_teacher

    train_teacher(
        args.profile,
        root=_root(args),
        resume=args.resume,
        name=args.name or "teacher",
        gradient_matching=args.gradient_matching,
        extra_labeled=_extra_labeled(args),
        **_settings(args),
    )
    return 0


def _semantic_options(args: argparse.Namespace) -> list:
    """The extra student losses asked for: feature alignment and / or the aux decoder."""
    from dalib.config import get_profile
    from dalib.model import SIZES
    from dalib.semantic import AuxSegmentation, FeatureAlignment, frozen_encoder

    extra = []
    profile, root = get_profile(args.profile), _root(args)
    alignment = (
        None
        if args.no_feature_alignment
        else (args.feature_alignment or profile.pretrained_encoder)
    )
    if alignment:
        frozen = frozen_encoder(alignment, profile.encoder, profile, root)
        extra.append(FeatureAlignment(frozen, args.margin, args.align_on))
    if args.aux_segmentation:
        segmenter = frozen_encoder(args.aux_segmentation, profile.encoder, profile, root)
        width = SIZES[profile.encoder].embed_dim
        extra.append(AuxSegmentation(segmenter, width, args.align_on))
    return extra


def cmd_train_student(args: argparse.Namespace) -> int:
    from dalib.train import train_student

    train_student(
        args.profile,
        root=_root(args),
        manifest=args.manifest,
        resume=args.resume,
        name=args.name,
        perturb=not args.no_perturb,
        cutmix=not args.no_cutmix,
        extra_losses=_semantic_options(args),
        trim=args.trim,
        pool_size=args.pool_size,
        gradient_matching=args.gradient_matching,
        extra_labeled=_extra_labeled(args),
        **_settings(args),
    )
    return 0


def cmd_pseudo_label(args: argparse.Namespace) -> int:
    from dalib.pseudo import pseudo_label

    result = pseudo_label(
        args.teacher,
        args.profile,
        root=_root(args),
        image_folders=args.images,
        batch_size=args.batch_size,
        on_error=args.on_error,
    )
    _report_skipped(result.skipped)
    if result.quality:
        print(json.dumps({"manifest": str(result.manifest), "quality": result.quality}, indent=1))
    return 0


def _checkpoint(args: argparse.Namespace, root: Path) -> Path:
    if args.checkpoint:
        return Path(args.checkpoint)
    checkpoints = root / "checkpoints"
    found = [checkpoints / f"{n}.safetensors" for n in ("student", "teacher")]
    return next((p for p in found if p.is_file()), found[0])


def cmd_predict(args: argparse.Namespace) -> int:
    from dalib.model import load_checkpoint
    from dalib.predict_files import predict_files

    model = load_checkpoint(_checkpoint(args, artifact_root(args.profile)))
    if args.int8:
        from dalib.export import quantize_int8

        model = quantize_int8(model)
    out = Path(args.out) if args.out else Path(".")
    report = predict_files(
        model, args.images, out, args.input_size, args.batch_size, args.on_error
    )
    print(
        f"{report.written} images -> {out} (.disparity.png, .preview.png) at "
        f"{report.images_per_s:.1f} images/s; {report.kept} kept (outputs existed)"
    )
    _report_skipped(report.skipped)
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from dalib.export import to_onnx
    from dalib.model import load_checkpoint

    model = load_checkpoint(args.checkpoint)
    path = to_onnx(model, args.out, args.size)
    side = args.size or model.config.input_size
    print(f"{args.checkpoint} -> {path} ({path.stat().st_size / 1e6:.1f} MB; input image "
          f"(B, 3, {side}, {side}) in [0, 1], output disparity (B, {side}, {side}))")
    return 0


def _report_skipped(skipped: dict[str, str]) -> None:
    if skipped:
        print(f"skipped {len(skipped)} unreadable images:", file=sys.stderr)
        for path, reason in skipped.items():
            print(f"  {path}: {reason}", file=sys.stderr)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from dalib import evaluate
    from dalib.model import load_checkpoint

    profile, root = get_profile(args.profile), _root(args)
    paths = [Path(p) for p in args.checkpoints] or [_checkpoint(args, root)]
    sets = evaluate.synthetic_sets(profile, root, args.domains)
    if not args.no_middlebury:
        sets["middlebury"] = evaluate.middlebury_set()
    if args.images or args.depths:
        if not (args.images and args.depths):
            raise SystemExit("--images and --depths go together (RGB files + 16-bit depth PNGs)")
        test = evaluate.folder_set(args.images, args.depths, args.depth_scale, args.max_depth)
        sets[test.name] = test
    predictors = {
        p.stem: evaluate.model_predictor(load_checkpoint(p), args.input_size or profile.image_size)
        for p in paths
    }
    results = evaluate.zero_shot(predictors, sets, baselines=not args.no_baselines)
    counts = ", ".join(f"{name}: {len(test)}" for name, test in sets.items())
    print(f"zero-shot relative depth, MiDaS protocol ({counts} images)")
    print(evaluate.results_table(results))
    table = Path(args.table) if args.table else root / "eval" / "-".join(predictors)
    md, js = evaluate.write_results(results, table)
    print(f"written: {md} and {js}")
    return 0


def cmd_ablation(args: argparse.Namespace) -> int:
    from dalib.ablation import SPLITS, complete_seeds, run_ablation, run_regime_map, summarise
    from dalib.io import atomic_write

    root = _root(args)
    if args.regime:
        split = args.split or "validation"
        results = run_regime_map(args.profile, args.regime, args.seeds, root, split)
        print(
            f"regime map ({split}): {sorted(results['runs'])} + labeled_only; written: "
            f"{root / 'ablation' / f'regime_{split}.json'}"
        )
        return 0
    split = args.split or "held_out"
    run_ablation(args.profile, args.seeds, args.variants, root, split)
    saved = root / "ablation" / SPLITS[split]
    table, verdicts = summarise(complete_seeds(json.loads(saved.read_text())))  # all seeds so far
    text = "AbsRel (lower is better), mean ± std over seeds\n\n" + table + "\n\n"
    text += "\n".join(f"- {v}" for v in verdicts)
    print(text)
    with atomic_write(saved.with_suffix(".md")) as temp:
        temp.write_text(text + "\n")
    print(f"written: {saved} and {saved.with_suffix('.md').name}")
    return 0
