"""Align CAD models to scene bundles with a trained Multi-SPARC-Net.

multisparc align BUNDLE... --cads cads.json --checkpoint model.pt --out DIR [--device cpu]
                 [--mode joint|single] [--sequential] [--seed S] [--no-overlay]

Each BUNDLE is a scene bundle directory (it holds camera.json) or a directory of scene bundles.
For every scene it writes
  DIR/<scene>/predictions.json   poses in the camera frame, with the learned score, the chosen
                                 hypothesis, every hypothesis's score and the per-iteration poses
  DIR/<scene>/alignment.json     gravity up and its source, skipped detections, stage timings
  DIR/<scene>/overlay.png        initial and aligned models over the image, coloured by score
"""

from __future__ import annotations

import argparse
from pathlib import Path

from multisparc.datasets.bundle import BundleError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("bundles", nargs="+", type=Path, metavar="BUNDLE", help="scene bundle or folder of them")
    parser.add_argument("--cads", type=Path, required=True, help="the CAD index (cads.json)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="trained model file (model.pt)")
    parser.add_argument("--out", type=Path, required=True, help="output folder, one sub-folder per scene")
    parser.add_argument("--device", default="cpu", help="torch device of the network (cpu, cuda, cuda:1, ...)")
    parser.add_argument(
        "--mode", choices=("joint", "single"), default="joint", help="objects of an image jointly or each alone"
    )
    parser.add_argument("--sequential", action="store_true", help="with --mode single: one object at a time")
    parser.add_argument("--seed", type=int, default=0, help="seed of the box-pixel sampling")
    parser.add_argument("--no-overlay", action="store_true", help="do not write overlay.png")


def find_scenes(paths: list[Path]) -> list[Path]:
    """Scene bundle directories named by `paths`: each a bundle or a folder of bundles (sorted)."""
    scenes = []
    for path in paths:
        if not path.is_dir():
            raise BundleError(path, "no such directory")
        if (path / "camera.json").is_file():
            scenes.append(path)
            continue
        children = sorted(child for child in path.iterdir() if (child / "camera.json").is_file())
        if not children:
            raise BundleError(path, "neither a scene bundle (no camera.json) nor a folder of scene bundles")
        scenes.extend(children)
    names: dict[str, Path] = {}
    for scene in scenes:
        if scene.name in names and names[scene.name].resolve() != scene.resolve():
            raise BundleError(scene, f"has the same name as {names[scene.name]}; their outputs would collide")
        names[scene.name] = scene
    return list(names.values())


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from multisparc.cad import CadIndex
    from multisparc.datasets.bundle import read_bundle, write_json
    from multisparc.inference import Aligner, load_checkpoint, render_overlay

    scenes = find_scenes(args.bundles)
    cads = CadIndex.load(args.cads)
    model, input_config = load_checkpoint(args.checkpoint, args.device)
    aligner = Aligner(
        model, input_config, cads, device=args.device, mode=args.mode, sequential=args.sequential, seed=args.seed
    )
    n_objects, seconds = 0, 0.0
    for scene in tqdm(scenes, desc="align", unit="scene"):
        bundle = read_bundle(scene)
        result = aligner.align(bundle.observation, bundle.detections, scene_dir=scene)
        out = args.out / scene.name
        write_json(out / "predictions.json", result.to_predictions())
        write_json(out / "alignment.json", result.diagnostics())
        if not args.no_overlay:
            render_overlay(bundle.observation, result, cads, out / "overlay.png")
        n_objects += len(result.objects)
        seconds += result.timings["total"]
    print(
        f"aligned {n_objects} objects in {len(scenes)} scenes ({1000 * seconds / len(scenes):.0f} ms per image "
        f"without I/O), results in {args.out}"
    )
    return 0
