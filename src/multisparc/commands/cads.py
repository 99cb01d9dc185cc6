"""Build, check and picture CAD libraries (the `cads.json` index of the scene bundle format).

multisparc cads procedural --out DIR [--per-class N] [--seed S] [--style classic|wide]  procedural furniture
multisparc cads sweethome3d --src DIR --out cads.json [--half H]  SweetHome3D catalogue, made metric
multisparc cads folder --src DIR --out cads.json                  one sub-folder per category
multisparc cads check --cads cads.json                            load every mesh, report problems
multisparc cads sheet --cads cads.json --out sheet.png            contact sheet of every model

`check` lists every model, then every problem: a mesh that cannot be loaded (exit code 1) and a size
implausible for the class (a mesh in millimetres or centimetres without its unit_scale; a warning).
`folder` checks the meshes it finds the same way and leaves the broken ones out of the index it writes
(exit code 1 when it left any out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from multisparc.cad.index import SWEETHOME3D_HALVES
from multisparc.cad.procedural import PROCEDURAL_STYLES, build_library

if TYPE_CHECKING:
    from multisparc.cad.check import CadReport


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="action", required=True)
    procedural = sub.add_parser("procedural", help="generate the procedural furniture library")
    procedural.add_argument("--out", type=Path, required=True)
    procedural.add_argument("--per-class", type=int, default=8)
    procedural.add_argument("--seed", type=int, default=0)
    procedural.add_argument(
        "--style",
        choices=PROCEDURAL_STYLES,
        default="classic",
        help="'classic': the frozen original library; 'wide': many more part layouts per class (default: classic)",
    )
    sweethome = sub.add_parser("sweethome3d", help="index the SweetHome3D catalogue with metric sizes")
    sweethome.add_argument("--src", type=Path, required=True)
    sweethome.add_argument("--out", type=Path, required=True)
    sweethome.add_argument(
        "--half",
        choices=SWEETHOME3D_HALVES,
        default="all",
        help="the fixed split by model: 'train' for training, 'test' for the benchmark sets (default: all)",
    )
    folder = sub.add_parser("folder", help="index a folder of meshes, one sub-folder per category")
    folder.add_argument("--src", type=Path, required=True)
    folder.add_argument("--out", type=Path, required=True)
    check = sub.add_parser("check", help="load every mesh of an index and report its state")
    check.add_argument("--cads", type=Path, required=True)
    sheet = sub.add_parser("sheet", help="contact sheet PNG of every model of an index")
    sheet.add_argument("--cads", type=Path, required=True)
    sheet.add_argument("--out", type=Path, required=True)
    sheet.add_argument("--cols", type=int, default=6)


def run(args: argparse.Namespace) -> int:
    from multisparc.cad import CadIndex

    if args.action == "procedural":
        path = build_library(args.out, per_class=args.per_class, seed=args.seed, style=args.style)
        print(f"wrote {len(CadIndex.load(path))} procedural models, index {path}")
    elif args.action == "sweethome3d":
        require_index_path(args.out)
        index = CadIndex.from_sweethome3d(args.src, half=args.half)
        index.save(args.out)
        print(f"indexed {len(index)} models into {args.out}")
    elif args.action == "folder":
        return index_folder(args.src, args.out)
    elif args.action == "check":
        return check_index(args.cads)
    elif args.action == "sheet":
        from multisparc.cad.contact_sheet import render_contact_sheet

        index = CadIndex.load(args.cads)
        render_contact_sheet([(cad_id, index.mesh(cad_id)) for cad_id in index], args.out, cols=args.cols)
        print(f"wrote {args.out}")
    return 0


def require_index_path(out: Path) -> None:
    """CadIndexError naming `out` when it is a folder: --out is the cads.json file to write."""
    from multisparc.cad.errors import CadIndexError

    if out.is_dir():
        raise CadIndexError(out, "is a folder; --out is the index file to write, e.g. " + str(out / "cads.json"))


def index_folder(src: Path, out: Path) -> int:
    """`cads folder`: index the meshes under src, leaving out (and listing) those that cannot be loaded."""
    from multisparc.cad import CadIndex
    from multisparc.cad.check import check_cad
    from multisparc.cad.errors import CadIndexError

    require_index_path(out)
    found = CadIndex.from_folder(src)
    reports = [check_cad(found, cad_id) for cad_id in found]
    index = CadIndex([found[report.cad_id] for report in reports if report.error is None], source=found.source)
    if not len(index):
        raise CadIndexError(src, f"none of its {len(found)} meshes can be loaded, e.g. {reports[0].error}")
    index.save(out)
    print(f"indexed {len(index)} models into {out}")
    return _report_problems("folder", reports, "left out of the index")


def check_index(cads_json: Path) -> int:
    """`cads check`: one line per model of the index (faces, extent, watertightness), then every problem."""
    from multisparc.cad import CadIndex
    from multisparc.cad.check import check_cad

    index = CadIndex.load(cads_json)
    reports = []
    for cad_id in index:
        report = check_cad(index, cad_id)
        reports.append(report)
        head = f"{cad_id:24s} {index[cad_id].category:10s}"
        if report.mesh is None:
            print(f"{head} cannot be loaded (below)")
            continue
        extent = " x ".join(f"{v:.2f}" for v in report.extent)
        unit = "m" if report.size_warning is None else "(not metres? below)"
        state = "watertight" if report.mesh.is_watertight else "open"
        print(f"{head} {len(report.mesh.faces):7d} faces  {extent} {unit}  {state}")
    return _report_problems("check", reports, "cannot be loaded")


def _report_problems(action: str, reports: list[CadReport], broken: str) -> int:
    """Print every problem of the reports to stderr; 1 when a mesh could not be loaded, else 0."""
    errors = [report.error for report in reports if report.error is not None]
    warnings = [report.size_warning for report in reports if report.size_warning is not None]
    if errors:
        print(f"multisparc cads {action}: {len(errors)} of {len(reports)} model(s) {broken}:", file=sys.stderr)
        print("\n".join(f"  {error}" for error in errors), file=sys.stderr)
    if warnings:
        print(f"multisparc cads {action}: {len(warnings)} model(s) of implausible size:", file=sys.stderr)
        print("\n".join(f"  {warning}" for warning in warnings), file=sys.stderr)
    return 1 if errors else 0
