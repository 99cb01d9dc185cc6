"""CAD choice benchmark (`multisparc bench choose-cad`): detections stripped of their CAD ids, the CAD chosen
among K candidates of the class (`inference.cad_choice`), against the same scenes aligned with the true CADs.

Two sets of clean synthetic scenes, each with a library of 10+ models per class holding the true CAD:
- procedural: scenes and library the procedural library with `per_class` models a class;
- sweethome3d: scenes of the SweetHome3D test half (unseen in training), aligned with a library of those
  models and the procedural ones together, so the true model is one of `per_class` + 1..4 of its class.

Per set and path (true CADs, chosen CADs): the strict per-image accuracy (sparc thresholds, one-to-one
matching, `evaluation.per_image.strict_per_image`) and the paper's lenient per-image accuracy; for the chosen
path, how often the true CAD was chosen and how often the prior kept it among the K candidates; the
alignment time per object (stage timers, without file I/O; CAD surface samples made beforehand).

A pose of another CAD is judged by its scale against the true model's, as the field's benchmarks do; they
take their CADs normalised alike (ShapeNet's unit diagonal), while these libraries hold models of their real
sizes, so a chosen model of another native size needs another scale for the very same box. Hence one more
figure, strict by physical size: each chosen pose re-expressed as the true model placed on the chosen model's
box (`as_true_model`), then judged the same way.

With `rgbd`, one more path is a user's with an RGB-D camera and a box detector: each scene written out as a
JPEG, a 16-bit depth PNG in millimetres, a K text file and a boxes JSON with categories only (no masks, no CADs,
no ids), made into a bundle as `multisparc bundle` does (normals from the depth, gravity estimated), and every
CAD chosen among K; and the same files with each box's true CAD, which splits that path's loss into what the
files cost (no masks, normals from the depth, JPEG colour) and what the choice costs.

Layout of the work folder: WORK/<set>/scene_* (bundles), WORK/<set>/true/<scene>/predictions.json and
WORK/<set>/choose/<scene>/predictions.json (with alignment.json), WORK/cads/... (libraries).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from multisparc.benchmarks.alignment import score_method
from multisparc.benchmarks.sets import SetSpec, make_set
from multisparc.cad import CadIndex
from multisparc.cad.procedural import build_library
from multisparc.datasets.bundle import SceneBundle, read_bundle, write_json
from multisparc.datasets.rgbd import rgbd_bundle, write_rgbd_frame
from multisparc.evaluation import SPARC
from multisparc.geometry import quat_to_matrix
from multisparc.inference import Aligner
from multisparc.inference.cad_choice import choose_cads
from multisparc.inference.cad_prior import CAD_PRIORS
from multisparc.inference.result import AlignmentResult
from multisparc.scenes import SceneConfig

SETS = ("procedural", "sweethome3d")


@dataclass(frozen=True)
class PathRow:
    """One set aligned one way: with the true CADs ("true CAD") or choosing them ("choose-cad K").

    objects: detections aligned; strict, lenient: per-image accuracies (fractions); recall: strict correct over
    taking-part objects; physical: strict with every chosen pose re-expressed as the true model on the same box
    (module docstring); true_chosen, true_in_candidates: fractions of the objects (None for the true path);
    ms_per_object: alignment time per object.
    """

    set: str
    path: str
    objects: int
    strict: float
    lenient: float
    recall: float
    physical: float
    true_chosen: float | None
    true_in_candidates: float | None
    ms_per_object: float


def make_scenes(work: Path, name: str, per_class: int, sweethome3d: Path | None, n_scenes: int, seed: int) -> tuple[
    list[Path], CadIndex
]:
    """The set's scene bundles under work/<name>/ (made once, resumable) and the library to choose from."""
    procedural = work / "cads" / f"procedural-{per_class}" / "cads.json"
    if not procedural.is_file():
        build_library(procedural.parent, per_class=per_class, seed=0)
    if name == "procedural":
        scenes_cads, library = procedural, CadIndex.load(procedural)
    elif name == "sweethome3d":
        if sweethome3d is None:
            raise ValueError("the sweethome3d set needs the SweetHome3D catalogue folder (--sweethome3d DIR)")
        scenes_cads = work / "cads" / "sweethome3d-test" / "cads.json"
        test_half = CadIndex.from_sweethome3d(sweethome3d, half="test")
        if not scenes_cads.is_file():
            test_half.save(scenes_cads)
        library = CadIndex([*test_half.values(), *CadIndex.load(procedural).values()], source=scenes_cads.parent)
    else:
        raise ValueError(f"unknown set {name!r}; expected one of {', '.join(SETS)}")
    folder = work / name
    make_set(folder, scenes_cads, SetSpec(name, name, "clean"), n_scenes, seed, SceneConfig(), progress=True)
    return sorted(folder.glob("scene_*")), library


def run_set(
    aligner: Aligner,
    name: str,
    scenes: Sequence[Path],
    k: int,
    out: Path,
    rgbd: bool = False,
    progress: bool = True,
    prior: str = CAD_PRIORS[0],
) -> list[PathRow]:
    """Align every scene with the true CADs and choosing among k ranked by `prior`, and with `rgbd` also from its
    RGB-D files with boxes only (module docstring); score each path."""
    from tqdm import tqdm

    cads = aligner.cads
    for cad_id in cads:  # surface samples (and their lookups) once, before any timing
        cads.points(cad_id, aligner.input_config.n_cad)
        cads.points(cad_id, aligner.stages.icp.model_points)
        if aligner.stages.icp.lookup == "grid":
            cads.nearest_samples(cad_id, aligner.stages.icp.model_points)
    paths = {"true": "true CAD", "choose": f"choose-cad {k}"}
    if rgbd:
        paths["rgbd-true"] = "RGB-D files, boxes, true CAD"
        paths["rgbd"] = f"RGB-D files, boxes, choose-cad {k}"
    choosing = {"choose", "rgbd"}
    seconds = dict.fromkeys(paths, 0.0)
    chosen_true, kept_true = dict.fromkeys(paths, 0), dict.fromkeys(paths, 0)
    objects = 0
    for scene in tqdm(scenes, desc=name, unit="scene", disable=not progress):
        bundle = read_bundle(scene)
        truth = {det.id: det.cad for det in bundle.detections}
        stripped = [replace(det, cad=None) for det in bundle.detections]
        results = {
            "true": aligner.align(bundle.observation, bundle.detections, scene),
            "choose": choose_cads(aligner, bundle.observation, stripped, k, scene_dir=scene, prior=prior),
        }
        if rgbd:
            results["rgbd-true"] = align_from_rgbd_files(aligner, bundle, None, out / "rgbd-files-true" / scene.name)
            results["rgbd"] = align_from_rgbd_files(aligner, bundle, k, out / "rgbd-files" / scene.name, prior)
        objects += len(bundle.detections)
        for path, result in results.items():
            result.require_finite(scene)
            write_json(out / path / scene.name / "alignment.json", result.diagnostics())
            predictions = result.to_predictions()
            write_json(out / path / scene.name / "predictions.json", predictions)
            seconds[path] += result.timings["total"]
            if path not in choosing:
                continue
            physical = as_true_model(predictions, truth, cads)
            write_json(out / f"{path}-physical" / scene.name / "predictions.json", physical)
            for obj in result.objects:
                chosen_true[path] += obj.cad == truth[obj.id]
                kept_true[path] += truth[obj.id] in {c["cad"] for c in obj.extras["cad_choice"]["candidates"]}
    rows = []
    for path, label in paths.items():
        scores = score_method(label, out / path, scenes, cads, SPARC, ap_points=None)
        physical = scores
        if path in choosing:
            physical = score_method(label, out / f"{path}-physical", scenes, cads, SPARC, ap_points=None)
        rows.append(
            PathRow(
                set=name,
                path=label,
                objects=objects,
                strict=scores.strict.instance,
                lenient=scores.per_image.instance,
                recall=scores.strict.recall,
                physical=physical.strict.instance,
                true_chosen=chosen_true[path] / max(objects, 1) if path in choosing else None,
                true_in_candidates=kept_true[path] / max(objects, 1) if path in choosing else None,
                ms_per_object=1000.0 * seconds[path] / max(objects, 1),
            )
        )
    return rows


def align_from_rgbd_files(
    aligner: Aligner, bundle: SceneBundle, k: int | None, folder: Path, prior: str = CAD_PRIORS[0]
) -> AlignmentResult:
    """The scene as a user with an RGB-D camera and a box detector has it: written out as files
    (`write_rgbd_frame`: JPEG, 16-bit millimetre PNG, K text, boxes with categories only), made into a bundle
    as `multisparc bundle` does (normals from the depth, gravity from the frame), every CAD chosen among k
    (None: the boxes name their true CADs, which are aligned). The boxes carry no ids (theirs are their
    positions): the result's objects get the scene's detection ids back."""
    files = write_rgbd_frame(bundle, folder, with_cads=k is None)
    made = rgbd_bundle(
        bundle.name, files["image"], files["depth"], files["detections"], aligner.cads, files["intrinsics"]
    )
    if k is None:
        result = aligner.align(made.observation, made.detections, folder)
    else:
        result = choose_cads(aligner, made.observation, made.detections, k, scene_dir=folder, prior=prior)
    ids = [det.id for det in bundle.detections]
    result.objects = [replace(obj, id=ids[obj.id]) for obj in result.objects]
    return result


def as_true_model(predictions: list[dict], truth: dict[int, str], cads: CadIndex) -> list[dict]:
    """predictions (`predictions.json` records) with every object of another CAD than its detection's true one
    (`truth`: detection id -> CAD id) re-expressed as the true CAD placed on the chosen one's bounding box:
    scale s' = s * extent(chosen) / extent(true) per axis, rotation kept (CAD axes agree within a class) and
    translation t' = t + R (s * centre(chosen) - s' * centre(true)), so the box centres coincide."""
    records = []
    for record in predictions:
        true_cad = truth[record["id"]]
        if record["cad"] != true_cad:
            s = np.asarray(record["s"], dtype=np.float64)
            scale = s * cads.extent(record["cad"]) / cads.extent(true_cad)
            R = quat_to_matrix(torch.as_tensor(record["q"], dtype=torch.float64)).numpy()
            shift = R @ (s * cads.centre(record["cad"]) - scale * cads.centre(true_cad))
            t = np.asarray(record["t"], dtype=np.float64) + shift
            record = {**record, "cad": true_cad, "s": scale.tolist(), "t": t.tolist(), "chosen_cad": record["cad"]}
        records.append(record)
    return records


def choose_cad_section(
    rows: Sequence[PathRow], network: str, n_scenes: int, k: int, per_class: int, prior: str = CAD_PRIORS[0]
) -> str:
    """The BENCHMARKS.md section `choose-cad` (with command, machine and date)."""
    from multisparc.benchmarks.report import markdown_table, section

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    table = markdown_table(
        ["set", "CADs", "objects", "strict %", "strict by physical size %", "recall %", "per-image %",
         "true CAD chosen %", "true CAD among the K %", "ms/object"],
        [
            [row.set, row.path, row.objects, percent(row.strict), percent(row.physical), percent(row.recall),
             percent(row.lenient),
             percent(row.true_chosen), percent(row.true_in_candidates), f"{row.ms_per_object:.0f}"]
            for row in rows
        ],
    )
    body = (
        f"Network `{network}`, full pipeline, {n_scenes} clean synthetic scenes per set, the detections' CAD ids "
        f"removed and each CAD chosen among K = {k} candidates of its class (`multisparc align --choose-cad {k}`: "
        f"the K first by the {prior} prior (`inference.cad_prior`), each aligned, the highest learned logit + 160 x "
        "geometric score kept), against "
        "the same scenes aligned with the true CADs. procedural: scenes and library the procedural library with "
        f"{per_class} models a class; sweethome3d: scenes of the SweetHome3D test half, library those models and "
        f"the {per_class} procedural ones of each class together. Strict: per-image accuracy, sparc thresholds "
        "(20 cm, 20 deg, 20 % per axis), one-to-one matching; recall: correct over visible objects; per-image: "
        "the paper's lenient matching. A pose of another CAD counts as aligned by the same thresholds (its "
        "scale against the true model's, as the benchmarks of the field do); strict by physical size: each chosen "
        "pose re-expressed as the true model on the same box (the field's CADs are normalised alike, these "
        "libraries' models have their real sizes). RGB-D files, boxes: each scene written out as a JPEG, a 16-bit "
        "depth PNG in millimetres, a K text file and a boxes JSON with categories only, made into a bundle as "
        "`multisparc bundle` does (normals from the depth), every CAD chosen among K, or (true CAD) each box "
        "naming its true CAD. Time: alignment per object from "
        "the stage timers (machine below), CAD samples made beforehand.\n\n" + table + "\n"
    )
    return section("choose-cad", "Choosing the CAD of category-only detections", body)
