"""What the renderer draws of one CAD model: its id, its pose in the camera frame and its material."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from multisparc.render.texture import PLAIN, Texture

# Tolerance on R^T R = I: poses come from float32 pipelines.
_ROTATION_TOLERANCE = 1e-3


@dataclass(frozen=True, eq=False)
class PlacedObject:
    """One CAD model placed in the camera frame: `X_cam = t + R @ (s * X_cad)`.

    Attributes:
        instance_id: >= 1, the value of its pixels in instance maps (0 is the room, -1 nothing).
        cad_key: the model's id in the renderer's mesh source.
        R: (3, 3) rotation CAD -> camera frame. t: (3,) translation, metres. s: (3,) positive scales
            along the CAD axes. All stored as float64 copies (do not modify them:
            the renderer caches what it derives from them).
        albedo: (3,) RGB reflectance in [0, 1].
        texture: procedural pattern in the scaled CAD frame `s * X_cad` (metres).
    """

    instance_id: int
    cad_key: str
    R: np.ndarray
    t: np.ndarray
    s: np.ndarray
    albedo: np.ndarray = field(default_factory=lambda: np.full(3, 0.6))
    texture: Texture = PLAIN

    def __post_init__(self) -> None:
        name = f"object {self.instance_id} ({self.cad_key!r})"
        if isinstance(self.instance_id, bool) or not isinstance(self.instance_id, int | np.integer):
            raise ValueError(f"{name}: instance_id must be an int, got {type(self.instance_id).__name__}")
        if self.instance_id < 1:
            raise ValueError(f"{name}: instance_id must be >= 1 (0 is the room), got {self.instance_id}")
        # Private copies: the renderer caches what it derives from an object's pose.
        R, t, s, albedo = (np.array(value, dtype=np.float64) for value in (self.R, self.t, self.s, self.albedo))
        for value, shape, label in (
            (R, (3, 3), "R"),
            (t, (3,), "t"),
            (s, (3,), "s"),
            (albedo, (3,), "albedo"),
        ):
            if value.shape != shape or not np.isfinite(value).all():
                raise ValueError(f"{name}: {label} must be finite of shape {shape}, got shape {value.shape}")
        orthogonality = float(np.abs(R.T @ R - np.eye(3)).max())
        if orthogonality > _ROTATION_TOLERANCE or np.linalg.det(R) <= 0:
            raise ValueError(f"{name}: R is not a rotation matrix (R^T R != I or det <= 0)")
        if (s <= 0).any():
            raise ValueError(f"{name}: scales must be positive, got {s.tolist()}")
        if (albedo < 0).any() or (albedo > 1).any():
            raise ValueError(f"{name}: albedo must lie in [0, 1], got {albedo.tolist()}")
        object.__setattr__(self, "instance_id", int(self.instance_id))
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "s", s)
        object.__setattr__(self, "albedo", albedo)
