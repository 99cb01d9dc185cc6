"""Make the seeded benchmark sets: synthetic scene bundles with procedural and SweetHome3D CADs (the test
half of the catalogue), each clean, with realistic and with predicted perception noise, the clean
scenes with depth scaled by 1.05 and without masks, and structured scenes (objects arranged as in real
rooms, 2 to 5 a scene), clean and realistic.

multisparc benchset --out DIR --scenes N [--seed S] [--sweethome3d CATALOGUE_DIR]
                    [--sets procedural-clean,procedural-realistic,sweethome3d-clean,sweethome3d-realistic,
                            procedural-depth105,procedural-boxes,sweethome3d-depth105,sweethome3d-boxes,
                            procedural-predicted,sweethome3d-predicted,
                            procedural-structured-clean,procedural-structured-realistic,
                            sweethome3d-structured-clean,sweethome3d-structured-realistic]
                    [--procedural-cads cads.json | --per-class K --cads-seed S]

Writes DIR/<set>/scene_00000 ... and DIR/<set>/cads.json for each set (`multisparc.benchmarks.sets`):
scene i of every set comes from the seed (S, i), so a library's sets show the same scenes. The procedural
library is built (K models a class, seed 0 and K = 8 as a default training run) unless --procedural-cads
gives one, e.g. the library a model was trained with (runs/NAME/cads/cads.json). The SweetHome3D sets
need the catalogue folder (e.g. ../shared/data/cad/sweethome3d), of which they use the test half only
(`multisparc cads sweethome3d --half test`): the other half may be trained on. A rerun keeps
the scenes already written. Then, per set:
  multisparc evaluate --scenes DIR/<set> --cads DIR/<set>/cads.json --checkpoint model.pt --out ...
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from multisparc.benchmarks.sets import SETS

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--out", type=Path, required=True, help="output folder, one sub-folder per set")
    parser.add_argument("--scenes", type=int, required=True, help="scenes per set")
    parser.add_argument("--seed", type=int, default=100, help="scene seed (default 100, apart from synth's 0)")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated sets (default: all)")
    parser.add_argument("--sweethome3d", type=Path, help="SweetHome3D catalogue folder, for the sweethome3d sets")
    parser.add_argument("--procedural-cads", type=Path, help="use this cads.json as the procedural library")
    parser.add_argument("--per-class", type=int, default=8, help="procedural models a class when building one")
    parser.add_argument("--cads-seed", type=int, default=0, help="seed of the procedural library when building one")


def run(args: argparse.Namespace) -> int:
    from multisparc.benchmarks.sets import make_benchmark_sets

    sets = [name.strip() for name in args.sets.split(",") if name.strip()]
    folders = make_benchmark_sets(
        args.out,
        args.scenes,
        args.seed,
        sets=sets,
        sweethome3d=args.sweethome3d,
        procedural=args.procedural_cads,
        per_class=args.per_class,
        cads_seed=args.cads_seed,
    )
    print(f"{len(folders)} sets of {args.scenes} scenes in {args.out}/ (seed {args.seed}); evaluate each with")
    for folder in folders.values():
        print(
            f"  multisparc evaluate --scenes {folder} --cads {folder / 'cads.json'} --checkpoint model.pt "
            f"--out {folder.parent / ('results-' + folder.name)}"
        )
    return 0
