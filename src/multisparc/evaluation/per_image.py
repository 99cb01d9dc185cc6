"""Per-image evaluation (the paper's Sec. 4): each prediction against the ground truth of its own frame.

Ground truth is in the frame's camera frame (`gt.json`). An object takes part when
1. the centre of its bounding box, `t + R (s * centre)`, projects inside the image (pixel areas
   [-0.5, W - 0.5) x [-0.5, H - 0.5), the pixel-centre convention of docs/CONVENTIONS.md), in front of
   the camera, and
2. at least 50 % of its rendered pixels that have a sensor depth lie within 30 cm of it (all ground-truth
   objects of the frame rendered together, so they occlude each other; walls and unannotated things
   show up as sensor depth in front of the render).
Each prediction is associated with the taking-part ground-truth object of its class whose 2D box has
the largest IoU with the prediction's box (several predictions may pick the same object). Boxes: the
prediction's detection box (`extras["bbox"]`) when it has one, else the box of its posed CAD rendered
alone; the ground truth's is the box of its visible pixels. A prediction is correct when it is aligned
with its associated object under the preset's rules (default `sparc`, the paper's thresholds).
Predictions without an associated object (no taking-part object of their class overlaps their box) are
left out of the accuracy by default (`unmatched="skip"`: nothing visible to align to) or counted wrong.
This is the paper's rule, and it is lenient: several predictions may take one object, so a detector
that repeats its best box scores well.

The strict variant (`strict_per_image`) matches one to one: predictions in order of their ranking
score, each takes the unmatched taking-part object of its class with the largest box IoU (> 0); an
unmatched prediction counts as wrong; and the recall, correct predictions over taking-part objects,
says how much of what is visible was aligned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from multisparc.cad import CadIndex
from multisparc.datasets.bundle import BundleError, ObjectPose, read_bundle, read_poses
from multisparc.evaluation.accuracy import ClassCounts
from multisparc.evaluation.matching import WorldObject, aligned_pairs, symmetry_table
from multisparc.evaluation.presets import SPARC, EvalPreset
from multisparc.geometry import box_iou, matrix_to_quat
from multisparc.render import PlacedObject, RayCaster, image_pixels, instance_boxes, pixel_rays, render_object_alone

UnmatchedRule = Literal["skip", "wrong"]
DEPTH_TOLERANCE = 0.3
MIN_DEPTH_AGREEMENT = 0.5


@dataclass
class ImageFrame:
    """One image with its ground truth and predictions.

    K (3, 3) pixels; width, height pixels; depth (H, W) float32 sensor z-depth, metres, 0 = unknown;
    ground_truth and predictions: camera-frame poses (`X_cam = t + R(q) @ (s * X_cad)`); a prediction's
    `extras["bbox"]` [x1, y1, x2, y2] is its detection box in pixels, when known.
    """

    name: str
    K: np.ndarray
    width: int
    height: int
    depth: np.ndarray | None
    ground_truth: list[ObjectPose]
    predictions: list[ObjectPose]


def image_frame_from_bundle(scene_dir: Path, predictions_path: Path | None = None) -> ImageFrame:
    """The frame of a scene bundle with its `gt.json` and predictions (default `<scene_dir>/predictions.json`).

    A prediction without "bbox" gets the box of the bundle's detection with its id, when there is one.
    """
    scene_dir = Path(scene_dir)
    bundle = read_bundle(scene_dir)
    if bundle.gt is None:
        raise BundleError(scene_dir / "gt.json", "file not found; per-image evaluation needs the ground truth")
    predictions = read_poses(predictions_path if predictions_path is not None else scene_dir / "predictions.json")
    boxes = {detection.id: detection.bbox for detection in bundle.detections}
    for prediction in predictions:
        if "bbox" not in prediction.extras and prediction.id in boxes:
            prediction.extras["bbox"] = [float(v) for v in boxes[prediction.id]]
    camera = bundle.observation.camera
    return ImageFrame(
        name=bundle.name,
        K=camera.K,
        width=camera.width,
        height=camera.height,
        depth=bundle.observation.depth,
        ground_truth=bundle.gt,
        predictions=predictions,
    )


def reproject_ground_truth(objects: Sequence[WorldObject], cam_to_world: np.ndarray) -> list[ObjectPose]:
    """World-frame objects (e.g. `read_scan2cad_annotations`) as camera-frame ground truth of a frame with
    camera pose cam_to_world (4, 4): `R_c = R_cw^T R`, `t_c = R_cw^T (t - c)`; ids are list positions."""
    cam_to_world = np.asarray(cam_to_world, dtype=np.float64)
    R_cw, centre = cam_to_world[:3, :3], cam_to_world[:3, 3]
    poses = []
    for index, obj in enumerate(objects):
        rotation = torch.as_tensor(R_cw.T @ obj.R, dtype=torch.float64)
        poses.append(
            ObjectPose(
                id=index,
                category=obj.category,
                cad=obj.cad,
                t=R_cw.T @ (obj.t - centre),
                q=matrix_to_quat(rotation).numpy(),
                s=obj.s.copy(),
                sym=obj.sym,
            )
        )
    return poses


@dataclass
class FrameAssessment:
    """How one frame's predictions meet its ground truth (camera frame).

    ground_truth (G objects); centre_inside (G,) bool; depth_agreement (G,) fraction of rendered pixels
    with a sensor depth that lie within the tolerance; visible (G,) bool: takes part (both filters and
    an evaluated class); gt_boxes (G, 4) pixels, NaN for objects without pixels; predictions (P objects);
    evaluated (P,) bool: of an evaluated class and above the score filter; pred_boxes (P, 4) pixels, NaN
    when the posed CAD covers no pixel; assigned: per prediction the index of its associated ground-truth
    object, or None; iou (P,) IoU with it (0 without); best_iou (P,) largest IoU with any taking-part
    object of any class; correct (P,) bool; class_iou (P, G) IoU with the taking-part objects of the
    prediction's class (0 elsewhere); aligned (P, G) bool: the prediction aligns with the object.
    """

    frame: str
    ground_truth: list[WorldObject]
    centre_inside: np.ndarray
    depth_agreement: np.ndarray
    visible: np.ndarray
    gt_boxes: np.ndarray
    predictions: list[WorldObject]
    evaluated: np.ndarray
    pred_boxes: np.ndarray
    assigned: list[int | None]
    iou: np.ndarray
    best_iou: np.ndarray
    correct: np.ndarray
    class_iou: np.ndarray
    aligned: np.ndarray


def _pixel_box(box: Sequence[int]) -> np.ndarray:
    """Inclusive pixel-centre box (columns x1..x2, rows y1..y2) as the area those pixels cover, so that it
    compares with detector boxes: a pixel with centre (i, j) covers [i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]."""
    x1, y1, x2, y2 = box
    return np.array([x1 - 0.5, y1 - 0.5, x2 + 0.5, y2 + 0.5])


def _placed(objects: Sequence[WorldObject]) -> list[PlacedObject]:
    return [PlacedObject(index + 1, obj.cad, obj.R, obj.t, obj.s) for index, obj in enumerate(objects)]


def _centres_inside(objects: Sequence[WorldObject], cads: CadIndex, frame: ImageFrame) -> np.ndarray:
    inside = np.zeros(len(objects), dtype=bool)
    for index, obj in enumerate(objects):
        centre = obj.t + obj.R @ (obj.s * cads.centre(obj.cad))
        if centre[2] > 0:
            u, v = (frame.K @ centre)[:2] / centre[2]
            inside[index] = -0.5 <= u < frame.width - 0.5 and -0.5 <= v < frame.height - 0.5
    return inside


def _depth_agreement(
    caster: RayCaster, objects: Sequence[WorldObject], frame: ImageFrame, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """(G,) fractions of each object's rendered pixels with sensor depth within `tolerance` of the render,
    and the (H, W) instance map of the render (object g has id g + 1, nothing -1)."""
    directions = pixel_rays(frame.K, image_pixels(frame.width, frame.height))
    hits = caster.cast(_placed(objects), None, np.zeros(3), directions)
    instance = hits.instance.reshape(frame.height, frame.width)
    rendered = hits.point[:, 2].reshape(frame.height, frame.width)
    sensor = np.asarray(frame.depth, dtype=np.float64)
    known = sensor > 0
    agreement = np.zeros(len(objects))
    for index in range(len(objects)):
        pixels = (instance == index + 1) & known
        if pixels.any():
            agreement[index] = float(np.mean(np.abs(rendered[pixels] - sensor[pixels]) <= tolerance))
    return agreement, instance


def _prediction_box(caster: RayCaster, obj: WorldObject, frame: ImageFrame) -> np.ndarray:
    if "bbox" in obj.extras:
        return np.asarray(obj.extras["bbox"], dtype=np.float64).reshape(4)
    (placed,) = _placed([obj])
    silhouette = render_object_alone(caster, placed, frame.K, frame.width, frame.height)
    boxes = instance_boxes(silhouette.astype(np.int32), [1])
    return _pixel_box(boxes[1]) if 1 in boxes else np.full(4, np.nan)


def assess_frame(
    frame: ImageFrame,
    caster: RayCaster,
    cads: CadIndex,
    preset: EvalPreset = SPARC,
    symmetries: Mapping[str, str] | None = None,
    min_detection_score: float | None = None,
    depth_tolerance: float = DEPTH_TOLERANCE,
    min_depth_agreement: float = MIN_DEPTH_AGREEMENT,
) -> FrameAssessment:
    """Filter one frame's ground truth, associate its predictions and judge them (module docstring).

    caster renders the CADs of `cads`; symmetries: CAD id -> tag (`symmetry_table`, default this frame's
    ground truth); min_detection_score: predictions with a detection score at or below it are not evaluated.
    """
    if frame.depth is None:
        raise ValueError(f"frame {frame.name}: no sensor depth; the per-image occlusion filter needs depth.npy")
    if np.shape(frame.depth) != (frame.height, frame.width):
        raise ValueError(f"frame {frame.name}: depth is {np.shape(frame.depth)}, expected {frame.height, frame.width}")
    # With their CADs' box centres: the scan2cad preset compares translations with the centre offset.
    ground_truth = [
        WorldObject.from_pose(pose, centre=cads.centre(pose.cad) if pose.cad in cads else None, source=frame.name)
        for pose in frame.ground_truth
    ]
    predictions = [WorldObject.from_pose(pose, source=frame.name) for pose in frame.predictions]
    symmetries = symmetry_table([ground_truth]) if symmetries is None else symmetries

    centre_inside = _centres_inside(ground_truth, cads, frame)
    agreement, instance = _depth_agreement(caster, ground_truth, frame, depth_tolerance)
    evaluated_class = np.array([preset.report_class(gt.category) is not None for gt in ground_truth], dtype=bool)
    visible = centre_inside & (agreement >= min_depth_agreement) & evaluated_class
    found = instance_boxes(instance, range(1, len(ground_truth) + 1))
    gt_boxes = np.array(
        [_pixel_box(found[g + 1]) if g + 1 in found else np.full(4, np.nan) for g in range(len(ground_truth))]
    )

    evaluated = np.array(
        [
            preset.report_class(pred.category) is not None
            and (min_detection_score is None or pred.ranking_value("detection_score") > min_detection_score)
            for pred in predictions
        ],
        dtype=bool,
    )
    pred_boxes = np.array([_prediction_box(caster, pred, frame) for pred in predictions]).reshape(-1, 4)
    ious = box_iou(
        torch.as_tensor(np.nan_to_num(pred_boxes), dtype=torch.float64),
        torch.as_tensor(np.nan_to_num(gt_boxes.reshape(-1, 4)), dtype=torch.float64),
    ).numpy()
    ious[:, ~visible] = 0.0
    same_class = np.array([[pred.category == gt.category for gt in ground_truth] for pred in predictions], dtype=bool)
    same_class = same_class.reshape(ious.shape)
    class_ious = np.where(same_class, ious, 0.0)
    assigned: list[int | None] = []
    for index in range(len(predictions)):
        candidates = np.flatnonzero(class_ious[index] > 0)
        best = candidates[np.argmax(class_ious[index, candidates])] if len(candidates) else None
        assigned.append(int(best) if best is not None and evaluated[index] else None)
    aligned = aligned_pairs(predictions, ground_truth, preset, symmetries)
    return FrameAssessment(
        frame=frame.name,
        ground_truth=ground_truth,
        centre_inside=centre_inside,
        depth_agreement=agreement,
        visible=visible,
        gt_boxes=gt_boxes.reshape(-1, 4),
        predictions=predictions,
        evaluated=evaluated,
        pred_boxes=pred_boxes,
        assigned=assigned,
        iou=np.array([0.0 if g is None else class_ious[p, g] for p, g in enumerate(assigned)]),
        best_iou=ious.max(axis=1) if ground_truth else np.zeros(len(predictions)),
        correct=np.array([g is not None and bool(aligned[p, g]) for p, g in enumerate(assigned)], dtype=bool),
        class_iou=class_ious.reshape(len(predictions), len(ground_truth)),
        aligned=np.asarray(aligned, dtype=bool).reshape(len(predictions), len(ground_truth)),
    )


@dataclass
class PerImageResults(ClassCounts):
    """Per-image alignment accuracy: correct / total evaluated predictions per class (of the prediction),
    unmatched: predictions without an associated object per class; assessments: one per frame."""

    unmatched_rule: UnmatchedRule
    unmatched: dict[str, int]
    assessments: list[FrameAssessment]

    @property
    def class_mean(self) -> float:
        """Mean of the per-class accuracies."""
        return float(np.mean(list(self.per_class.values()))) if self.classes else float("nan")

    @property
    def instance(self) -> float:
        """Fraction of correct predictions, all classes together."""
        total = sum(self.total.values())
        return sum(self.correct.values()) / total if total else float("nan")

    def scored_predictions(self) -> tuple[list[WorldObject], np.ndarray]:
        """The predictions that entered the accuracy and whether each was correct (N,) bool, e.g. for
        `multisparc.evaluation.calibration`."""
        objects, correct = [], []
        for assessment in self.assessments:
            for index, pred in enumerate(assessment.predictions):
                counted = assessment.assigned[index] is not None or self.unmatched_rule == "wrong"
                if assessment.evaluated[index] and counted:
                    objects.append(pred)
                    correct.append(bool(assessment.correct[index]))
        return objects, np.array(correct, dtype=bool)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (accuracies as fractions)."""
        return {
            "preset": self.preset.name,
            "unmatched": self.unmatched_rule,
            "per_class": self.per_class,
            "correct": {name: self.correct.get(name, 0) for name in self.classes},
            "total": {name: self.total[name] for name in self.classes},
            "unmatched_predictions": dict(self.unmatched),
            "class_mean": self.class_mean,
            "instance": self.instance,
            "n_frames": len(self.assessments),
        }


def evaluate_per_image(
    frames: Iterable[ImageFrame],
    cads: CadIndex,
    preset: EvalPreset = SPARC,
    unmatched: UnmatchedRule = "skip",
    min_detection_score: float | None = None,
    caster: RayCaster | None = None,
    depth_tolerance: float = DEPTH_TOLERANCE,
    min_depth_agreement: float = MIN_DEPTH_AGREEMENT,
) -> PerImageResults:
    """Per-image alignment accuracy over `frames` (module docstring); the symmetry of a predicted CAD is
    the one the frames' ground truth annotates for it. `caster` defaults to a RayCaster over `cads`."""
    if unmatched not in ("skip", "wrong"):
        raise ValueError(f"unmatched must be 'skip' or 'wrong', got {unmatched!r}")
    frames = list(frames)
    caster = RayCaster(cads) if caster is None else caster
    symmetries = {pose.cad: pose.sym for frame in frames for pose in frame.ground_truth}
    assessments = [
        assess_frame(frame, caster, cads, preset, symmetries, min_detection_score, depth_tolerance, min_depth_agreement)
        for frame in frames
    ]
    correct: Counter[str] = Counter()
    total: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    for assessment in assessments:
        for index, pred in enumerate(assessment.predictions):
            if not assessment.evaluated[index]:
                continue
            name = preset.report_class(pred.category)
            if assessment.assigned[index] is None:
                missing[name] += 1
                if unmatched == "skip":
                    continue
            total[name] += 1
            correct[name] += int(assessment.correct[index])
    return PerImageResults(
        preset=preset,
        correct=dict(correct),
        total=dict(total),
        unmatched_rule=unmatched,
        unmatched=dict(missing),
        assessments=assessments,
    )


@dataclass
class StrictPerImageResults(ClassCounts):
    """The strict per-image protocol (module docstring): correct / total evaluated predictions per class
    (unmatched ones count as wrong), and recall: correct / taking-part objects per class."""

    objects: dict[str, int]

    @property
    def instance(self) -> float:
        """Fraction of correct predictions, all classes together."""
        total = sum(self.total.values())
        return sum(self.correct.values()) / total if total else float("nan")

    @property
    def recall(self) -> float:
        """Fraction of the taking-part objects aligned by a prediction matched to them."""
        objects = sum(self.objects.values())
        return sum(self.correct.values()) / objects if objects else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (fractions)."""
        return {
            "preset": self.preset.name,
            "matching": "one-to-one",
            "correct": {name: self.correct.get(name, 0) for name in self.classes},
            "total": {name: self.total[name] for name in self.classes},
            "objects": dict(self.objects),
            "instance": self.instance,
            "recall": self.recall,
        }


def strict_per_image(
    assessments: Sequence[FrameAssessment], preset: EvalPreset = SPARC, ranking_score: str = "score"
) -> StrictPerImageResults:
    """The strict per-image protocol over the frames' assessments (module docstring). Ties in the ranking
    score keep the predictions' order in the file."""
    correct: Counter[str] = Counter()
    total: Counter[str] = Counter()
    objects: Counter[str] = Counter()
    for assessment in assessments:
        for visible, gt in zip(assessment.visible, assessment.ground_truth, strict=True):
            if visible:
                objects[preset.report_class(gt.category)] += 1
        scores = [-pred.ranking_value(ranking_score) for pred in assessment.predictions]
        taken = np.zeros(len(assessment.ground_truth), dtype=bool)
        for index in np.argsort(scores, kind="stable"):
            if not assessment.evaluated[index]:
                continue
            name = preset.report_class(assessment.predictions[index].category)
            total[name] += 1
            ious = np.where(taken, 0.0, assessment.class_iou[index]) if len(taken) else np.zeros(0)
            if len(ious) and ious.max() > 0:
                match = int(np.argmax(ious))
                taken[match] = True
                correct[name] += int(assessment.aligned[index, match])
    return StrictPerImageResults(preset=preset, correct=dict(correct), total=dict(total), objects=dict(objects))
