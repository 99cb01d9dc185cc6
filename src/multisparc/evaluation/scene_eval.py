"""Per-scene evaluation (Scan2CAD style): predictions of many frames in one world frame against the scene's
ground truth, under one of the presets of `multisparc.evaluation.presets`.

For each counted scene, in this order: predictions of classes the preset does not evaluate are left out;
the detection-score filter; ranking by the chosen score; 3D NMS; the per-CAD or per-class cap; greedy
matching (each ground-truth object at most once, predictions in ranking order, the first unmatched
ground truth of the same class, and CAD if required, within the thresholds).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from multisparc.cad import CadIndex
from multisparc.datasets.bundle import BundleError, read_camera, read_poses
from multisparc.evaluation.accuracy import ClassCounts
from multisparc.evaluation.matching import WorldObject, aligned_pairs, greedy_match, nms_3d, symmetry_table
from multisparc.evaluation.presets import BENCHMARK_CLASSES, OTHER, EvalPreset

#: Optional bundle file: every ground-truth object of the bundle's scene, in the bundle's camera frame.
SCENE_GT_FILE = "scene_gt.json"

Status = Literal["evaluated", "other_class", "below_threshold", "suppressed", "over_cap"]
ScenePredictions = Mapping[str, Sequence[WorldObject]] | Iterable[tuple[str, Sequence[WorldObject]]]


@dataclass
class PredictionOutcome:
    """What became of one prediction.

    scene: its scene; index: its position in the scene's prediction list; status: "evaluated", or why it
    was left out ("other_class": a class the preset does not evaluate; "below_threshold"; "suppressed" by
    NMS; "over_cap"); gt: index of the matched object in the scene's ground-truth list, or None;
    correct: whether it was matched.
    """

    scene: str
    index: int
    category: str
    cad: str
    score: float | None
    detection_score: float | None
    status: Status
    gt: int | None = None
    correct: bool = False


@dataclass
class AlignmentResults(ClassCounts):
    """Alignment accuracy of one evaluation.

    correct / total: matched predictions and ground-truth objects per reported class (classes with no
    ground truth in the counted scenes are absent); scenes: the counted scenes; outcomes: one record per
    input prediction of the counted scenes. Accuracies are fractions in [0, 1].
    """

    scenes: list[str]
    outcomes: list[PredictionOutcome]

    @property
    def class_mean(self) -> float:
        """Mean of the per-class accuracies ("other" included only where the preset's script does so)."""
        included = [
            acc for name, acc in self.per_class.items() if name != OTHER or self.preset.class_mean_includes_other
        ]
        return float(np.mean(included)) if included else float("nan")

    @property
    def benchmark_mean(self) -> float:
        """Mean of the per-class accuracies of the 8 benchmark classes (no bed, no "other")."""
        included = [acc for name, acc in self.per_class.items() if name in BENCHMARK_CLASSES]
        return float(np.mean(included)) if included else float("nan")

    @property
    def instance(self) -> float:
        """Matched predictions over ground-truth objects, all reported classes together."""
        return sum(self.correct.values()) / sum(self.total.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (accuracies as fractions, class names as the preset's script prints them)."""
        label = self.preset.label
        return {
            "preset": self.preset.name,
            "ranking_score": self.preset.ranking_score,
            "require_same_cad": self.preset.require_same_cad,
            "per_class": {label(name): acc for name, acc in self.per_class.items()},
            "correct": {label(name): self.correct.get(name, 0) for name in self.classes},
            "total": {label(name): self.total[name] for name in self.classes},
            "class_mean": self.class_mean,
            "benchmark_mean": self.benchmark_mean,
            "instance": self.instance,
            "n_scenes": len(self.scenes),
            "n_evaluated_predictions": sum(outcome.status == "evaluated" for outcome in self.outcomes),
        }


def _by_scene(predictions: ScenePredictions) -> dict[str, list[WorldObject]]:
    """Predictions per scene in the given order; a scene named twice gets both lists, in order."""
    pairs = predictions.items() if isinstance(predictions, Mapping) else predictions
    grouped: dict[str, list[WorldObject]] = {}
    for scene, objects in pairs:
        grouped.setdefault(str(scene), []).extend(objects)
    return grouped


def _evaluate_scene(
    scene: str,
    predictions: Sequence[WorldObject],
    ground_truth: Sequence[WorldObject],
    preset: EvalPreset,
    symmetries: Mapping[str, str],
) -> list[PredictionOutcome]:
    outcomes = [
        PredictionOutcome(scene, index, pred.category, pred.cad, pred.score, pred.detection_score, "evaluated")
        for index, pred in enumerate(predictions)
    ]
    candidates = []
    for index, pred in enumerate(predictions):
        if preset.report_class(pred.category) is None:
            outcomes[index].status = "other_class"
        elif (
            preset.detection_threshold is not None
            and pred.ranking_value("detection_score") <= preset.detection_threshold
        ):
            outcomes[index].status = "below_threshold"
        else:
            candidates.append(index)
    if preset.sort_by_score:
        # A stable sort: equal scores keep the file order (tested), so results never depend on chance.
        candidates.sort(key=lambda index: -predictions[index].ranking_value(preset.ranking_score))
    if preset.nms is not None:
        kept = set(nms_3d([predictions[index] for index in candidates], preset.nms, symmetries))
        for rank, index in enumerate(candidates):
            if rank not in kept:
                outcomes[index].status = "suppressed"
        candidates = [index for rank, index in enumerate(candidates) if rank in kept]

    evaluated_gt = [index for index, gt in enumerate(ground_truth) if preset.report_class(gt.category) is not None]
    cap_key = "cad" if preset.cap == "per_cad" else "category"
    allowed = Counter(getattr(ground_truth[index], cap_key) for index in evaluated_gt)
    used: Counter[str] = Counter()
    capped = []
    for index in candidates:
        key = getattr(predictions[index], cap_key)
        if used[key] >= allowed[key]:
            outcomes[index].status = "over_cap"
        else:
            used[key] += 1
            capped.append(index)

    gt_objects = [ground_truth[index] for index in evaluated_gt]
    aligned = aligned_pairs([predictions[index] for index in capped], gt_objects, preset, symmetries)
    for index, match in zip(capped, greedy_match(aligned), strict=True):
        if match is not None:
            outcomes[index].gt = evaluated_gt[match]
            outcomes[index].correct = True
    return outcomes


def evaluate_scenes(
    predictions: ScenePredictions,
    ground_truth: Mapping[str, Sequence[WorldObject]],
    preset: EvalPreset,
) -> AlignmentResults:
    """Per-scene alignment accuracy of world-frame predictions under `preset`.

    Args:
        predictions: scene id -> predictions, or (scene id, predictions) pairs, world frame. The order
            within a scene is the "file order" of presets that keep it (scan2cad). A scene listed with no
            predictions counts as submitted.
        ground_truth: scene id -> ground-truth objects, world frame: the scenes of the evaluated split
            (the roca preset counts every one of them).
        preset: the protocol (`multisparc.evaluation.presets`).

    Raises ValueError for predictions of scenes without ground truth, when no ground truth is counted,
    and (from the objects) for a missing ranking score or CAD centre the preset needs.
    """
    scene_predictions = _by_scene(predictions)
    unknown = [scene for scene in scene_predictions if scene not in ground_truth]
    if unknown:
        raise ValueError(
            f"{len(unknown)} scene(s) with predictions have no ground truth, e.g. {unknown[:3]}; check the scene ids"
        )
    scenes = list(ground_truth) if preset.scenes == "all" else list(scene_predictions)
    symmetries = symmetry_table(ground_truth.values())
    outcomes: list[PredictionOutcome] = []
    correct: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for scene in scenes:
        gt = ground_truth[scene]
        scene_outcomes = _evaluate_scene(scene, scene_predictions.get(scene, []), gt, preset, symmetries)
        outcomes.extend(scene_outcomes)
        total.update(name for name in (preset.report_class(obj.category) for obj in gt) if name is not None)
        correct.update(preset.report_class(gt[outcome.gt].category) for outcome in scene_outcomes if outcome.correct)
    if not total:
        raise ValueError(f"no ground-truth object of an evaluated class in the {len(scenes)} counted scene(s)")
    return AlignmentResults(preset=preset, correct=dict(correct), total=dict(total), scenes=scenes, outcomes=outcomes)


def bundle_scene_id(scene_dir: Path) -> str | None:
    """The optional "scene_id" of a bundle's camera.json (the scan its frame belongs to), or None."""
    path = Path(scene_dir) / "camera.json"
    read_camera(path)  # validates the file and names it in any error
    scene_id = json.loads(path.read_text()).get("scene_id")
    return None if scene_id is None else str(scene_id)


def _scene_of(scene_dir: Path, scene_of: Mapping[str, str] | None) -> str:
    if scene_of is not None and scene_dir.name in scene_of:
        return str(scene_of[scene_dir.name])
    scene_id = bundle_scene_id(scene_dir)
    if scene_id is None:
        raise BundleError(
            scene_dir / "camera.json", "no scene_id, and the caller's scene mapping does not name this bundle"
        )
    return scene_id


def _cam_to_world(scene_dir: Path) -> np.ndarray:
    camera = read_camera(scene_dir / "camera.json")
    if camera.cam_to_world is None:
        raise BundleError(scene_dir / "camera.json", "no cam_to_world: per-scene evaluation needs every camera pose")
    return camera.cam_to_world


def _centre(cads: CadIndex | None, cad: str) -> np.ndarray | None:
    return cads.centre(cad) if cads is not None and cad in cads else None


def predictions_from_bundles(
    scene_dirs: Iterable[Path],
    predictions_dir: Path | None = None,
    scene_of: Mapping[str, str] | None = None,
    cads: CadIndex | None = None,
) -> dict[str, list[WorldObject]]:
    """World-frame predictions per scene from frames' `predictions.json` (camera frame).

    Args:
        scene_dirs: scene bundle directories (one per frame), with `cam_to_world` in camera.json.
        predictions_dir: where `align` wrote `<bundle name>/predictions.json`; None: inside each bundle.
        scene_of: bundle name -> scene id; bundles it does not name use camera.json's "scene_id".
        cads: the CAD index, to attach each CAD's bounding-box centre.
    Frames keep the given order, predictions their file order.
    """
    scenes: dict[str, list[WorldObject]] = {}
    for scene_dir in map(Path, scene_dirs):
        folder = scene_dir if predictions_dir is None else Path(predictions_dir) / scene_dir.name
        cam_to_world = _cam_to_world(scene_dir)
        objects = [
            WorldObject.from_pose(pose, cam_to_world, _centre(cads, pose.cad), source=scene_dir.name)
            for pose in read_poses(folder / "predictions.json")
        ]
        scenes.setdefault(_scene_of(scene_dir, scene_of), []).extend(objects)
    return scenes


def ground_truth_from_bundles(
    scene_dirs: Iterable[Path],
    scene_of: Mapping[str, str] | None = None,
    cads: CadIndex | None = None,
) -> dict[str, list[WorldObject]]:
    """World-frame ground truth per scene from frames' `gt.json` (camera frame).

    The `id` of a gt.json object names it within its scene, so an object seen in several frames is taken
    once, from the first frame that has it. A bundle's optional `scene_gt.json` (same format) holds every
    object of its scene, seen in the frame or not (`multisparc convert scannet` writes it, as Table 1 counts
    every annotated object of a scan); it is read instead of gt.json. Bundles without either contribute no
    objects. Arguments as in `predictions_from_bundles`.
    """
    scenes: dict[str, dict[int, WorldObject]] = {}
    for scene_dir in map(Path, scene_dirs):
        objects = scenes.setdefault(_scene_of(scene_dir, scene_of), {})
        gt_path = scene_dir / SCENE_GT_FILE
        if not gt_path.is_file():
            gt_path = scene_dir / "gt.json"
        if not gt_path.is_file():
            continue
        cam_to_world = _cam_to_world(scene_dir)
        for pose in read_poses(gt_path):
            if pose.id not in objects:
                objects[pose.id] = WorldObject.from_pose(
                    pose, cam_to_world, _centre(cads, pose.cad), source=scene_dir.name
                )
    return {scene: list(objects.values()) for scene, objects in scenes.items()}
