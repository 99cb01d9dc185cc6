"""The depth's smooth error read from the room: a rendered floor and wall under a known error field."""

from __future__ import annotations

import numpy as np
import pytest

from multisparc.datasets.bundle import Camera, Detection, Observation
from multisparc.inference.room_depth import RoomDepthConfig, depth_error_field, room_corrected

WIDTH, HEIGHT, FOCAL = 320, 240, 240.0
PITCH = np.radians(25.0)  # the camera looks down
CAMERA_HEIGHT, WALL_DISTANCE = 1.4, 4.0
# OpenCV camera frame (x right, y down, z forward): up and the horizontal forward direction.
UP = np.array([0.0, -np.cos(PITCH), -np.sin(PITCH)])
FORWARD = np.array([0.0, -np.sin(PITCH), np.cos(PITCH)])
OBJECT_BOX = np.array([120.0, 130.0, 200.0, 210.0])


def _room() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K (3, 3), depth (H, W) metres and normals (H, W, 3) of a floor CAMERA_HEIGHT below the camera and a
    wall WALL_DISTANCE ahead of it, both planes (the wall turned 20 deg about up)."""
    K = np.array([[FOCAL, 0.0, WIDTH / 2], [0.0, FOCAL, HEIGHT / 2], [0.0, 0.0, 1.0]])
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    rays = np.stack([(cols - K[0, 2]) / FOCAL, (rows - K[1, 2]) / FOCAL, np.ones((HEIGHT, WIDTH))], axis=-1)
    turn = np.radians(20.0)
    side = np.cross(UP, FORWARD)
    facing = np.cos(turn) * FORWARD + np.sin(turn) * side
    with np.errstate(divide="ignore"):
        to_floor = np.where(rays @ UP < 0, -CAMERA_HEIGHT / (rays @ UP), np.inf)
        to_wall = np.where(rays @ facing > 0, WALL_DISTANCE / (rays @ facing), np.inf)
    depth = np.minimum(to_floor, to_wall)
    normals = np.where((to_floor <= to_wall)[..., None], UP, -facing)
    return K, depth, normals


def _observation(depth: np.ndarray, normals: np.ndarray, K: np.ndarray) -> Observation:
    return Observation(
        image=np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8),
        depth=depth.astype(np.float32),
        normals=normals.astype(np.float32),
        camera=Camera(K=K, width=WIDTH, height=HEIGHT, up=UP),
    )


def _detection() -> Detection:
    return Detection(id=1, category="chair", bbox=OBJECT_BOX, score=1.0, cad="c")


def _error_field() -> np.ndarray:
    """(H, W) a smooth relative depth error of 4 % (wavelengths 250 and 400 pixels)."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    return 1.0 + 0.04 * np.cos(2 * np.pi * (cols / 250.0 + rows / 400.0) + 0.7)


def test_the_depth_of_a_room_without_error_is_kept() -> None:
    K, depth, normals = _room()
    field = depth_error_field(_observation(depth, normals, K), [_detection()], UP, RoomDepthConfig())
    assert field is not None
    np.testing.assert_allclose(field, 1.0, atol=2e-4)


def test_a_smooth_error_is_read_at_the_objects_pixels_from_the_room_around_it() -> None:
    K, depth, normals = _room()
    error = _error_field()
    observation = _observation(depth * error, normals, K)
    corrected = room_corrected(observation, [_detection()], UP, RoomDepthConfig())
    box = (slice(130, 210), slice(120, 200))
    before = np.median(np.abs(error[box] - 1.0))
    after = np.median(np.abs(corrected.depth[box] / depth[box] - 1.0))
    assert before > 0.015
    assert after < 0.4 * before


def test_a_per_image_scale_is_not_seen() -> None:
    K, depth, normals = _room()
    field = depth_error_field(_observation(1.05 * depth, normals, K), [_detection()], UP, RoomDepthConfig())
    assert field is not None
    np.testing.assert_allclose(field, 1.0, atol=2e-4)


def test_the_correction_is_clamped_and_unknown_depth_stays_unknown() -> None:
    K, depth, normals = _room()
    noisy = depth * (1.0 + 0.2 * np.sign(np.cos(np.arange(WIDTH) / 30.0)))[None, :]
    noisy[5:15, 5:15] = 0.0
    config = RoomDepthConfig(max_error=0.03)
    field = depth_error_field(_observation(noisy, normals, K), [_detection()], UP, config)
    assert field is not None and np.all(np.abs(field - 1.0) <= 0.03 + 1e-12)
    corrected = room_corrected(_observation(noisy, normals, K), [_detection()], UP, config)
    assert np.all(corrected.depth[5:15, 5:15] == 0.0)


def test_without_normals_or_room_the_observation_is_unchanged() -> None:
    K, depth, normals = _room()
    bare = Observation(
        image=np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8), depth=depth.astype(np.float32), normals=None,
        camera=Camera(K=K, width=WIDTH, height=HEIGHT, up=UP),
    )
    assert room_corrected(bare, [_detection()], UP, RoomDepthConfig()) is bare
    everywhere = Detection(id=1, category="chair", bbox=np.array([0.0, 0.0, WIDTH, HEIGHT]), score=1.0, cad="c")
    observation = _observation(depth, normals, K)
    assert room_corrected(observation, [everywhere], UP, RoomDepthConfig()) is observation


@pytest.mark.parametrize("field, value", [("sigma_px", 0.0), ("prior", -1.0), ("max_error", 1.0)])
def test_bad_settings_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        RoomDepthConfig(**{field: value})
