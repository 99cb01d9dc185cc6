"""Pose errors and the alignment rule (translation <= 20 cm, rotation <= 20 deg, scale <= 20 %).

Symmetry tags follow Scan2CAD: "none", "2", "4", "inf" = the CAD model looks the same after turning
about its own +Y (up) axis by 180 deg, 90 deg, or any angle. Rotation errors take the minimum over the
ground truth turned by its symmetry, R_gt @ Ry(k * 2 pi / n), with n = 36 turns of 10 deg for "inf": the
rule of the Scan2CAD benchmark script (its `calc_rotation_diff_considering_symmetry`, `m = 36` for
`__SYM_ROTATE_UP_INF`) and of ROCA's evaluation, used alike by the evaluation, the demo's object errors
and the training labels, so that an object aligned in one is aligned in all. (It reads up to 5 deg more
than the exact angle between the up axes.) Scales are compared as they are, whatever the turn, as that
script does; the training loss takes the same poses as equivalent (`training.losses`).

Where an argument `sym` may be a sequence, it holds one tag per pose, nested like a prefix of the
batch shape: for poses of shape (B,) or (B, H) a list of B tags applies tag b to every pose [b, ...].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from multisparc.geometry.camera import check_last_dims
from multisparc.geometry.pose import Pose
from multisparc.geometry.rotations import axis_angle_y, geodesic_angle

Symmetry = Literal["none", "2", "4", "inf"]
ScaleMode = Literal["mean_ratio", "per_axis"]
#: A tag for all poses, or one per pose nested like a prefix of the batch shape.
SymmetrySpec = str | Sequence["SymmetrySpec"]

SYMMETRIES: tuple[str, ...] = ("none", "2", "4", "inf")
SCALE_MODES: tuple[str, ...] = ("mean_ratio", "per_axis")
#: Samples of the continuous symmetry used by losses; divisible by 2 and 4 so that the discrete
#: symmetries tile it exactly (see `symmetry_rotations`).
INF_SYMMETRY_SAMPLES = 36
_TURNS = {"none": 1, "2": 2, "4": 4, "inf": INF_SYMMETRY_SAMPLES}


@dataclass(frozen=True)
class AlignmentThresholds:
    """A prediction is aligned when every error is at most its threshold: t metres, r_deg degrees, s ratio."""

    t: float = 0.2
    r_deg: float = 20.0
    s: float = 0.2


DEFAULT_THRESHOLDS = AlignmentThresholds()


def _check_symmetry(sym: str) -> str:
    if sym not in _TURNS:
        raise ValueError(f"unknown symmetry {sym!r}; expected one of {', '.join(SYMMETRIES)}")
    return sym


def _symmetry_codes(sym: SymmetrySpec, batch_shape: torch.Size, device: torch.device) -> Tensor:
    """Indices into SYMMETRIES, shaped to broadcast against batch_shape (tags align with its leading dims)."""

    def encode(item: SymmetrySpec):
        if isinstance(item, str):
            return SYMMETRIES.index(_check_symmetry(item))
        return [encode(entry) for entry in item]

    try:
        codes = torch.tensor(encode(sym), dtype=torch.long, device=device)
    except ValueError as error:
        raise ValueError(f"symmetry tags must form a regular nested list: {error}") from error
    if tuple(codes.shape) != tuple(batch_shape[: codes.dim()]):
        raise ValueError(
            f"symmetry tags of shape {tuple(codes.shape)} do not match the leading dims of the batch "
            f"shape {tuple(batch_shape)}"
        )
    return codes.reshape(codes.shape + (1,) * (len(batch_shape) - codes.dim()))


def symmetry_rotations(
    sym: SymmetrySpec, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """Rotations about the CAD +Y axis that leave a model of symmetry `sym` unchanged.

    A single tag gives (K, 3, 3): none: the identity; 2: 0 and 180 deg; 4: multiples of 90 deg;
    inf: INF_SYMMETRY_SAMPLES = 36 multiples of 10 deg. A sequence of B tags gives (B, 36, 3, 3), each
    object's own rotations repeated to fill 36, so that a minimum over the 36 equals the minimum over
    its own set and mixed batches need no grouping.
    """
    if isinstance(sym, str):
        turns = _TURNS[_check_symmetry(sym)]
        return axis_angle_y(torch.arange(turns, dtype=dtype, device=device) * (2 * math.pi / turns))
    per_object = [symmetry_rotations(tag, dtype, device) for tag in sym]
    return torch.stack([r.repeat(INF_SYMMETRY_SAMPLES // r.shape[0], 1, 1) for r in per_object])


def _rotation_error_one_symmetry(R_pred: Tensor, R_gt: Tensor, sym: str) -> Tensor:
    candidates = R_gt.unsqueeze(-3) @ symmetry_rotations(sym, R_gt.dtype, R_gt.device)
    return geodesic_angle(R_pred.unsqueeze(-3), candidates).amin(dim=-1)


def rotation_error(R_pred: Tensor, R_gt: Tensor, sym: SymmetrySpec) -> Tensor:
    """Angle (...) radians between R_pred and R_gt (..., 3, 3) (broadcast), up to the symmetry `sym`:
    the minimum geodesic angle to R_gt @ Ry(k * 2 pi / n), n = 1, 2, 4 or, for "inf", 36 (module
    docstring). `sym` is one tag, or one per pose.
    """
    check_last_dims(R_pred, (3, 3), "R_pred")
    check_last_dims(R_gt, (3, 3), "R_gt")
    R_pred, R_gt = torch.broadcast_tensors(R_pred, R_gt)
    if isinstance(sym, str):
        return _rotation_error_one_symmetry(R_pred, R_gt, _check_symmetry(sym))
    batch_shape = R_pred.shape[:-2]
    codes = _symmetry_codes(sym, batch_shape, R_pred.device).expand(batch_shape)
    per_symmetry = torch.stack([_rotation_error_one_symmetry(R_pred, R_gt, tag) for tag in SYMMETRIES], -1)
    return per_symmetry.gather(-1, codes.unsqueeze(-1)).squeeze(-1)


def translation_error(t_pred: Tensor, t_gt: Tensor) -> Tensor:
    """Euclidean distance (...) metres between translations t_pred and t_gt (..., 3)."""
    check_last_dims(t_pred, (3,), "t_pred")
    check_last_dims(t_gt, (3,), "t_gt")
    return torch.linalg.vector_norm(t_pred - t_gt, dim=-1)


def scale_error(s_pred: Tensor, s_gt: Tensor, mode: ScaleMode = "per_axis") -> Tensor:
    """Relative scale error (...) of s_pred against s_gt (..., 3).

    "mean_ratio": |mean(s / s_gt) - 1| (Scan2CAD benchmark, ROCA); "per_axis": mean(|s / s_gt - 1|)
    (SPARC, the paper's Table 1, and never smaller than mean_ratio).
    """
    check_last_dims(s_pred, (3,), "s_pred")
    check_last_dims(s_gt, (3,), "s_gt")
    ratio = s_pred / s_gt
    if mode == "mean_ratio":
        return (ratio.mean(dim=-1) - 1).abs()
    if mode == "per_axis":
        return (ratio - 1).abs().mean(dim=-1)
    raise ValueError(f"unknown scale error mode {mode!r}; expected one of {', '.join(SCALE_MODES)}")


def pose_errors(
    pred: Pose,
    gt: Pose,
    sym: SymmetrySpec,
    scale_mode: ScaleMode = "per_axis",
) -> dict[str, Tensor]:
    """Errors (...) of pred against gt: "t" metres, "r_deg" degrees (up to `sym`), "s" (`scale_mode`)."""
    return {
        "t": translation_error(pred.t, gt.t),
        "r_deg": torch.rad2deg(rotation_error(pred.R, gt.R, sym)),
        "s": scale_error(pred.s, gt.s, scale_mode),
    }


def is_aligned(
    pose_pred: Pose,
    pose_gt: Pose,
    sym: SymmetrySpec,
    thresholds: AlignmentThresholds = DEFAULT_THRESHOLDS,
    scale_mode: ScaleMode = "per_axis",
) -> Tensor:
    """Bool (...): every error of pose_pred against pose_gt is at most its threshold."""
    errors = pose_errors(pose_pred, pose_gt, sym, scale_mode)
    translation_ok = errors["t"] <= thresholds.t
    return translation_ok & (errors["r_deg"] <= thresholds.r_deg) & (errors["s"] <= thresholds.s)
