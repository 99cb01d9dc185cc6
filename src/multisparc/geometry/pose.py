"""9-DoF CAD model poses (rotation, translation, per-axis scale), polar translations and pose updates.

A pose maps CAD coordinates to the camera frame: `X_cam = t + R @ (s * X_cad)`, i.e. the 4x4 matrix
M = T R S (Scan2CAD, ROCA). Camera frame is OpenCV, metres; quaternions are (w, x, y, z).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import roma
import torch
from torch import Tensor

from multisparc.geometry.camera import check_last_dims
from multisparc.geometry.rotations import matrix_to_quat, quat_to_matrix

#: Update vector layout of `apply_update`: [d_raw, dphi, dtheta, q_raw (4), s_raw (3)].
UPDATE_SIZE = 10
#: Smallest camera distance the polar update scales from, metres (a pose at t = 0 could never move).
MIN_DISTANCE = 1e-3
_TINY = 1e-30


@dataclass(frozen=True, eq=False)
class Pose:
    """A batch of poses: R (..., 3, 3) rotation, t (..., 3) camera frame metres, s (..., 3) scale > 0.

    s scales the CAD model along its own x, y, z axes before R turns it. All three share the batch
    shape `shape` (the leading dims); every method returns new tensors and is differentiable.
    """

    R: Tensor
    t: Tensor
    s: Tensor

    def __post_init__(self) -> None:
        check_last_dims(self.R, (3, 3), "Pose.R")
        check_last_dims(self.t, (3,), "Pose.t")
        check_last_dims(self.s, (3,), "Pose.s")
        shapes = {tuple(self.R.shape[:-2]), tuple(self.t.shape[:-1]), tuple(self.s.shape[:-1])}
        if len(shapes) != 1:
            sizes = f"R {tuple(self.R.shape)}, t {tuple(self.t.shape)}, s {tuple(self.s.shape)}"
            raise ValueError(f"Pose batch shapes differ: {sizes}")

    @property
    def shape(self) -> torch.Size:
        """The batch shape (the leading dims shared by R, t and s)."""
        return self.t.shape[:-1]

    @classmethod
    def identity(cls, shape: tuple[int, ...] = (), dtype: torch.dtype = torch.float32, device=None) -> Pose:
        """Identity poses (R = I, t = 0, s = 1) of batch shape `shape`."""
        eye = torch.eye(3, dtype=dtype, device=device).expand(*shape, 3, 3).clone()
        zeros = torch.zeros(*shape, 3, dtype=dtype, device=device)
        return cls(eye, zeros, torch.ones_like(zeros))

    def apply(self, points: Tensor) -> Tensor:
        """CAD-frame points (..., N, 3) to camera-frame points (..., N, 3), metres."""
        check_last_dims(points, (3,), "points")
        return (points * self.s.unsqueeze(-2)) @ self.R.transpose(-1, -2) + self.t.unsqueeze(-2)

    def apply_normals(self, normals: Tensor) -> Tensor:
        """CAD-frame normals (..., N, 3) to unit camera-frame normals (..., N, 3).

        Normals transform with the inverse transpose of R diag(s), which is R diag(1 / s).
        """
        check_last_dims(normals, (3,), "normals")
        turned = (normals / self.s.unsqueeze(-2)) @ self.R.transpose(-1, -2)
        return torch.nn.functional.normalize(turned, dim=-1)

    def inverse_apply(self, points: Tensor) -> Tensor:
        """Camera-frame points (..., N, 3) to CAD-frame points (..., N, 3)."""
        check_last_dims(points, (3,), "points")
        return ((points - self.t.unsqueeze(-2)) @ self.R) / self.s.unsqueeze(-2)

    def to_matrix(self) -> Tensor:
        """Homogeneous matrices (..., 4, 4) M = T R S."""
        top = torch.cat([self.R * self.s.unsqueeze(-2), self.t.unsqueeze(-1)], dim=-1)
        bottom = torch.zeros_like(top[..., :1, :])
        bottom[..., 0, 3] = 1
        return torch.cat([top, bottom], dim=-2)

    @classmethod
    def from_matrix(cls, M: Tensor) -> Pose:
        """Split affine matrices M (..., 4, 4) = T R S into a pose with positive per-axis scale.

        M[:3, :3] = R diag(s), so s are its column norms; R (the columns over s) is projected onto the
        nearest rotation to absorb rounding. Reflections, zero scales and a last row other than
        [0, 0, 0, 1] cannot be expressed: ValueError.
        """
        check_last_dims(M, (4, 4), "M")
        if not torch.allclose(M[..., 3, :], M.new_tensor([0.0, 0.0, 0.0, 1.0]).expand_as(M[..., 3, :])):
            raise ValueError("pose matrix is not affine: its last row must be [0, 0, 0, 1]")
        linear = M[..., :3, :3]
        s = torch.linalg.vector_norm(linear, dim=-2)
        if not bool((s > 0).all()):
            raise ValueError("pose matrix has a zero-length axis (zero scale)")
        if bool((torch.linalg.det(linear) < 0).any()):
            raise ValueError("pose matrix contains a reflection (negative determinant): scales must be > 0")
        R = roma.special_procrustes(linear / s.unsqueeze(-2))
        return cls(R, M[..., :3, 3], s)

    def to_tqs(self) -> tuple[Tensor, Tensor, Tensor]:
        """(t (..., 3) metres, q (..., 4) (w, x, y, z) with w >= 0, s (..., 3))."""
        return self.t, matrix_to_quat(self.R), self.s

    @classmethod
    def from_tqs(cls, t: Tensor, q: Tensor, s: Tensor) -> Pose:
        """From t (..., 3) metres, q (..., 4) (w, x, y, z) (normalised here), s (..., 3)."""
        return cls(quat_to_matrix(q), t, s)

    @classmethod
    def from_numpy(cls, R: np.ndarray, t: np.ndarray, s: np.ndarray) -> Pose:
        """From numpy arrays R (..., 3, 3), t (..., 3), s (..., 3); copies, keeps the dtype."""
        return cls(*(torch.tensor(np.asarray(a)) for a in (R, t, s)))

    def to_numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(R, t, s) as numpy arrays (detached, on the CPU)."""
        return tuple(a.detach().cpu().numpy() for a in (self.R, self.t, self.s))

    def index(self, idx) -> Pose:
        """Index the batch dims like a tensor of shape `shape` (ints, slices, masks, Ellipsis, None)."""
        positions = torch.arange(self.shape.numel(), device=self.t.device).reshape(self.shape)[idx]
        return Pose(
            self.R.reshape(-1, 3, 3)[positions],
            self.t.reshape(-1, 3)[positions],
            self.s.reshape(-1, 3)[positions],
        )

    __getitem__ = index

    def detach(self) -> Pose:
        """The same poses cut from the autograd graph."""
        return Pose(self.R.detach(), self.t.detach(), self.s.detach())

    def clone(self) -> Pose:
        """A copy with its own storage."""
        return Pose(self.R.clone(), self.t.clone(), self.s.clone())

    def to(self, *args, **kwargs) -> Pose:
        """`Tensor.to` applied to R, t and s (device and/or dtype)."""
        return Pose(self.R.to(*args, **kwargs), self.t.to(*args, **kwargs), self.s.to(*args, **kwargs))

    @staticmethod
    def cat(poses: Sequence[Pose], dim: int = 0) -> Pose:
        """Concatenate poses along batch dim `dim`."""
        dim = _batch_dim(poses, dim, extra=0)
        return Pose(*(torch.cat([getattr(p, f) for p in poses], dim=dim) for f in ("R", "t", "s")))

    @staticmethod
    def stack(poses: Sequence[Pose], dim: int = 0) -> Pose:
        """Stack poses of equal batch shape along a new batch dim `dim`."""
        dim = _batch_dim(poses, dim, extra=1)
        return Pose(*(torch.stack([getattr(p, f) for p in poses], dim=dim) for f in ("R", "t", "s")))


def _batch_dim(poses: Sequence[Pose], dim: int, extra: int) -> int:
    """A batch-dim index made non-negative, so it addresses the same axis of R, t and s."""
    if not poses:
        raise ValueError("need at least one pose")
    ndim = len(poses[0].shape) + extra
    if not -ndim <= dim < ndim:
        raise ValueError(f"batch dim {dim} out of range for {ndim} batch dims")
    return dim % ndim


def translation_to_polar(t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Polar coordinates (d, phi, theta) (...) of camera-frame translations t (..., 3).

    `t = d * (cos(theta) sin(phi), sin(theta), cos(theta) cos(phi))`: d metres, phi azimuth about the
    camera y axis (0 on the optical axis), theta elevation towards +y (image down). The poles lie on the
    camera y axis, far from any visible object; there phi is undefined and taken as 0, and at t = 0 both
    angles are 0 (the optical axis). Gradients stay finite everywhere (zero where an angle is undefined).
    """
    check_last_dims(t, (3,), "t")
    x, y, z = t.unbind(-1)
    # sqrt(x^2 + z^2) with a zero gradient at the pole (hypot's is 0/0 there); the tiny floor leaves every
    # representable non-zero length unchanged.
    horizontal = torch.sqrt(x * x + z * z + _TINY)
    on_axis = (x == 0) & (z == 0)
    phi = torch.atan2(torch.where(on_axis, 0.0, x), torch.where(on_axis, 1.0, z))
    at_origin = on_axis & (y == 0)
    theta = torch.atan2(torch.where(at_origin, 0.0, y), torch.where(at_origin, 1.0, horizontal))
    return torch.sqrt(horizontal * horizontal + y * y), phi, theta


def polar_to_translation(d: Tensor, phi: Tensor, theta: Tensor) -> Tensor:
    """Camera-frame translations (..., 3) from d, phi, theta (...) (see `translation_to_polar`)."""
    cos_theta = torch.cos(theta)
    direction = torch.stack([cos_theta * torch.sin(phi), torch.sin(theta), cos_theta * torch.cos(phi)], -1)
    return d.unsqueeze(-1) * direction


def apply_update(pose: Pose, update: Tensor) -> Pose:
    """Apply network outputs update (..., 10) = [d_raw, dphi, dtheta, q_raw (4), s_raw (3)] to `pose`.

    d' = max(d, MIN_DISTANCE) * 2 sigmoid(d_raw), phi' = phi + dphi, theta' = theta + dtheta (polar
    translation; the floor lets a pose at the camera centre move at all, as d' is a multiple of d);
    R' = R @ dR with dR from the quaternion normalize([1 + q_raw[0], q_raw[1:]]) (w, x, y, z), a turn
    in the CAD frame; s' = s * 2 sigmoid(s_raw). A zero update returns the same pose (for d >= MIN_DISTANCE).
    """
    check_last_dims(update, (UPDATE_SIZE,), "update")
    d_raw, dphi, dtheta = update[..., 0], update[..., 1], update[..., 2]
    q_raw, s_raw = update[..., 3:7], update[..., 7:10]
    d, phi, theta = translation_to_polar(pose.t)
    d = d.clamp(min=MIN_DISTANCE)
    t = polar_to_translation(d * 2 * torch.sigmoid(d_raw), phi + dphi, theta + dtheta)
    dq = torch.cat([1 + q_raw[..., :1], q_raw[..., 1:]], dim=-1)
    return Pose(pose.R @ quat_to_matrix(dq), t, pose.s * 2 * torch.sigmoid(s_raw))
