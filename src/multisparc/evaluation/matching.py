"""Posed objects in one common frame, their pairwise errors, 3D NMS and greedy matching.

The rules are the ones the field's scripts share (see `multisparc.evaluation.presets`): rotation errors
are minima over the ground truth turned about its up axis by its symmetry, a continuous symmetry being
sampled every 10 deg as the scripts do; translations and scales are compared as in `multisparc.geometry`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from multisparc.datasets.bundle import ObjectPose
from multisparc.evaluation.presets import EvalPreset, NmsThresholds, RankingScore
from multisparc.geometry import SYMMETRIES, quat_to_matrix, scale_error, symmetry_rotations


@dataclass
class WorldObject:
    """A posed CAD model in a frame shared by predictions and ground truth: `X = t + R @ (s * X_cad)`.

    The frame is the scene's world frame for per-scene evaluation and the camera frame for per-image
    evaluation. Attributes: category (one of the 9 classes, or any other name such as a ShapeNet synset
    for objects outside them); cad (CAD id; `<synset>_<model id>` for ShapeNet models); R (3, 3);
    t (3,) metres; s (3,) positive; sym (Scan2CAD tag); score (learned classification score) and
    detection_score (2D detector confidence), None when unknown; centre (3,) the CAD's bounding-box
    centre in its own frame, metres (needed by the scan2cad preset for ground truth); source (the frame
    or file it came from); extras (anything else, e.g. "bbox" [x1, y1, x2, y2] pixels, or "id", the
    pose's id, set by `from_pose`).
    """

    category: str
    cad: str
    R: np.ndarray
    t: np.ndarray
    s: np.ndarray
    sym: str = "none"
    score: float | None = None
    detection_score: float | None = None
    centre: np.ndarray | None = None
    source: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.R = np.asarray(self.R, dtype=np.float64)
        self.t = np.asarray(self.t, dtype=np.float64)
        self.s = np.asarray(self.s, dtype=np.float64)
        name = f"object {self.category}/{self.cad}" + (f" of {self.source}" if self.source else "")
        for value, shape, label in ((self.R, (3, 3), "R"), (self.t, (3,), "t"), (self.s, (3,), "s")):
            if value.shape != shape or not np.all(np.isfinite(value)):
                raise ValueError(f"{name}: {label} must be finite of shape {shape}, got shape {value.shape}")
        if np.any(self.s <= 0):
            raise ValueError(f"{name}: scales must be positive, got {self.s.tolist()}")
        if self.sym not in SYMMETRIES:
            raise ValueError(f"{name}: unknown symmetry {self.sym!r}; expected one of {SYMMETRIES}")
        if self.centre is not None:
            self.centre = np.asarray(self.centre, dtype=np.float64).reshape(3)

    @classmethod
    def from_pose(
        cls,
        pose: ObjectPose,
        cam_to_world: np.ndarray | None = None,
        centre: np.ndarray | None = None,
        source: str | None = None,
    ) -> WorldObject:
        """A camera-frame pose moved by `cam_to_world` (4, 4) (None: left in the camera frame):
        `R_w = R_cw @ R`, `t_w = R_cw @ t + c`."""
        R = quat_to_matrix(torch.as_tensor(pose.q, dtype=torch.float64)).numpy()
        t = np.asarray(pose.t, dtype=np.float64)
        if cam_to_world is not None:
            cam_to_world = np.asarray(cam_to_world, dtype=np.float64)
            R, t = cam_to_world[:3, :3] @ R, cam_to_world[:3, :3] @ t + cam_to_world[:3, 3]
        extras = dict(pose.extras)
        extras.setdefault("id", pose.id)
        return cls(
            category=pose.category,
            cad=pose.cad,
            R=R,
            t=t,
            s=np.asarray(pose.s, dtype=np.float64),
            sym=pose.sym,
            score=pose.score,
            detection_score=pose.detection_score,
            centre=centre,
            source=source,
            extras=extras,
        )

    def centre_translation(self, sign: float = 1.0) -> np.ndarray:
        """(3,) `t + sign * R @ (s * centre)`: the bounding-box centre for sign 1, the Scan2CAD benchmark's
        ground-truth translation for sign -1. Needs `centre`."""
        if self.centre is None:
            raise ValueError(
                f"object {self.category}/{self.cad}"
                + (f" of {self.source}" if self.source else "")
                + " has no CAD bounding-box centre; give the CAD index (or Scan2CAD's `center`) when reading it"
            )
        return self.t + sign * self.R @ (self.s * self.centre)

    def ranking_value(self, which: RankingScore) -> float:
        """The score named `which` ("score" or "detection_score"); a clear error when it is missing."""
        value = self.score if which == "score" else self.detection_score
        if value is None:
            other = "detection_score" if which == "score" else "score"
            raise ValueError(
                f"object {self.category}/{self.cad}"
                + (f" of {self.source}" if self.source else "")
                + f" has no {which}; rank by {other!r} or give predictions that carry a {which}"
            )
        return float(value)


def symmetry_table(ground_truth: Iterable[Sequence[WorldObject]]) -> dict[str, str]:
    """CAD id -> symmetry tag annotated in the ground truth (later annotations win, as in the scripts'
    `cad2info` dictionaries). Predictions take their CAD's tag from it (`prediction_symmetry`)."""
    return {obj.cad: obj.sym for objects in ground_truth for obj in objects}


def prediction_symmetry(prediction: WorldObject, table: Mapping[str, str]) -> str:
    """The symmetry the ground truth annotates for the predicted CAD, else the prediction's own tag."""
    return table.get(prediction.cad, prediction.sym)


def _stack(objects: Sequence[WorldObject], name: str) -> torch.Tensor:
    return torch.as_tensor(np.stack([getattr(obj, name) for obj in objects]), dtype=torch.float64)


def rotation_errors_deg(R_a: np.ndarray, R_b: np.ndarray, syms: Sequence[str]) -> np.ndarray:
    """(M,) degrees between rotations R_a[m] and R_b[m] (M, 3, 3), R_b turned by the symmetry tag syms[m]:
    min over k of angle(R_a, R_b @ Ry(k 2 pi / n)), n = 1, 2, 4 or 36 for none, 2, 4, inf."""
    R_a = np.asarray(R_a, dtype=np.float64).reshape(-1, 3, 3)
    relative = np.swapaxes(R_a, -1, -2) @ np.asarray(R_b, dtype=np.float64).reshape(-1, 3, 3)
    syms = np.asarray(syms, dtype=object).reshape(-1)
    errors = np.zeros(len(relative))
    for tag in set(syms.tolist()):
        rows = np.flatnonzero(syms == tag)
        turns = symmetry_rotations(str(tag), torch.float64).numpy()  # (K, 3, 3)
        # angle(A) = arccos((trace(A) - 1) / 2) of A = R_a^T R_b Ry_k, for all K turns in one product
        # (cheaper than forming the K rotated matrices of every pair).
        trace = np.einsum("mij,kji->mk", relative[rows], turns)
        errors[rows] = np.rad2deg(np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0))).min(axis=1)
    return errors


@dataclass
class PairErrors:
    """Errors of P predictions against G ground-truth objects, each (P, G): t metres, r_deg degrees, s ratio."""

    t: np.ndarray
    r_deg: np.ndarray
    s: np.ndarray


def pair_errors(
    predictions: Sequence[WorldObject],
    ground_truth: Sequence[WorldObject],
    preset: EvalPreset,
    symmetries: Mapping[str, str],
) -> PairErrors:
    """Errors of every prediction against every ground-truth object under the preset's rules
    (centre offset, scale mode, symmetry rule); `symmetries` is the `symmetry_table` of the ground truth."""
    n_pred, n_gt = len(predictions), len(ground_truth)
    if n_pred == 0 or n_gt == 0:
        empty = np.zeros((n_pred, n_gt))
        return PairErrors(empty, empty.copy(), empty.copy())
    t_pred = np.stack([pred.t for pred in predictions])
    t_gt = np.stack([gt.centre_translation(-1.0) if preset.gt_centre_offset else gt.t for gt in ground_truth])
    pred_syms = [prediction_symmetry(pred, symmetries) for pred in predictions]
    if preset.symmetry == "prediction":
        syms = [sym for sym in pred_syms for _ in ground_truth]
    else:
        syms = [sym if sym == gt.sym else "none" for sym in pred_syms for gt in ground_truth]
    R_pred = np.stack([pred.R for pred in predictions])
    R_gt = np.stack([gt.R for gt in ground_truth])
    rotation = rotation_errors_deg(np.repeat(R_pred, n_gt, axis=0), np.tile(R_gt, (n_pred, 1, 1)), syms)
    return PairErrors(
        t=np.linalg.norm(t_pred[:, None] - t_gt[None], axis=-1),
        r_deg=rotation.reshape(n_pred, n_gt),
        s=scale_error(_stack(predictions, "s")[:, None], _stack(ground_truth, "s")[None], preset.scale_mode).numpy(),
    )


def aligned_pairs(
    predictions: Sequence[WorldObject],
    ground_truth: Sequence[WorldObject],
    preset: EvalPreset,
    symmetries: Mapping[str, str],
) -> np.ndarray:
    """(P, G) bool: same category (and CAD when the preset requires it) and every error within the thresholds."""
    errors = pair_errors(predictions, ground_truth, preset, symmetries)
    thresholds = preset.thresholds
    aligned = (errors.t <= thresholds.t) & (errors.r_deg <= thresholds.r_deg) & (errors.s <= thresholds.s)
    same = np.array([[pred.category == gt.category for gt in ground_truth] for pred in predictions], dtype=bool)
    if preset.require_same_cad:
        same &= np.array([[pred.cad == gt.cad for gt in ground_truth] for pred in predictions], dtype=bool)
    return aligned & same.reshape(aligned.shape)


def greedy_match(aligned: np.ndarray) -> list[int | None]:
    """Matches of predictions (rows of aligned (P, G) bool, in their order) to ground truth: each takes the
    first ground-truth column it is aligned with that no earlier prediction took, or None."""
    taken = np.zeros(aligned.shape[1], dtype=bool)
    matches: list[int | None] = []
    for row in aligned:
        free = np.flatnonzero(row & ~taken)
        if len(free):
            taken[free[0]] = True
            matches.append(int(free[0]))
        else:
            matches.append(None)
    return matches


def nms_3d(ranked: Sequence[WorldObject], thresholds: NmsThresholds, symmetries: Mapping[str, str]) -> list[int]:
    """Indices of the predictions kept by 3D NMS over `ranked` (best first).

    A prediction is dropped when a kept one of the same category lies within every threshold of it:
    translation distance, `abs(mean(s_kept / s) - 1)`, and the rotation angle under the kept CAD's symmetry.
    """
    if not ranked:
        return []
    t = np.stack([obj.t for obj in ranked])
    s = _stack(ranked, "s")
    distance = np.linalg.norm(t[:, None] - t[None], axis=-1)
    scale = scale_error(s[:, None], s[None], "mean_ratio").numpy()  # [kept, candidate]
    kept: list[int] = []
    for index, obj in enumerate(ranked):
        near = [
            k
            for k in kept
            if ranked[k].category == obj.category
            and distance[k, index] <= thresholds.t
            and scale[k, index] <= thresholds.s
        ]
        if near:
            rotation = rotation_errors_deg(
                np.stack([ranked[k].R for k in near]),
                np.repeat(obj.R[None], len(near), axis=0),
                [prediction_symmetry(ranked[k], symmetries) for k in near],
            )
            if np.any(rotation <= thresholds.r_deg):
                continue
        kept.append(index)
    return kept
