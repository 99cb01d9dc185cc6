"""The synthetic camera: intrinsics, and a pose standing in the room looking slightly down.

World frame: Y up, floor at y = 0, metres. Camera frame: OpenCV (x right, y down, z forward). The
world -> camera rotation is `multisparc.geometry.yaw_pitch_roll_to_matrix(yaw, pitch, roll)` (the same
convention, computed with scipy here): the world plays the part of an upright model, so pitch > 0
looks down and gravity up in the camera frame is `(sin(roll) cos(pitch), -cos(roll) cos(pitch),
-sin(pitch))`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.spatial.transform import Rotation

from multisparc.scenes.config import SceneConfig

WORLD_UP = np.array([0.0, 1.0, 0.0])
# Rx(pi), column scales: the upright flip of `multisparc.geometry.yaw_pitch_roll_to_matrix`.
_FLIP_UPRIGHT = np.array([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class CameraRig:
    """A pinhole camera placed in the world.

    K: (3, 3) intrinsics, pixels. width, height: image size, pixels. position: (3,) camera centre,
    world frame, metres. world_to_camera: (3, 3) rotation, world -> camera frame. yaw, pitch, roll:
    the angles it was built from, radians.
    """

    K: np.ndarray
    width: int
    height: int
    position: np.ndarray
    world_to_camera: np.ndarray
    yaw: float
    pitch: float
    roll: float

    @classmethod
    def looking(
        cls, K: np.ndarray, width: int, height: int, position: np.ndarray, yaw: float, pitch: float, roll: float
    ) -> CameraRig:
        """A camera at `position` (3,) world metres, turned by yaw, pitched down by pitch, rolled by roll."""
        # `yaw_pitch_roll_to_matrix`'s rotation through scipy: torch costs ~0.5 ms per scene here.
        turned = Rotation.from_euler("ZXY", [roll, pitch, -yaw]).as_matrix()
        rotation = turned * _FLIP_UPRIGHT
        return cls(K, width, height, np.asarray(position, dtype=np.float64), rotation, yaw, pitch, roll)

    @property
    def up(self) -> np.ndarray:
        """(3,) gravity up in the camera frame."""
        return self.world_to_camera @ WORLD_UP

    @property
    def cam_to_world(self) -> np.ndarray:
        """(4, 4) camera -> world transform, metres."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.world_to_camera.T
        matrix[:3, 3] = self.position
        return matrix

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) -> camera frame (N, 3), metres."""
        return (points - self.position) @ self.world_to_camera.T

    @cached_property
    def K_inverse(self) -> np.ndarray:
        """(3, 3) K^-1: the camera-frame ray K^-1 [u, v, 1] of image point (u, v)."""
        return np.linalg.inv(self.K)

    def floor_points(self, uv: np.ndarray) -> np.ndarray:
        """Where the rays through image points uv (N, 2) (any real (u, v), also outside the image) meet
        the floor: (N, 3) world points, NaN for rays that do not go down."""
        homogeneous = np.column_stack([uv, np.ones(len(uv))])
        directions = (homogeneous @ self.K_inverse.T) @ self.world_to_camera  # camera -> world
        descent = -directions[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            reach = np.where(descent > 1e-9, self.position[1] / descent, np.nan)
        return self.position + reach[:, None] * directions


def sample_intrinsics(config: SceneConfig, rng: np.random.Generator) -> np.ndarray:
    """(3, 3) K: fx = fy = focal * (1 + U(-j, j)), principal point near the image centre."""
    focal = config.focal * (1.0 + rng.uniform(-config.focal_jitter, config.focal_jitter))
    centre = np.array([(config.width - 1) / 2, (config.height - 1) / 2])
    cx, cy = centre + rng.uniform(-config.principal_jitter, config.principal_jitter, 2)
    return np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])


def sample_camera(config: SceneConfig, rng: np.random.Generator) -> CameraRig:
    """A camera above the world origin at height U(camera_height), random yaw, pitch down
    U(pitch_deg), roll N(0, roll_std_deg)."""
    K = sample_intrinsics(config, rng)
    height = rng.uniform(*config.camera_height)
    pitch = np.deg2rad(rng.uniform(*config.pitch_deg))
    roll = np.deg2rad(rng.normal(0.0, config.roll_std_deg))
    yaw = rng.uniform(-np.pi, np.pi)
    return CameraRig.looking(K, config.width, config.height, np.array([0.0, height, 0.0]), yaw, pitch, roll)
