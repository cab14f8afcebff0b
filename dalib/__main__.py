"""``python -m dalib <command>``: the command line. ``python -m dalib <command> --help`` for each."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dalib.config import PROFILES


def _add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None,
                        help="run profile (default: $DALIB_PROFILE or full)")


def _cmd_run_notebooks(args: argparse.Namespace) -> int:
    from dalib.notebooks import run_notebooks

    run_notebooks(Path(args.folder), profile=args.profile or "full", only=args.only,
                  inplace=args.inplace)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from dalib.report import build_report

    print(build_report(args.profile))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dalib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    p = sub.add_parser("run-notebooks", help="execute the notebook series and write the report")
    _add_profile(p)
    p.add_argument("--folder", default="notebooks", help="folder of NN_*.ipynb (default: notebooks)")
    p.add_argument("--only", nargs="*", default=(), help="run only notebooks whose names start so, e.g. 00 03")
    p.add_argument("--inplace", action="store_true",
                   help="write outputs into the notebooks themselves (how committed outputs are made)")
    p.set_defaults(func=_cmd_run_notebooks)

    p = sub.add_parser("report", help="gather runs/<profile>/report.md from the sections written so far")
    _add_profile(p)
    p.set_defaults(func=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
