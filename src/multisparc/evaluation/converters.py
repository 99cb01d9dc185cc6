"""Readers and writers of the field's prediction and ground-truth files.

- ROCA's `per_frame_preds.json`: read by `multisparc.datasets.roca` (whose docstring describes it), here
  as camera-frame poses per image key, and written back.
- Scan2CAD benchmark submissions: one CSV per scan, `<scene id>.csv`, no header, rows
  `catid_cad, id_cad, tx, ty, tz, qw, qx, qy, qz, sx, sy, sz` in the scan's world frame
  (`Routines/Script/EvaluateBenchmark.py`); SPARC appends a 13th column, the score.
- Scan2CAD's `full_annotations.json`: `[{"id_scan", "trs" {translation, rotation (w, x, y, z), scale},
  "aligned_models": [{"catid_cad", "id_cad", "trs", "sym" ("__SYM_NONE", "__SYM_ROTATE_UP_2",
  "__SYM_ROTATE_UP_4", "__SYM_ROTATE_UP_INF"), "bbox" (half extents), "center" (bounding-box centre,
  CAD frame), ...}]}]`. A model's world pose is `inv(M_scan) @ M_model` with `M = T R S`.

CAD ids are `<synset>_<model id>`, as `CadIndex.from_folder` names ShapeNet models. Objects whose synset is
none of the 9 classes keep their synset as category (the scan2cad preset reports them as "other"). The
helpers shared with the dataset layer's readers live in `multisparc.datasets.formats`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multisparc.datasets.bundle import ObjectPose, atomic_write_bytes, write_json
from multisparc.datasets.formats import (
    ConversionError,
    cad_id,
    category_of_synset,
    positive,
    read_json,
    rotation,
    split_cad_id,
    vector,
)
from multisparc.datasets.roca import ROCA_CLASS_NAMES, read_roca_file, roca_frame
from multisparc.evaluation.matching import WorldObject
from multisparc.geometry import matrix_to_quat

# The shared readers' names are re-exported from here, where the evaluation code has always found them.
__all__ = [
    "ROCA_CLASS_NAMES",
    "SCAN2CAD_SYMMETRY",
    "ConversionError",
    "cad_id",
    "category_of_synset",
    "read_roca_predictions",
    "read_scan2cad_annotations",
    "read_scan2cad_csv",
    "read_scan2cad_submission",
    "roca_frame",
    "split_cad_id",
    "write_roca_predictions",
    "write_scan2cad_csv",
    "write_scan2cad_submission",
]

SCAN2CAD_SYMMETRY: dict[str, str] = {
    "__SYM_NONE": "none",
    "__SYM_ROTATE_UP_2": "2",
    "__SYM_ROTATE_UP_4": "4",
    "__SYM_ROTATE_UP_INF": "inf",
}


def _quaternion(R: np.ndarray) -> list[float]:
    return matrix_to_quat(torch.as_tensor(R, dtype=torch.float64)).tolist()


# ROCA -----------------------------------------------------------------------------------------------


def read_roca_predictions(path: Path | str) -> dict[str, list[ObjectPose]]:
    """ROCA's `per_frame_preds.json` as camera-frame predictions per image key.

    Each prediction gets id = its position in the frame's list, cad = `<synset>_<model id>` from
    "scene_cad_id" (else "wild_cad_id"), detection_score = "score", score = "classification_score" when
    present (written by `write_roca_predictions`) else "score", extras["bbox"] = the box.
    """
    frames: dict[str, list[ObjectPose]] = {}
    for key, records in read_roca_file(path, require_pose=True).items():
        frames[key] = [
            ObjectPose(
                id=record.index,
                category=record.category,
                cad=record.cad,
                t=record.t,
                q=record.q,
                s=record.s,
                score=record.score if record.classification_score is None else record.classification_score,
                detection_score=record.score,
                extras={"bbox": record.bbox.tolist()},
            )
            for record in records
        ]
    return frames


def write_roca_predictions(path: Path | str, frames: Mapping[str, Sequence[ObjectPose]]) -> Path:
    """Write camera-frame predictions per image key as ROCA's `per_frame_preds.json` (no segmentation).

    "score" is the detection score (ROCA's meaning; the learned score when there is none); a learned score
    is kept as "classification_score". Each prediction needs extras["bbox"] and a `<synset>_<id>` CAD id.
    """
    path = Path(path)
    data: dict[str, list[dict[str, Any]]] = {}
    for key, poses in frames.items():
        records = []
        for pose in poses:
            if "bbox" not in pose.extras:
                raise ConversionError(path, f"{key}: prediction {pose.id} has no bbox, which ROCA's format needs")
            detection = pose.detection_score if pose.detection_score is not None else pose.score
            if detection is None:
                raise ConversionError(path, f"{key}: prediction {pose.id} has no score")
            record: dict[str, Any] = {
                "score": float(detection),
                "bbox": [float(v) for v in pose.extras["bbox"]],
                "t": [float(v) for v in pose.t],
                "q": [float(v) for v in pose.q],
                "s": [float(v) for v in pose.s],
                "category": ROCA_CLASS_NAMES.get(pose.category, pose.category),
                "scene_cad_id": list(split_cad_id(pose.cad, path)),
            }
            if pose.score is not None:
                record["classification_score"] = float(pose.score)
            records.append(record)
        data[key] = records
    write_json(path, data)
    return path


# Scan2CAD CSV submissions ---------------------------------------------------------------------------


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_scan2cad_csv(path: Path | str) -> list[WorldObject]:
    """One scan's benchmark CSV (module docstring) as world-frame objects in file order; a 13th column is
    read as the score (both score and detection_score), a header row is skipped."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(path, "file not found")
    rows = [row for row in csv.reader(io.StringIO(path.read_text())) if any(cell.strip() for cell in row)]
    if rows and len(rows[0]) > 2 and not _is_number(rows[0][2]):
        rows = rows[1:]
    objects = []
    for line, row in enumerate(rows, start=1):
        where = f"row {line}"
        if len(row) not in (12, 13):
            raise ConversionError(path, f"{where}: expected 12 columns (catid_cad, id_cad, t, q, s) or 13 (+ score)")
        numbers = vector(path, where, [cell.strip() for cell in row[2:]], len(row) - 2)
        synset = row[0].strip().zfill(8)
        score = float(numbers[10]) if len(row) == 13 else None
        objects.append(
            WorldObject(
                category=category_of_synset(synset),
                cad=cad_id(synset, row[1].strip()),
                R=rotation(path, where, numbers[3:7]),
                t=numbers[0:3],
                s=positive(path, where, numbers[7:10]),
                score=score,
                detection_score=score,
                source=path.name,
            )
        )
    return objects


def write_scan2cad_csv(path: Path | str, objects: Sequence[WorldObject], with_score: bool = False) -> Path:
    """Write one scan's objects as a benchmark CSV (no header); `with_score` appends SPARC's score column
    (the learned score, else the detection score)."""
    path = Path(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for obj in objects:
        synset, model = split_cad_id(obj.cad, path)
        row: list[Any] = [synset, model, *obj.t.tolist(), *_quaternion(obj.R), *obj.s.tolist()]
        if with_score:
            score = obj.score if obj.score is not None else obj.detection_score
            if score is None:
                raise ConversionError(path, f"object {obj.cad} has no score for the score column")
            row.append(float(score))
        writer.writerow(row)
    atomic_write_bytes(path, buffer.getvalue().encode())
    return path


def read_scan2cad_submission(folder: Path | str) -> dict[str, list[WorldObject]]:
    """Every `<scene id>.csv` of a benchmark submission folder, by scene id (sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConversionError(folder, "submission folder not found")
    return {file.stem: read_scan2cad_csv(file) for file in sorted(folder.glob("*.csv"))}


def write_scan2cad_submission(
    folder: Path | str, predictions: Mapping[str, Sequence[WorldObject]], with_score: bool = False
) -> Path:
    """Write one `<scene id>.csv` per scene (world frame) into `folder`; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for scene, objects in predictions.items():
        write_scan2cad_csv(folder / f"{scene}.csv", objects, with_score)
    return folder


# Scan2CAD annotations -------------------------------------------------------------------------------


def _trs_matrix(path: Path, where: str, trs: Any) -> np.ndarray:
    if not isinstance(trs, dict) or any(key not in trs for key in ("translation", "rotation", "scale")):
        raise ConversionError(path, f"{where}: trs needs translation, rotation and scale")
    matrix = np.eye(4)
    scale = positive(path, where, vector(path, f"{where} scale", trs["scale"], 3))
    matrix[:3, :3] = rotation(path, where, vector(path, f"{where} rotation", trs["rotation"], 4)) * scale
    matrix[:3, 3] = vector(path, f"{where} translation", trs["translation"], 3)
    return matrix


def read_scan2cad_annotations(path: Path | str, scenes: Sequence[str] | None = None) -> dict[str, list[WorldObject]]:
    """Scan2CAD's `full_annotations.json` as world-frame ground truth per scan (annotation order).

    The world frame is the scan's (ScanNet mesh) frame: a model's pose is `inv(M_scan) @ M_model`,
    decomposed into rotation and per-axis scale as the scripts' `decompose_mat4`. `center` becomes the
    object's CAD centre. Only `scenes` are read when given.
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, list):
        raise ConversionError(path, "expected a JSON list of scans")
    wanted = None if scenes is None else set(scenes)
    result: dict[str, list[WorldObject]] = {}
    for number, scan in enumerate(data):
        if not isinstance(scan, dict) or "id_scan" not in scan or "aligned_models" not in scan:
            raise ConversionError(path, f"scan #{number}: needs id_scan and aligned_models")
        scene = str(scan["id_scan"])
        if wanted is not None and scene not in wanted:
            continue
        to_world = np.linalg.inv(_trs_matrix(path, scene, scan.get("trs")))
        objects = []
        for index, model in enumerate(scan["aligned_models"]):
            where = f"{scene} model #{index}"
            missing = [key for key in ("catid_cad", "id_cad", "trs", "sym", "center") if key not in model]
            if missing:
                raise ConversionError(path, f"{where}: missing key(s) {', '.join(missing)}")
            if model["sym"] not in SCAN2CAD_SYMMETRY:
                raise ConversionError(path, f"{where}: unknown symmetry {model['sym']!r}")
            matrix = to_world @ _trs_matrix(path, where, model["trs"])
            scale = np.linalg.norm(matrix[:3, :3], axis=0)
            rotation = matrix[:3, :3] / scale
            if np.linalg.det(rotation) <= 0 or not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-6):
                raise ConversionError(path, f"{where}: its pose in the scan frame is no rotation times scale")
            objects.append(
                WorldObject(
                    category=category_of_synset(model["catid_cad"]),
                    cad=cad_id(model["catid_cad"], str(model["id_cad"])),
                    R=rotation,
                    t=matrix[:3, 3],
                    s=scale,
                    sym=SCAN2CAD_SYMMETRY[model["sym"]],
                    centre=vector(path, f"{where} center", model["center"], 3),
                    source=scene,
                )
            )
        result[scene] = objects
    return result
