"""ScanNet scans with Scan2CAD's annotations as scene bundles, one per frame (`multisparc convert scannet`).

Frames (`multisparc.datasets.scannet`): colour, depth and normals in the colour camera's view at the
bundle size, `camera.json` with `cam_to_world` (camera -> scan, metres), the gravity `up` and the
`scene_id` (the scan id, which groups the frames of a scan for the per-scene evaluation).

Ground truth: Scan2CAD's `full_annotations.json` (`evaluation.converters.read_scan2cad_annotations`):
each scan's `trs` maps the scan (ScanNet's `_vh_clean_2.ply` frame, that of the camera poses) to Scan2CAD's
y-up world, each model's `trs` maps its ShapeNet CAD frame to that world (`M = T R S`, quaternion w, x, y, z),
so a model's pose in the scan is `inv(M_scan) @ M_model`, as Scan2CAD's `Annotation2Mesh.py` and ROCA's
`Vid2CADEvaluator` compute it. Kept: the objects of the 9 classes (other synsets are counted and left out:
the bundle format has the 9 classes) whose ShapeNet model is in the ShapeNet folder (a missing one is
counted and left out, or is an error with `strict`). Each frame gets

- `gt.json`: the objects that the paper's per-image rule keeps (`evaluation.per_image`): the centre of
  the CAD's box projects inside the image, and at least 50 % of its rendered pixels (every kept object
  of the scan rendered together, so they occlude each other) that have a sensor depth lie within 30 cm
  of it; in the camera frame, with their Scan2CAD symmetry; the id of an object is its position in the
  scan's `aligned_models`, the same in every frame;
- `scene_gt.json`: every kept object of the scan in this frame's camera frame, whether seen or not: the
  per-scene evaluation (`evaluation.scene_eval.ground_truth_from_bundles`) counts all of them, as
  Table 1 and ROCA do;
- `detections.json`: empty, or with `oracle` the boxes and masks of the objects of gt.json (their visible
  pixels in the joint render), score 1 and the annotated CAD, so that alignment is measured apart from
  detection.

`cads.json` beside the bundles lists the ShapeNet models used (`<synset>_<model id>`, the ids of `multisparc
cads folder`), each with its class and the symmetry Scan2CAD annotates for it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from multisparc.cad import CadIndex
from multisparc.cad.index import CadEntry
from multisparc.cad.io import SHAPENET_MODEL
from multisparc.categories import CATEGORIES
from multisparc.datasets.bundle import Detection, ObjectPose, SceneBundle, read_bundle, write_bundle, write_poses
from multisparc.datasets.formats import ConversionError, split_cad_id
from multisparc.datasets.normals import DEFAULT_RADIUS
from multisparc.datasets.scannet import DEFAULT_SIZE, SCAN_UP, ScanFolder, find_scan, frame_observation, list_frames
from multisparc.evaluation.matching import WorldObject
from multisparc.evaluation.per_image import (
    DEPTH_TOLERANCE,
    MIN_DEPTH_AGREEMENT,
    ImageFrame,
    _centres_inside,
    _depth_agreement,
    _pixel_box,
    reproject_ground_truth,
)
from multisparc.evaluation.scene_eval import SCENE_GT_FILE
from multisparc.render import RayCaster, instance_boxes

log = logging.getLogger(__name__)

#: Objects whose CAD up axis leans farther than this from the scan's up, in the median, make the scan suspect.
MAX_UP_DEVIATION_DEG = 10.0


@dataclass
class ConversionCounts:
    """What a conversion did: frames written, skipped for a non-finite pose, or found already converted;
    objects left out for a class outside the 9 (counted per scan, once each) or a CAD missing from the
    ShapeNet folder (the CAD ids)."""

    written: int = 0
    bad_pose: int = 0
    already: int = 0
    other_class: int = 0
    missing_cads: set[str] = field(default_factory=set)
    missing_objects: int = 0

    def summary(self) -> str:
        """One line for the log."""
        return (
            f"{self.written} frame(s) written, {self.already} already there, {self.bad_pose} skipped for an inf/NaN "
            f"pose; {self.other_class} object(s) of other classes and {self.missing_objects} of "
            f"{len(self.missing_cads)} CAD(s) missing from the ShapeNet folder left out"
        )


@dataclass(frozen=True)
class AnnotatedScan:
    """A scan's kept objects (module docstring) in the scan frame: ids (their positions in the annotation)
    and objects (R (3, 3), t (3,) metres, s (3,), CAD centre (3,) in its own frame); cads: their CAD entries."""

    scan: str
    ids: list[int]
    objects: list[WorldObject]
    cads: list[CadEntry]


def shapenet_model(shapenet: Path, cad: str) -> Path:
    """The ShapeNetCore v2 model folder `<shapenet>/<synset>/<model id>` of a CAD id `<synset>_<model id>`."""
    synset, model = split_cad_id(cad, shapenet)
    return Path(shapenet) / synset / model


def annotated_scan(
    scan: str,
    annotations: dict[str, list[WorldObject]],
    annotations_path: Path,
    shapenet: Path,
    counts: ConversionCounts,
    strict: bool = False,
) -> AnnotatedScan:
    """The kept objects of `scan` (module docstring), counting those left out in `counts`; ConversionError
    naming the annotations file for a scan it lacks, or (strict) naming a CAD missing from `shapenet`."""
    if scan not in annotations:
        raise ConversionError(annotations_path, f"scan {scan} is not annotated (none of its {len(annotations)} scans)")
    ids, objects, entries = [], [], {}
    for index, obj in enumerate(annotations[scan]):
        if obj.category not in CATEGORIES:
            counts.other_class += 1
            continue
        folder = shapenet_model(shapenet, obj.cad)
        if not (folder / SHAPENET_MODEL).is_file():
            if strict:
                raise ConversionError(
                    folder / SHAPENET_MODEL, f"file not found: the CAD of {scan}'s object #{index} ({obj.category})"
                )
            counts.missing_cads.add(obj.cad)
            counts.missing_objects += 1
            continue
        ids.append(index)
        objects.append(obj)
        entries.setdefault(obj.cad, CadEntry(obj.cad, folder, obj.category, obj.sym))
    check_up(scan, objects)
    return AnnotatedScan(scan, ids, objects, list(entries.values()))


def check_up(scan: str, objects: Sequence[WorldObject]) -> float | None:
    """The median angle in degrees between the objects' CAD up axes (+Y) and the scan's up (+z), None without
    objects; a warning when it exceeds MAX_UP_DEVIATION_DEG (the gravity `up` written would be wrong)."""
    if not objects:
        return None
    cosines = [float(np.clip(obj.R[:, 1] @ SCAN_UP, -1.0, 1.0)) for obj in objects]
    angle = float(np.degrees(np.arccos(np.median(cosines))))
    if angle > MAX_UP_DEVIATION_DEG:
        log.warning("%s: its objects stand %.0f deg off the scan's z axis: is the scan z-up?", scan, angle)
    return angle


@dataclass(frozen=True)
class FrameTruth:
    """A frame's ground truth: every kept object of the scan in the camera frame (`all`), whether each
    passes the per-image rule (`visible` (N,) bool), and the (H, W) instance map of their joint render
    (object k has value k + 1, nothing -1)."""

    all: list[ObjectPose]
    visible: np.ndarray
    instance: np.ndarray

    @property
    def kept(self) -> list[ObjectPose]:
        """The objects of gt.json."""
        return [pose for pose, keep in zip(self.all, self.visible, strict=True) if keep]


def frame_truth(
    scan: AnnotatedScan, frame: ImageFrame, cam_to_world: np.ndarray, cads: CadIndex, caster: RayCaster
) -> FrameTruth:
    """The ground truth of one frame (K, size and sensor depth (H, W) metres of `frame`; cam_to_world (4, 4)
    camera -> scan) under the paper's per-image rule (module docstring); `caster` renders the CADs of `cads`."""
    poses = reproject_ground_truth(scan.objects, cam_to_world)
    for pose, obj_id in zip(poses, scan.ids, strict=True):
        pose.id = obj_id  # its place in the annotation: the same object in every frame of the scan
    camera_objects = [WorldObject.from_pose(pose) for pose in poses]
    if not poses:
        return FrameTruth([], np.zeros(0, dtype=bool), np.full((frame.height, frame.width), -1))
    inside = _centres_inside(camera_objects, cads, frame)
    agreement, instance = _depth_agreement(caster, camera_objects, frame, DEPTH_TOLERANCE)
    return FrameTruth(poses, inside & (agreement >= MIN_DEPTH_AGREEMENT), instance)


def oracle_detections(truth: FrameTruth) -> list[Detection]:
    """Detections of the objects of gt.json: box and mask of their visible pixels in the joint render, score 1,
    the annotated CAD."""
    boxes = instance_boxes(truth.instance, range(1, len(truth.all) + 1))
    detections = []
    for index, (pose, keep) in enumerate(zip(truth.all, truth.visible, strict=True)):
        if keep and index + 1 in boxes:
            mask = truth.instance == index + 1
            detections.append(Detection(pose.id, pose.category, _pixel_box(boxes[index + 1]), pose.cad, 1.0, mask))
    return detections


def write_frame_bundle(out: Path, bundle: SceneBundle, scene_id: str, scene_gt: list[ObjectPose]) -> Path:
    """Write a frame's bundle as the new folder `out`, whole or not at all (written beside it, read back as
    `align` reads it, then renamed): the bundle, camera.json's "scene_id" and scene_gt.json."""
    out = Path(out)
    staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.partial"
    staging.mkdir(parents=True)
    try:
        write_bundle(staging, bundle)
        camera_path = staging / "camera.json"
        camera = json.loads(camera_path.read_text())
        camera["scene_id"] = scene_id
        camera_path.write_text(json.dumps(camera, indent=1) + "\n")
        write_poses(staging / SCENE_GT_FILE, scene_gt)
        read_bundle(staging)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def convert_scan(
    folder: ScanFolder,
    scan: AnnotatedScan,
    out: Path,
    counts: ConversionCounts,
    every: int = 1,
    size: tuple[int, int] = DEFAULT_SIZE,
    oracle: bool = False,
    normals_radius: int = DEFAULT_RADIUS,
) -> list[Path]:
    """Write one bundle `<out>/<scan>_<frame number, 6 digits>/` per frame of the scan whose number is a multiple
    of `every` (module docstring), at `size` (W, H); frames already converted are left as they are. Returns
    the bundles written now."""
    cads = CadIndex(scan.cads, source=Path(f"<ShapeNet models of {scan.scan}>"))
    caster = RayCaster(cads)
    written = []
    for frame in list_frames(folder, every):
        target = Path(out) / f"{folder.scan}_{frame.name}"
        if (target / "camera.json").is_file():
            counts.already += 1
            continue
        seen = frame_observation(folder, frame, size, normals_radius)
        if seen is None:
            counts.bad_pose += 1
            log.info("%s: pose holds inf or NaN, frame skipped", frame.pose)
            continue
        obs = seen.observation
        camera = obs.camera
        image_frame = ImageFrame(target.name, camera.K, camera.width, camera.height, obs.depth, [], [])
        truth = frame_truth(scan, image_frame, camera.cam_to_world, cads, caster)
        detections = oracle_detections(truth) if oracle else []
        bundle = SceneBundle(target.name, obs, detections, truth.kept)
        written.append(write_frame_bundle(target, bundle, folder.scan, truth.all))
        counts.written += 1
    return written


def write_cads_json(path: Path, entries: Sequence[CadEntry]) -> Path:
    """Write (or extend) the `cads.json` at `path` with `entries` (paths relative to it); an id already there
    keeps its entry."""
    path = Path(path)
    known = dict(CadIndex.load(path)) if path.is_file() else {}
    for entry in entries:
        known.setdefault(entry.id, entry)
    return CadIndex(known.values(), source=path).save(path)


def scan_folders(scannet: Path, scans: Sequence[str]) -> list[ScanFolder]:
    """The folders of `scans` under `scannet` (`datasets.scannet.find_scan`), checked before any is converted."""
    return [find_scan(scannet, scan) for scan in scans]
