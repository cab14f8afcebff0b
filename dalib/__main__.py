"""``python -m dalib <command>``: the command line. ``python -m dalib <command> --help`` for each."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from dalib.config import PROFILES, artifact_root, get_profile, set_threads


def _add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=None,
        help="run profile (default: $DALIB_PROFILE or full)",
    )


def _cmd_run_notebooks(args: argparse.Namespace) -> int:
    from dalib.notebooks import run_notebooks

    run_notebooks(
        Path(args.folder), profile=args.profile or "full", only=args.only, inplace=args.inplace
    )
    return 0


def _cmd_colab(args: argparse.Namespace) -> int:
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


def _cmd_report(args: argparse.Namespace) -> int:
    from dalib.report import build_report

    print(build_report(args.profile))
    return 0


def _root(args: argparse.Namespace) -> Path:
    return Path(args.out) if args.out else artifact_root(args.profile)


def _cmd_synth(args: argparse.Namespace) -> int:
    import numpy as np

    from dalib import synth
    from dalib.data import SPLIT_SEEDS, SynthDepthDataset, write_depth
    from dalib.pseudo import to_uint8, write_png

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


def _cmd_train_teacher(args: argparse.Namespace) -> int:
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


def _cmd_train_student(args: argparse.Namespace) -> int:
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


def _cmd_pseudo_label(args: argparse.Namespace) -> int:
    from dalib.pseudo import pseudo_label

    result = pseudo_label(
        args.teacher,
        args.profile,
        root=_root(args),
        image_folders=args.images,
        batch_size=args.batch_size,
    )
    if result.quality:
        print(json.dumps({"manifest": str(result.manifest), "quality": result.quality}, indent=1))
    return 0


def _checkpoint(args: argparse.Namespace, root: Path) -> Path:
    if args.checkpoint:
        return Path(args.checkpoint)
    checkpoints = root / "checkpoints"
    found = [checkpoints / f"{n}.safetensors" for n in ("student", "teacher")]
    return next((p for p in found if p.is_file()), found[0])


def _cmd_predict(args: argparse.Namespace) -> int:
    from dalib.data import read_image
    from dalib.model import load_checkpoint, predict
    from dalib.pseudo import write_disparity, write_png
    from dalib.viz import colorize

    model = load_checkpoint(_checkpoint(args, artifact_root(args.profile)))
    out = Path(args.out) if args.out else Path(".")
    for path in map(Path, args.images):
        disparity = predict(model, read_image(path), input_size=args.input_size)
        write_disparity(out / f"{path.stem}.disparity.png", disparity)
        write_png(out / f"{path.stem}.preview.png", colorize(disparity))
        print(f"{path} -> {out / path.stem}.disparity.png, .preview.png")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
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


def _cmd_ablation(args: argparse.Namespace) -> int:
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


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoints", nargs="*", help="dalib checkpoints to compare (default: --checkpoint)"
    )
    p.add_argument(
        "--domains", nargs="+", default=None, help="synthetic test domains (default: held-out)"
    )
    p.add_argument("--images", default=None, help="your RGB-D test folder: images")
    p.add_argument("--depths", default=None, help="... and its 16-bit depth PNGs (paired by name)")
    p.add_argument(
        "--depth-scale",
        type=float,
        default=None,
        help="metres per depth unit (default: the PNG's own)",
    )
    p.add_argument("--max-depth", type=float, default=None, help="depth cap of your folder, metres")
    p.add_argument(
        "--input-size", type=int, default=None, help="network side (default: the profile's)"
    )
    p.add_argument(
        "--no-middlebury", action="store_true", help="skip the real Middlebury photograph"
    )
    p.add_argument(
        "--no-baselines", action="store_true", help="skip the constant and ground-plane rows"
    )
    p.add_argument(
        "--table", default=None, help="write PATH.md / PATH.json (default <out>/eval/<names>)"
    )


def _add_out(
    parser: argparse.ArgumentParser, what: str = "artifact folder (default runs/<profile>)"
) -> None:
    parser.add_argument("--out", default=None, help=what)


def _add_training(parser: argparse.ArgumentParser) -> None:
    _add_out(parser)
    parser.add_argument(
        "--resume", action="store_true", help="continue the latest checkpoint of this run"
    )
    parser.add_argument(
        "--name",
        default=None,
        help="checkpoint name (default: teacher; a student's from its options: student = "
        "the full method, student_perturb without L_feat, student_plain clean images)",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="optimiser steps (default: the profile's)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="labeled images per process and step"
    )
    parser.add_argument(
        "--lr-encoder", type=float, default=None, help="encoder learning rate (default 5e-5)"
    )
    parser.add_argument(
        "--lr-decoder", type=float, default=None, help="decoder learning rate (default 5e-4)"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of init, data order and augmentation"
    )
    parser.add_argument(
        "--amp",
        choices=("auto", "off", "bf16", "fp16"),
        default=None,
        help="mixed precision (auto: bf16/fp16 on CUDA, off on CPU)",
    )
    parser.add_argument(
        "--gradient-matching", type=float, default=0.5, help="weight of gradient matching (0: off)"
    )
    parser.add_argument(
        "--images", default=None, help="extra labeled images folder (with --depths)"
    )
    parser.add_argument(
        "--depths", default=None, help="16-bit depth PNGs paired with --images by name"
    )
    parser.add_argument(
        "--depth-scale", type=float, default=None, help="stored value per metre of --depths"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dalib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    p = sub.add_parser("run-notebooks", help="execute the notebook series and write the report")
    _add_profile(p)
    p.add_argument(
        "--folder", default="notebooks", help="folder of NN_*.ipynb (default: notebooks)"
    )
    p.add_argument(
        "--only", nargs="*", default=(), help="run only notebooks whose names start so, e.g. 00 03"
    )
    p.add_argument(
        "--inplace",
        action="store_true",
        help="write outputs into the notebooks themselves (how committed outputs are made)",
    )
    p.set_defaults(func=_cmd_run_notebooks)

    p = sub.add_parser(
        "colab",
        help="stamp the Colab badge and setup cell into every notebook from pyproject.toml",
    )
    p.add_argument("--repository", default=None, help="re-point to this GitHub URL (a fork)")
    p.add_argument("--branch", default=None, help="re-point to this branch")
    p.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 naming what disagrees"
    )
    p.add_argument("--repo", default=".", help="the repository checkout (default: .)")
    p.set_defaults(func=_cmd_colab)

    p = sub.add_parser(
        "report", help="gather runs/<profile>/report.md from the sections written so far"
    )
    _add_profile(p)
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "synth", help="write a synthetic RGB-D dataset: RGB, 16-bit depth, semantic PNGs, splits"
    )
    _add_profile(p)
    _add_out(p, "output folder (default runs/<profile>/dataset)")
    p.add_argument("--domains", nargs="*", default=None, help="only these domains (default: all)")
    p.add_argument(
        "--n", type=int, default=None, help="scenes per domain (default: the profile's counts)"
    )
    p.add_argument(
        "--size", type=int, default=None, help="image side in px (default: the profile's)"
    )
    p.add_argument(
        "--depth-scale", type=float, default=256.0, help="16-bit depth code per metre (default 256)"
    )
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("train-teacher", help="train the teacher on the labeled domains")
    _add_profile(p)
    _add_training(p)
    p.set_defaults(func=_cmd_train_teacher)

    p = sub.add_parser(
        "pseudo-label", help="label the unlabeled pool with the teacher (resumable, sharded)"
    )
    _add_profile(p)
    _add_out(p)
    p.add_argument(
        "--teacher",
        default=None,
        help="teacher checkpoint (default <out>/checkpoints/teacher.safetensors)",
    )
    p.add_argument(
        "--images", nargs="*", default=(), help="more unlabeled image folders for the pool"
    )
    p.add_argument("--batch-size", type=int, default=32, help="images per teacher forward pass")
    p.set_defaults(func=_cmd_pseudo_label)

    p = sub.add_parser(
        "train-student", help="train a student from scratch on labeled + pseudo-labeled images"
    )
    _add_profile(p)
    _add_training(p)
    p.add_argument(
        "--manifest",
        default=None,
        help="pseudo-label manifest (default <out>/pseudo/manifest.json)",
    )
    p.add_argument(
        "--no-perturb", action="store_true", help="no colour jitter / grayscale / blur on unlabeled"
    )
    p.add_argument("--no-cutmix", action="store_true", help="no CutMix on unlabeled images")
    p.add_argument(
        "--trim",
        type=float,
        default=0.0,
        help="leave each pseudo label's largest-loss pixels out of L_u (fraction; e.g. 0.1)",
    )
    p.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help="train on this many pseudo-labeled images only (evenly spaced; default all)",
    )
    p.add_argument(
        "--feature-alignment",
        metavar="SOURCE",
        default=None,
        help="the frozen encoder of L_feat: 'synthetic' (the stand-in for DINOv2, trained and "
        "cached if missing), 'dinov2' (timm, online) or a segmenter checkpoint (default: the "
        "profile's pretrained encoder, as the full method uses)",
    )
    p.add_argument("--no-feature-alignment", action="store_true", help="train without L_feat")
    p.add_argument("--margin", type=float, default=0.85, help="L_feat margin alpha (1: none)")
    p.add_argument(
        "--align-on",
        choices=("unlabeled", "labeled", "both"),
        default="unlabeled",
        help="whose images L_feat (and the aux decoder) use",
    )
    p.add_argument(
        "--aux-segmentation",
        metavar="SOURCE",
        default=None,
        help="the paper's negative result: a segmentation decoder learning SOURCE's discrete "
        "masks ('synthetic' or a segmenter checkpoint)",
    )
    p.set_defaults(func=_cmd_train_student)

    p = sub.add_parser("ablation", help="the paper's Table 9 at toy scale: variants a-d x seeds")
    _add_profile(p)
    _add_out(p)
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the profile's")
    p.add_argument(
        "--variants",
        nargs="+",
        default=list("abcd"),
        choices=list("abcde"),
        help="Table 9's rows a-d (default), e: + trimmed pseudo labels (optional row)",
    )
    p.add_argument(
        "--split",
        choices=("validation", "held_out"),
        default=None,
        help="score on the validation domains (where settings are chosen) or the held-out "
        "ones + Middlebury (final tables); default held_out, validation with --regime",
    )
    p.add_argument(
        "--regime",
        type=float,
        nargs="+",
        default=None,
        metavar="RATIO",
        help="the regime map instead: the full method with and without strong perturbation at "
        "these unlabeled:labeled ratios (capped at the whole pool), against labeled_only",
    )
    p.set_defaults(func=_cmd_ablation)

    for name, func, text in (
        ("predict", _cmd_predict, "image(s) -> 16-bit disparity PNG + colour preview"),
        ("evaluate", _cmd_evaluate, "checkpoint(s) -> zero-shot AbsRel / delta1 table + baselines"),
    ):
        p = sub.add_parser(name, help=text)
        _add_profile(p)
        _add_out(p, "output folder (predict; default .) / artifact folder (evaluate)")
        p.add_argument(
            "--checkpoint", default=None, help="dalib checkpoint (default: student, else teacher)"
        )
        if name == "evaluate":
            _add_evaluate(p)
        if name == "predict":
            p.add_argument("images", nargs="+", help="image files")
            p.add_argument(
                "--input-size", type=int, default=None, help="network side (default: the model's)"
            )
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if "OMP_NUM_THREADS" not in os.environ:  # torchrun sets it to share the cores
        set_threads()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
