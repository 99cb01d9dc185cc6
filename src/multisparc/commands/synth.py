"""Sample synthetic scenes and write them as scene bundles, with the cads.json they use and a preview.

  multisparc synth --scenes N --out DIR [--seed S] [--noise clean|mild|realistic] [--cads cads.json]

Without --cads the embedded procedural library is generated into DIR/cads/. Bundles go to
DIR/scene_00000, ...; DIR/preview.png shows RGB, depth, normals and masks of the first scenes.

A scene that cannot be made (a broken mesh in --cads, no valid layout) is reported and skipped, and its
folder removed; the others are written, a summary lists the failures and the exit code is 1 (--strict:
stop at the first, exit 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from multisparc.scenes.noise import NOISE_LEVELS

if TYPE_CHECKING:
    import numpy as np

    from multisparc.datasets.bundle import SceneBundle
    from multisparc.render import RayCaster
    from multisparc.scenes import PerceptionNoise, SceneSampler


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--scenes", type=int, required=True, help="number of scenes")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", default="realistic", choices=tuple(NOISE_LEVELS))
    parser.add_argument("--cads", type=Path, default=None, help="CAD index (default: procedural library)")
    parser.add_argument("--objects", type=int, nargs=2, default=(1, 4), metavar=("MIN", "MAX"))
    parser.add_argument("--preview", type=int, default=6, help="scenes shown in preview.png (0: none)")
    parser.add_argument("--strict", action="store_true", help="stop at the first scene that fails")


def run(args: argparse.Namespace) -> int:
    import shutil
    import sys

    import numpy as np
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from multisparc.cad import CadIndex
    from multisparc.cad.procedural import build_library
    from multisparc.datasets.outputs import INPUT_ERRORS, failure_summary, prepare_output_dir, record_failure
    from multisparc.datasets.preview import render_bundle_sheet
    from multisparc.render import RayCaster
    from multisparc.scenes import PerceptionNoise, SceneConfig, SceneSampler

    if args.scenes < 1:
        raise ValueError(f"--scenes must be at least 1, got {args.scenes}")
    out: Path = prepare_output_dir(args.out)
    cads_json = args.cads if args.cads is not None else build_library(out / "cads", seed=args.seed)
    cads = CadIndex.load(cads_json)
    if args.cads is not None:
        cads.save(out / "cads.json")
    caster = RayCaster(cads)
    sampler = SceneSampler(cads, SceneConfig(objects=tuple(args.objects)), caster=caster)
    noise = PerceptionNoise(args.noise)
    preview, failures = [], []
    with logging_redirect_tqdm():  # errors on lines of their own, not glued to the progress bar
        for index in tqdm(range(args.scenes), desc="scenes", unit="scene"):
            folder = out / f"scene_{index:05d}"
            try:
                bundle = make_bundle(sampler, caster, noise, np.random.default_rng([args.seed, index]), folder)
            except INPUT_ERRORS as error:
                if args.strict:
                    raise
                shutil.rmtree(folder, ignore_errors=True)  # neither half a bundle nor an earlier run's
                record_failure(failures, folder, error, None)
                continue
            if len(preview) < args.preview:
                preview.append(bundle)
    written = args.scenes - len(failures)
    print(f"wrote {written} scene bundles to {out}/ (CAD index {out / 'cads.json' if args.cads else cads_json})")
    if preview:
        print(f"preview: {render_bundle_sheet(preview, out / 'preview.png')}")
    if failures:
        print(failure_summary("synth", failures, args.scenes), file=sys.stderr)
        return 1
    return 0


def make_bundle(
    sampler: SceneSampler, caster: RayCaster, noise: PerceptionNoise, rng: np.random.Generator, folder: Path
) -> SceneBundle:
    """Sample and render one scene and write it as the bundle `folder`; BundleError naming the folder when no
    scene can be sampled."""
    from multisparc.datasets.bundle import BundleError, write_bundle
    from multisparc.scenes import render_scene_frame, to_bundle
    from multisparc.scenes.sampler import SceneSamplingError

    try:
        scene = sampler.sample(rng)
    except SceneSamplingError as error:
        raise BundleError(folder, f"not written: {error}") from None
    bundle = to_bundle(scene, render_scene_frame(scene, caster, noise), name=folder.name)
    write_bundle(folder, bundle)
    return bundle
