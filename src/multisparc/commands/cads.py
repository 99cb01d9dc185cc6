"""Build, check and picture CAD libraries (the `cads.json` index of the scene bundle format).

multisparc cads procedural --out DIR [--per-class N] [--seed S]   embedded procedural furniture
multisparc cads sweethome3d --src DIR --out cads.json [--half H]  SweetHome3D catalogue, made metric
multisparc cads folder --src DIR --out cads.json                  one sub-folder per category
multisparc cads check --cads cads.json                            load every mesh, report problems
multisparc cads sheet --cads cads.json --out sheet.png            contact sheet of every model
"""

from __future__ import annotations

import argparse
from pathlib import Path

from multisparc.cad.index import SWEETHOME3D_HALVES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="action", required=True)
    procedural = sub.add_parser("procedural", help="generate the procedural furniture library")
    procedural.add_argument("--out", type=Path, required=True)
    procedural.add_argument("--per-class", type=int, default=8)
    procedural.add_argument("--seed", type=int, default=0)
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
        from multisparc.cad.procedural import build_library

        path = build_library(args.out, per_class=args.per_class, seed=args.seed)
        print(f"wrote {len(CadIndex.load(path))} procedural models, index {path}")
    elif args.action in ("sweethome3d", "folder"):
        if args.action == "sweethome3d":
            index = CadIndex.from_sweethome3d(args.src, half=args.half)
        else:
            index = CadIndex.from_folder(args.src)
        index.save(args.out)
        print(f"indexed {len(index)} models into {args.out}")
    elif args.action == "check":
        index = CadIndex.load(args.cads)
        for cad_id in index:
            mesh = index.mesh(cad_id)
            extent = " x ".join(f"{v:.2f}" for v in index.extent(cad_id))
            state = "watertight" if mesh.is_watertight else "open"
            print(f"{cad_id:24s} {index[cad_id].category:10s} {len(mesh.faces):7d} faces  {extent} m  {state}")
    elif args.action == "sheet":
        from multisparc.cad.contact_sheet import render_contact_sheet

        index = CadIndex.load(args.cads)
        render_contact_sheet([(cad_id, index.mesh(cad_id)) for cad_id in index], args.out, cols=args.cols)
        print(f"wrote {args.out}")
    return 0
