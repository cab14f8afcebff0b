"""``python -m dalib <command>``: the command line. ``python -m dalib <command> --help`` for each."""

from __future__ import annotations

import argparse
import os
import sys

from dalib import commands
from dalib.config import PROFILES, set_threads


def _add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=None,
        help="run profile (default: $DALIB_PROFILE or full)",
    )


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


def _add_on_error(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--on-error",
        choices=("fail", "skip"),
        default="fail",
        help="an unreadable image: stop naming it (default), or skip it, counted and listed",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dalib", description=__doc__)
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of an error"
    )
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
    p.set_defaults(func=commands.cmd_run_notebooks)

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
    p.set_defaults(func=commands.cmd_colab)

    p = sub.add_parser(
        "report", help="gather runs/<profile>/report.md from the sections written so far"
    )
    _add_profile(p)
    p.set_defaults(func=commands.cmd_report)

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
    p.set_defaults(func=commands.cmd_synth)

    p = sub.add_parser("train-teacher", help="train the teacher on the labeled domains")
    _add_profile(p)
    _add_training(p)
    p.set_defaults(func=commands.cmd_train_teacher)

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
    _add_on_error(p)
    p.set_defaults(func=commands.cmd_pseudo_label)

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
    p.set_defaults(func=commands.cmd_train_student)

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
    p.set_defaults(func=commands.cmd_ablation)

    p = sub.add_parser("export-onnx", help="dalib checkpoint -> ONNX (batch dynamic, sides fixed)")
    p.add_argument("checkpoint", help="dalib checkpoint (.safetensors)")
    p.add_argument("out", help="the .onnx file to write")
    p.add_argument(
        "--size", type=int, default=None, help="square input side, px (default: the model's)"
    )
    p.set_defaults(func=commands.cmd_export_onnx)

    for name, func, text in (
        ("predict", commands.cmd_predict, "image(s) -> 16-bit disparity PNG + colour preview"),
        ("evaluate", commands.cmd_evaluate, "checkpoint(s) -> zero-shot AbsRel / delta1 table + baselines"),
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
            p.add_argument(
                "images", nargs="+", help="image files, folders (searched recursively) or globs"
            )
            p.add_argument(
                "--input-size", type=int, default=None, help="network side (default: the model's)"
            )
            p.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
            p.add_argument(
                "--int8",
                action="store_true",
                help="int8 linear layers on the CPU (torchao; faster, slightly less accurate)",
            )
            _add_on_error(p)
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if "OMP_NUM_THREADS" not in os.environ:  # torchrun sets it to share the cores
        set_threads()
    try:
        return args.func(args)
    except (OSError, ValueError) as err:  # a missing or bad file, a bad value: the user's to fix
        if args.debug:
            raise
        raise SystemExit(f"dalib {args.command}: error: {err} (--debug shows the traceback)") from None


if __name__ == "__main__":
    sys.exit(main())
