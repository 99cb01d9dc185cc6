"""Sample synthetic scenes and write them as scene bundles, with the cads.json they use and a preview.

  multisparc synth --scenes N --out DIR [--seed S] [--noise clean|mild|realistic] [--cads cads.json]

Without --cads the embedded procedural library is generated into DIR/cads/. Bundles go to
DIR/scene_00000, ...; DIR/preview.png shows RGB, depth, normals and masks of the first scenes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from multisparc.scenes.noise import NOISE_LEVELS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--scenes", type=int, required=True, help="number of scenes")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", default="realistic", choices=tuple(NOISE_LEVELS))
    parser.add_argument("--cads", type=Path, default=None, help="CAD index (default: procedural library)")
    parser.add_argument("--objects", type=int, nargs=2, default=(1, 4), metavar=("MIN", "MAX"))
    parser.add_argument("--preview", type=int, default=6, help="scenes shown in preview.png (0: none)")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from multisparc.cad import CadIndex
    from multisparc.cad.procedural import build_library
    from multisparc.datasets.bundle import write_bundle
    from multisparc.datasets.preview import render_bundle_sheet
    from multisparc.render import RayCaster
    from multisparc.scenes import PerceptionNoise, SceneConfig, SceneSampler, render_scene_frame, to_bundle

    if args.scenes < 1:
        raise ValueError(f"--scenes must be at least 1, got {args.scenes}")
    out: Path = args.out
    cads_json = args.cads if args.cads is not None else build_library(out / "cads", seed=args.seed)
    cads = CadIndex.load(cads_json)
    if args.cads is not None:
        cads.save(out / "cads.json")
    caster = RayCaster(cads)
    sampler = SceneSampler(cads, SceneConfig(objects=tuple(args.objects)), caster=caster)
    noise = PerceptionNoise(args.noise)
    preview = []
    for index in tqdm(range(args.scenes), desc="scenes", unit="scene"):
        scene = sampler.sample(np.random.default_rng([args.seed, index]))
        bundle = to_bundle(scene, render_scene_frame(scene, caster, noise), name=f"scene_{index:05d}")
        write_bundle(out / bundle.name, bundle)
        if len(preview) < args.preview:
            preview.append(bundle)
    print(f"wrote {args.scenes} scene bundles to {out}/ (CAD index {out / 'cads.json' if args.cads else cads_json})")
    if preview:
        print(f"preview: {render_bundle_sheet(preview, out / 'preview.png')}")
    return 0
