"""Align CAD models to scene bundles with a trained Multi-SPARC-Net.

multisparc align BUNDLE... --cads cads.json --checkpoint model.pt --out DIR [--device cpu]
                 [--mode joint|single] [--sequential] [--seed S] [--no-overlay]
                 [--detections per_frame_preds.json [--image-key KEY]]
                 [--choose-cad K [--choose-cad-all] [--cad-prior fit|proportions]]

Each BUNDLE is a scene bundle directory (it holds camera.json) or a directory of scene bundles.
For every scene it writes
  DIR/<scene>/predictions.json   poses in the camera frame, with the learned score, the chosen
                                 hypothesis, every hypothesis's score and the per-iteration poses
  DIR/<scene>/alignment.json     gravity up and its source, skipped detections, stage timings, and
                                 where the detections came from (file, and image key)
  DIR/<scene>/overlay.png        initial and aligned models over the image, coloured by score

A scene whose input is bad (docs/INPUTS.md) is reported with its file and reason and skipped; the others
are aligned, a summary lists the failures and the exit code is 1 (--strict: stop at the first, exit 2).
A failed scene's earlier outputs are removed; DIR/<scene>/error.txt says why.

--detections takes the detections from ROCA's per_frame_preds.json instead of each bundle's
detections.json (which may then be absent): boxes, classes, scores, COCO RLE masks and the retrieved
CADs, whose ids `<synset>_<model id>` (from ROCA's [synset, model id]) must be ids of cads.json. The
image of a bundle is the key given by --image-key (one BUNDLE only), else the key written in the
bundle's `roca_key` file, else the key whose `<scene>_<frame>` is the bundle's name (bundle
scene0011_00_000100 for "scene0011_00/color/000100.jpg").

--choose-cad K: a detection may give a category only (no "cad"); its CAD is chosen among the models of its
class in cads.json: all of them when the class has at most K, else the K ranked first by --cad-prior: "fit"
(default), the models whose depth-only fits (ICP, nothing learned) best agree with the detection's observed
depth, or "proportions", those whose proportions best match its observed points (no fits, weaker). Each
candidate is aligned (K passes of the pipeline, all objects of the image jointly in each) and the one whose
pose scores highest (learned score fused with the geometric verification) is kept; predictions.json names it
in "cad" and lists every candidate with its scores in "cad_choice" (`multisparc.inference.cad_choice`).
Detections that name a CAD keep it, unless --choose-cad-all.
Without --choose-cad, a detection without "cad" is an error.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from multisparc.datasets.bundle import BundleError, Detection
from multisparc.inference.cad_prior import CAD_PRIORS
from multisparc.inference.stages import PIPELINES

if TYPE_CHECKING:
    from multisparc.cad import CadIndex
    from multisparc.inference import Aligner


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
    parser.add_argument(
        "--precision", choices=("float32", "bfloat16"), default="float32",
        help="network precision (bfloat16: about twice as fast on CPUs with AVX512-BF16/AMX and on GPUs)",
    )
    parser.add_argument(
        "--pipeline", choices=tuple(PIPELINES), default="full",
        help="full: the depth's error read from the room, the network, geometric verification and depth fit; "
        "exact: full with its fits' nearest CAD samples from kd trees (slower, as accurate); full-no-room: full "
        "without the room's depth correction; paper: the paper's start, network and learned score only; "
        "+start, +mask, +verify, +fit: the paper's with one addition",
    )
    parser.add_argument("--no-overlay", action="store_true", help="do not write overlay.png")
    parser.add_argument(
        "--detections", type=Path, default=None, help="ROCA per_frame_preds.json replacing the detections.json files"
    )
    parser.add_argument("--image-key", default=None, help="with --detections: the image's key in that file")
    parser.add_argument("--strict", action="store_true", help="stop at the first scene that fails")
    parser.add_argument(
        "--choose-cad", type=int, default=None, metavar="K",
        help="choose the CAD of detections without one among K models of their class (all when it has fewer)",
    )
    parser.add_argument(
        "--choose-cad-all", action="store_true", help="with --choose-cad: choose also for detections that name a CAD"
    )
    parser.add_argument(
        "--cad-prior", choices=CAD_PRIORS, default=CAD_PRIORS[0],
        help="with --choose-cad: how a class of more than K models is ranked before the K first are aligned",
    )


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


class RocaDetectionSource:
    """The detections of bundles taken from one ROCA per_frame_preds.json (read once)."""

    def __init__(self, path: Path, image_key: str | None) -> None:
        from multisparc.datasets.roca import read_roca_file

        self.path = path
        self.image_key = image_key
        self.frames = read_roca_file(path)

    def detections(self, scene: Path, height: int, width: int) -> tuple[str, list[Detection]]:
        """(image key, the `Detection`s of that image for a bundle image of width x height)."""
        from multisparc.datasets.roca import find_image_key, roca_detections

        key = find_image_key(self.path, list(self.frames), scene, self.image_key)
        return key, roca_detections(self.path, key, self.frames[key], height, width)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from multisparc.cad import CadIndex
    from multisparc.datasets.outputs import INPUT_ERRORS, failure_summary, prepare_output_dir, record_failure
    from multisparc.inference import Aligner, load_checkpoint

    scenes = find_scenes(args.bundles)
    roca = None
    if args.image_key is not None and args.detections is None:
        raise ValueError("--image-key names an image of a --detections file; give --detections too")
    if args.detections is not None:
        if args.image_key is not None and len(scenes) != 1:
            raise ValueError(f"--image-key names one image, but {len(scenes)} scene bundles were given")
        roca = RocaDetectionSource(args.detections, args.image_key)
    if args.choose_cad is not None and args.choose_cad < 1:
        raise ValueError(f"--choose-cad takes a positive number of candidate CADs, got {args.choose_cad}")
    if args.choose_cad_all and args.choose_cad is None:
        raise ValueError("--choose-cad-all needs --choose-cad K")
    prepare_output_dir(args.out)
    cads = CadIndex.load(args.cads)
    model, input_config = load_checkpoint(args.checkpoint, args.device)
    aligner = Aligner(
        model, input_config, cads, device=args.device, mode=args.mode, sequential=args.sequential, seed=args.seed,
        precision=args.precision, pipeline=args.pipeline,
    )
    n_objects, seconds, failures = 0, 0.0, []
    with logging_redirect_tqdm():  # warnings and errors on lines of their own, not glued to the progress bar
        for scene in tqdm(scenes, desc="align", unit="scene"):
            try:
                objects, scene_seconds = align_scene(scene, aligner, cads, roca, args)
            except INPUT_ERRORS as error:
                if args.strict:
                    raise
                record_failure(failures, scene, error, args.out / scene.name)
                continue
            n_objects += objects
            seconds += scene_seconds
    done = len(scenes) - len(failures)
    if done:
        print(
            f"aligned {n_objects} objects in {done} scenes ({1000 * seconds / done:.0f} ms per image "
            f"without I/O), results in {args.out}"
        )
    if failures:
        print(failure_summary("align", failures, len(scenes)), file=sys.stderr)
        return 1
    return 0


def align_scene(
    scene: Path, aligner: Aligner, cads: CadIndex, roca: RocaDetectionSource | None, args: argparse.Namespace
) -> tuple[int, float]:
    """Align one scene bundle into args.out/<scene>/; returns (objects aligned, seconds without I/O).

    The files of an earlier run are removed once the alignment succeeded; the overlay is drawn first and the
    JSON files written last, each atomically, so that a scene that fails leaves no predictions.json behind.
    """
    from multisparc.datasets.bundle import read_bundle, write_json
    from multisparc.datasets.outputs import clear_outputs
    from multisparc.inference import render_overlay

    bundle = read_bundle(scene, with_detections=roca is None, require_cad=args.choose_cad is None)
    source = {"file": str(scene / "detections.json")}
    if roca is not None:
        camera = bundle.observation.camera
        key, detections = roca.detections(scene, camera.height, camera.width)
        bundle = replace(bundle, detections=detections)
        source = {"file": str(roca.path), "image_key": key}
    if args.choose_cad is None:
        result = aligner.align(bundle.observation, bundle.detections, scene_dir=scene)
    else:
        from multisparc.inference.cad_choice import choose_cads

        result = choose_cads(
            aligner, bundle.observation, bundle.detections, args.choose_cad, args.choose_cad_all, source["file"], scene,
            args.cad_prior,
        )
    result.require_finite(scene)
    out = args.out / scene.name
    out.mkdir(parents=True, exist_ok=True)
    clear_outputs(out)  # an earlier run's files must not sit beside these (its overlay, with --no-overlay)
    if not args.no_overlay:
        render_overlay(bundle.observation, result, cads, out / "overlay.png")
    write_json(out / "alignment.json", {**result.diagnostics(), "detections": source})
    write_json(out / "predictions.json", result.to_predictions())
    return len(result.objects), result.timings["total"]
