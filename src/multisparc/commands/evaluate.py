"""Run alignment methods over scene bundles with ground truth and score them with the paper's protocols.

multisparc evaluate --scenes DIR --cads cads.json [--checkpoint model.pt]
                    [--methods multisparc,multisparc-paper,...] [--predictions [NAME=]DIR ...]
                    [--preset sparc|roca|scan2cad] --out OUT [--markdown BENCHMARKS.md [--section NAME]]
                    [--device cpu] [--seed S] [--limit N] [--hypotheses 4] [--refinements 3]
                    [--ap-points N | --no-ap-mesh]

Methods (`multisparc.baselines.methods`): multisparc (the full pipeline: the network jointly, geometric
verification, depth fits), multisparc-exact (the same with the nearest CAD samples of its fits from
exact kd trees), multisparc-paper (the paper's: start, network, learned score), +start,
+verify, +fit (the paper's with one addition, the ablation rows), single (SPARC-style, one object at a
time), 2d-score (refined, first hypothesis, ranked by the 2D detection score), initial (the initial
hypotheses, no refinement), icp (depth-only ICP baseline; needs no checkpoint), icp-back-faces (icp pairing
back-facing CAD samples too). Each writes
OUT/<method>/<scene>/predictions.json and alignment.json; a rerun skips scenes already done, so a killed
run resumes (a folder made with another checkpoint or --seed is refused, not mixed). --predictions
scores existing folders of <scene>/predictions.json (e.g. `multisparc align --out DIR`, or another
method's) with the same code, named NAME or the folder's name; given alone, no method runs. A folder's
method.json, when present, says whether its predictions rank by the 2D detection score.

A scene whose bundle or predictions are bad (docs/INPUTS.md; a predictions.json with an id twice, or a
CAD that cads.json lacks) is reported with its file and reason and left out of the scores of every method,
so that they compare the same scenes; a summary lists the failures and the exit code is 1 (--strict: stop
at the first, exit 2). Predictions of a scene that --scenes does not hold are refused.

Writes OUT/results.md and OUT/results.json (per scene in the layout of the paper's Table 1: per class,
class mean, instance, time per image in ms; per image: AP^mesh and accuracy) and
OUT/calibration/<method>.png (accuracy against the sorted score). --markdown FILE writes the tables with
this command line and the machine into the section NAME (default evaluate-<scenes folder name>) of FILE.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multisparc.datasets.outputs import SceneFailure

DEFAULT_METHODS = "multisparc,multisparc-paper,+start,+verify,+fit,single,2d-score,initial,icp"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--scenes", type=Path, required=True, help="folder of scene bundles with gt.json")
    parser.add_argument("--cads", type=Path, required=True, help="the CAD index (cads.json)")
    parser.add_argument("--checkpoint", type=Path, help="trained model file (model.pt), for the network's methods")
    parser.add_argument(
        "--methods", help=f"comma-separated methods to run (default {DEFAULT_METHODS}; none with --predictions)"
    )
    parser.add_argument(
        "--predictions",
        action="append",
        default=[],
        metavar="[NAME=]DIR",
        help="score DIR/<scene>/predictions.json as method NAME (repeatable)",
    )
    parser.add_argument("--preset", default="sparc", choices=("sparc", "roca", "scan2cad"), help="per-scene protocol")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--markdown", type=Path, help="write the tables into this Markdown file (BENCHMARKS.md)")
    parser.add_argument("--section", help="section name in the --markdown file (default evaluate-<scenes name>)")
    parser.add_argument("--device", default="cpu", help="torch device of the network (cpu, cuda, ...)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the methods' pixel sampling")
    parser.add_argument("--limit", type=int, help="use only the first N scenes (sorted by name)")
    parser.add_argument("--hypotheses", type=int, default=4, help="initial azimuths per detection (network methods)")
    parser.add_argument("--refinements", type=int, default=3, help="refinement passes (network methods but initial)")
    parser.add_argument("--ap-points", type=int, default=10000, help="surface samples per model for AP^mesh")
    parser.add_argument("--no-ap-mesh", action="store_true", help="skip AP^mesh")
    parser.add_argument("--strict", action="store_true", help="stop at the first scene that fails")


def parse_methods(text: str | None, have_predictions: bool) -> list[str]:
    """The method names of --methods (validated, in order, no repeats)."""
    from multisparc.baselines import method_spec

    if text is None:
        text = "" if have_predictions else DEFAULT_METHODS
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        method_spec(name)
    if len(set(names)) != len(names):
        raise ValueError(f"--methods names a method twice: {text}")
    return names


def parse_predictions(values: list[str]) -> list[tuple[str, Path]]:
    """(name, folder) of each --predictions [NAME=]DIR."""
    parsed = []
    for value in values:
        name, _, folder = value.rpartition("=")
        path = Path(folder)
        if not path.is_dir():
            raise FileNotFoundError(f"--predictions {value}: {path} is not a folder")
        parsed.append((name or path.resolve().name, path))
    return parsed


def section_name(scenes: Path) -> str:
    """A BENCHMARKS.md section name from the scenes folder: evaluate-<name> with [A-Za-z0-9_.-] only."""
    return "evaluate-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", scenes.resolve().name)


def run(args: argparse.Namespace) -> int:
    from multisparc.baselines import make_method, method_spec
    from multisparc.benchmarks.alignment import (
        check_known_scenes,
        check_predictions,
        check_scene,
        run_method,
        score_method,
    )
    from multisparc.benchmarks.alignment_report import write_results
    from multisparc.benchmarks.report import section, update_markdown
    from multisparc.cad import CadIndex
    from multisparc.commands.align import find_scenes
    from multisparc.datasets.outputs import failure_summary, prepare_output_dir
    from multisparc.evaluation import get_preset
    from multisparc.render import RayCaster

    predictions = parse_predictions(args.predictions)
    methods = parse_methods(args.methods, bool(predictions))
    names = methods + [name for name, _ in predictions]
    if not names:
        raise ValueError("nothing to evaluate: give --methods or --predictions")
    if len(set(names)) != len(names):
        raise ValueError(f"two results would share a name: {', '.join(names)}; use --predictions NAME=DIR")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    if args.ap_points < 1:
        raise ValueError(f"--ap-points must be at least 1, got {args.ap_points}")
    every_scene = find_scenes([args.scenes])
    for _, folder in predictions:
        check_known_scenes(folder, every_scene)
    scenes = every_scene[: args.limit]
    prepare_output_dir(args.out)
    cads = CadIndex.load(args.cads)
    preset = get_preset(args.preset)
    n_scenes, failures = len(scenes), []
    scenes = usable_scenes(scenes, partial(check_scene, cads=cads), failures, args.strict)
    require_scenes(scenes, failures, n_scenes, args.scenes)

    network = None
    needing = [name for name in methods if method_spec(name).needs_network]
    if needing:
        if args.checkpoint is None:
            raise ValueError(f"methods {', '.join(needing)} need --checkpoint model.pt")
        from multisparc.inference import load_checkpoint

        network = load_checkpoint(args.checkpoint, args.device)
    # The network's protocol, recorded and titled only when changed, so that earlier folders still resume.
    protocol_changed = (args.hypotheses, args.refinements) != (4, 3)
    folders = []
    for name in methods:
        method = make_method(
            name, cads, network, device=args.device, seed=args.seed, n_hypotheses=args.hypotheses,
            n_refine=args.refinements,
        )
        spec = method_spec(name)
        settings = {"seed": args.seed}
        if spec.needs_network:
            settings["checkpoint"] = str(args.checkpoint.resolve())
            if protocol_changed:
                settings.update(hypotheses=args.hypotheses, refinements=args.refinements)
        method_failures: list[SceneFailure] = []
        aligned, skipped = run_method(
            spec, method, scenes, args.out / name, settings, failures=None if args.strict else method_failures
        )
        failed = {failure.scene for failure in method_failures}
        scenes = [scene for scene in scenes if scene not in failed]
        failures += method_failures
        if skipped:
            print(f"{name}: {skipped} scene(s) already aligned in {args.out / name}, {aligned} aligned now")
        folders.append((name, args.out / name))
    folders += predictions
    for _, folder in folders:
        scenes = usable_scenes(scenes, partial(check_predictions, folder, cads=cads), failures, args.strict)
    require_scenes(scenes, failures, n_scenes, args.scenes)
    if failures:
        print(failure_summary("evaluate", failures, n_scenes), file=sys.stderr)

    caster = RayCaster(cads)
    ap_points = None if args.no_ap_mesh else args.ap_points
    scores = [score_method(name, folder, scenes, cads, preset, caster, ap_points=ap_points) for name, folder in folders]
    label = str(args.scenes)
    md_path, json_path, body = write_results(args.out, scores, label, len(scenes))
    print(body)
    print(f"wrote {md_path} and {json_path}")
    if args.markdown is not None:
        name = args.section or section_name(args.scenes)
        protocol = f", {args.hypotheses} hypotheses, {args.refinements} refinements" if protocol_changed else ""
        title = f"Alignment accuracy on {args.scenes.resolve().name} ({args.preset} preset{protocol})"
        where = f"Output folder `{args.out}` (results.json, calibration plots).\n\n"
        update_markdown(args.markdown, name, section(name, title, where + body))
        print(f"wrote the section {name} into {args.markdown}")
    return 1 if failures else 0


def require_scenes(scenes: list[Path], failures: list[SceneFailure], n_scenes: int, folder: Path) -> None:
    """ValueError naming the scenes folder when every scene failed (each failure printed before)."""
    from multisparc.datasets.outputs import failure_summary

    if not scenes:
        print(failure_summary("evaluate", failures, n_scenes), file=sys.stderr)
        raise ValueError(f"{folder}: no scene left to score, every one failed (listed above)")


def usable_scenes(
    scenes: list[Path], check: Callable[[Path], None], failures: list[SceneFailure], strict: bool
) -> list[Path]:
    """The scenes that pass `check`; each other one is recorded in `failures` (with --strict its error is raised)."""
    from multisparc.datasets.outputs import INPUT_ERRORS, record_failure

    usable = []
    for scene in scenes:
        try:
            check(scene)
        except INPUT_ERRORS as error:
            if strict:
                raise
            record_failure(failures, scene, error, None)
            continue
        usable.append(scene)
    return usable
