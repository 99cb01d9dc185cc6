"""The `multisparc` command line: one subcommand per module in `multisparc.commands`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Subcommand name -> module in multisparc.commands exposing `add_arguments(parser)` and `run(args) -> int`.
# Modules are imported lazily so `multisparc --help` stays fast and torch loads only when needed.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "align a synthetic scene with the shipped network and print its errors"),
    "cads": ("cads", "build, inspect and picture CAD libraries (cads.json)"),
    "synth": ("synth", "sample synthetic scenes and write them as scene bundles"),
    "bundle": ("bundle", "make a scene bundle of one RGB-D frame (image, depth, intrinsics, boxes)"),
    "convert": ("convert", "convert released datasets (ScanNet + Scan2CAD + ShapeNet) into scene bundles"),
    "estimate": ("estimate", "depth, normals and intrinsics of photos (a monocular depth network): scene bundles"),
    "train": ("train", "train Multi-SPARC-Net on synthetic scenes rendered on the fly"),
    "align": ("align", "align CAD models to scene bundles with a trained network"),
    "bench": ("bench", "benchmarks that write their results into BENCHMARKS.md"),
    "evaluate": ("evaluate", "run alignment methods over scene bundles and score them (Table 1 layout)"),
    "benchset": ("benchset", "make the seeded synthetic benchmark sets (procedural / SweetHome3D CADs)"),
}


class UserError(Exception):
    """An error caused by the user's input; printed as one line, without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multisparc",
        description="Single-image 3D scene reconstruction by joint sparse render-and-compare CAD alignment.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(f"multisparc.commands.{module_name}")
        sub_parser = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        return int(args._run(args) or 0)
    except (UserError, OSError, ValueError) as err:
        # Our readers raise ValueError subclasses (BundleError, CadError, ...) whose message names the file;
        # an OSError (a folder not writable, a full disk) names it too.
        print(f"multisparc {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
