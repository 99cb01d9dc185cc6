"""Rotation conversions, batched torch over any leading dims.

Quaternions are (w, x, y, z) everywhere in multisparc; roma uses (x, y, z, w), and this module is
the only place that converts. Rotation matrices act on column vectors.

Yaw, pitch and roll describe an object standing upright (CAD +Y = gravity up) seen by a camera
(OpenCV frame, y down): `R = Rz(roll) @ Rx(pitch) @ Rx(pi) @ Ry(yaw)`. Read right to left: the model
turns by `yaw` about its own up axis; Rx(pi) places it upright in front of a level camera (CAD +Y to
camera -Y, CAD +Z towards the camera, CAD +X to camera +X); the camera then pitches (positive:
looking down) and rolls about its optical axis (positive turns image x towards image y, i.e.
clockwise on screen). Gravity up in the camera frame is then
`up = (sin(roll) cos(pitch), -cos(roll) cos(pitch), -sin(pitch))`.
"""

from __future__ import annotations

import math

import roma
import torch
from torch import Tensor

from multisparc.geometry.camera import check_last_dims

_FLIP_UPRIGHT = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])  # Rx(pi)


def quat_to_matrix(q: Tensor) -> Tensor:
    """Rotation matrices (..., 3, 3) from quaternions q (..., 4) (w, x, y, z), normalised first."""
    check_last_dims(q, (4,), "q")
    q = torch.nn.functional.normalize(q, dim=-1)
    return roma.unitquat_to_rotmat(roma.quat_wxyz_to_xyzw(q))


def matrix_to_quat(R: Tensor) -> Tensor:
    """Unit quaternions (..., 4) (w, x, y, z) with the canonical sign w >= 0, from rotations R (..., 3, 3)."""
    check_last_dims(R, (3, 3), "R")
    q = roma.quat_xyzw_to_wxyz(roma.rotmat_to_unitquat(R))
    return torch.where(q[..., :1] < 0, -q, q)


def axis_angle_y(angle: Tensor) -> Tensor:
    """Rotations (..., 3, 3) by `angle` (...) radians about +Y (right-handed: +Z turns towards +X)."""
    angle = torch.as_tensor(angle)
    if not angle.is_floating_point():
        angle = angle.to(torch.get_default_dtype())
    return roma.rotvec_to_rotmat(angle.unsqueeze(-1) * angle.new_tensor([0.0, 1.0, 0.0]))


def random_rotation(
    shape: tuple[int, ...] | int = (),
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Rotations (*shape, 3, 3) drawn uniformly from SO(3) (Haar measure)."""
    return roma.random_rotmat(shape, dtype=dtype, device=device, generator=generator)


def geodesic_angle(R1: Tensor, R2: Tensor) -> Tensor:
    """Angle (...) radians in [0, pi] of the rotation R1^T R2, for R1 and R2 (..., 3, 3) broadcast."""
    check_last_dims(R1, (3, 3), "R1")
    check_last_dims(R2, (3, 3), "R2")
    return roma.rotmat_geodesic_distance(R1, R2)


def yaw_pitch_roll_to_matrix(yaw: Tensor, pitch: Tensor, roll: Tensor) -> Tensor:
    """Rotation (..., 3, 3) of an upright model seen by a pitched and rolled camera (module docstring).

    yaw, pitch, roll (...) radians, broadcast against each other.
    """
    yaw, pitch, roll = torch.broadcast_tensors(*(torch.as_tensor(a) for a in (yaw, pitch, roll)))
    # Rx(pi) Ry(yaw) = Ry(-yaw) Rx(pi): a plain intrinsic Z-X-Y Euler triple followed by the flip.
    turned = roma.euler_to_rotmat("ZXY", [roll, pitch, -yaw])
    return turned @ _FLIP_UPRIGHT.to(turned)


def matrix_to_yaw_pitch_roll(R: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Inverse of `yaw_pitch_roll_to_matrix` for R (..., 3, 3): (yaw, pitch, roll) (...) radians.

    pitch is in [-pi/2, pi/2], yaw and roll in (-pi, pi]. Any rotation decomposes so; at pitch = +-pi/2
    (model up axis along the optical axis) yaw and roll are not unique.
    """
    check_last_dims(R, (3, 3), "R")
    roll, pitch, minus_yaw = roma.rotmat_to_euler("ZXY", R @ _FLIP_UPRIGHT.to(R), as_tuple=True)
    yaw = -minus_yaw
    # Keep yaw in (-pi, pi] after the sign flip.
    yaw = torch.where(yaw <= -math.pi, yaw + 2 * math.pi, yaw)
    return yaw, pitch, roll


def pitch_roll_from_up(up: Tensor) -> tuple[Tensor, Tensor]:
    """Camera pitch and roll (...) radians from gravity up (..., 3) in the camera frame (any length > 0)."""
    check_last_dims(up, (3,), "up")
    up = torch.nn.functional.normalize(up, dim=-1)
    pitch = torch.atan2(-up[..., 2], torch.hypot(up[..., 0], up[..., 1]))
    roll = torch.atan2(up[..., 0], -up[..., 1])
    return pitch, roll
