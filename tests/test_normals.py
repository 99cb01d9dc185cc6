"""Normals from depth (`multisparc.datasets.normals`): exact on analytic planes, a sphere and a box corner
(away from its creases, and sharp at its silhouette), unknown where the depth cannot tell, facing the camera,
accurate on rendered scenes, and fast on a 480 x 360 frame.

`pytest tests/test_normals.py -s` prints the median angular errors on rendered scenes that README.md quotes.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from multisparc.cad import CadIndex
from multisparc.cad.procedural import build_library
from multisparc.datasets.normals import DEFAULT_RADIUS, normals_from_depth, pixel_rays
from multisparc.scenes import PerceptionNoise, SceneSampler, render_scene_frame

WIDTH, HEIGHT = 480, 360
K = np.array([[440.0, 0.0, 239.5], [0.0, 440.0, 179.5], [0.0, 0.0, 1.0]])
RAYS = pixel_rays(HEIGHT, WIDTH, K)
#: Exact up to float32: the angle between a float32 unit vector and its float64 original reads up to 0.012 deg.
EXACT_DEG = 0.05


def angles_deg(normals: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Angles (...) in degrees between unit normals (..., 3) and expected unit normals (..., 3)."""
    return np.degrees(np.arccos(np.clip(np.sum(normals * expected, axis=-1), -1.0, 1.0)))


def known(normals: np.ndarray) -> np.ndarray:
    return np.any(normals != 0, axis=-1)


def plane_hits(normal: np.ndarray, offset: float) -> np.ndarray:
    """Ray parameters t (H, W) (= z-depth, rays have z = 1) where the rays meet the plane n . X = offset."""
    with np.errstate(divide="ignore"):
        return offset / (RAYS @ normal)


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float64)
    return vector / np.linalg.norm(vector)


def test_a_tilted_plane_is_exact_everywhere() -> None:
    normal = unit(0.3, -0.5, -0.8)  # facing the camera: n . ray < 0 for the rays that meet it at z > 0
    depth = plane_hits(normal, -3.0)
    assert np.all(depth > 0)
    normals = normals_from_depth(depth, K)
    assert known(normals).all()  # the image border too: its windows still hold enough pixels
    assert angles_deg(normals, normal).max() < EXACT_DEG
    assert normals.dtype == np.float32 and normals.shape == (HEIGHT, WIDTH, 3)


def test_a_plane_at_80_degrees_to_the_rays_is_still_exact() -> None:
    normal = unit(0.0, -np.cos(np.radians(10)), -np.sin(np.radians(10)))  # a floor seen almost edge-on
    depth = plane_hits(normal, -1.0)
    depth[~((depth > 0) & (depth < 10))] = 0.0  # beyond the horizon: unknown
    normals = normals_from_depth(depth, K)
    assert np.array_equal(known(normals), depth > 0)
    assert angles_deg(normals[depth > 0], normal).max() < EXACT_DEG


def test_a_sphere() -> None:
    centre, radius = np.array([0.2, -0.1, 2.0]), 0.6
    directions = RAYS / np.linalg.norm(RAYS, axis=-1, keepdims=True)
    along = directions @ centre
    discriminant = along**2 - (centre @ centre - radius**2)
    hit = discriminant > 0
    distance = np.where(hit, along - np.sqrt(np.maximum(discriminant, 0)), 0.0)
    points = directions * distance[..., None]
    depth = np.where(hit, points[..., 2], 0.0)
    expected = (points - centre) / radius
    normals = normals_from_depth(depth, K)
    # Away from the silhouette, where the sphere turns from the camera by less than 70 deg.
    facing = hit & (np.sum(-expected * directions, axis=-1) > np.cos(np.radians(70)))
    errors = angles_deg(normals[facing], expected[facing])
    assert known(normals)[facing].all()
    assert np.median(errors) < 0.5 and errors.max() < 2.0
    # Facing the camera everywhere it is known.
    assert np.all(np.sum(normals * RAYS, axis=-1)[known(normals)] <= 0)


def box_corner_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A cube (side 0.8 m) turned to show three faces at about 2.5 m, in front of a wall at 5 m.

    Returns the depth (H, W) metres, the true normals (H, W, 3) and the face label of each pixel (H, W):
    0, 1, 2 the three visible faces, 3 the wall."""
    turn_y, turn_x = np.radians(35), np.radians(-30)
    R = np.array([[1, 0, 0], [0, np.cos(turn_x), -np.sin(turn_x)], [0, np.sin(turn_x), np.cos(turn_x)]]) @ np.array(
        [[np.cos(turn_y), 0, np.sin(turn_y)], [0, 1, 0], [-np.sin(turn_y), 0, np.cos(turn_y)]]
    )
    centre, half = np.array([0.0, 0.0, 2.5]), 0.4
    # Slab intersection in the cube's frame: the entry point is the largest of the near-plane parameters.
    origin, directions = R.T @ -centre, RAYS @ R  # rays in the cube frame (R^T d for each ray d)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-half - origin) / directions, (half - origin) / directions
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    t_in, t_out = near.max(axis=-1), far.min(axis=-1)
    hit = t_in < t_out
    axis = near.argmax(axis=-1)
    sign = -np.sign(np.take_along_axis(directions, axis[..., None], axis=-1)[..., 0])
    cube_normals = np.eye(3)[axis] * sign[..., None] @ R.T  # back to the camera frame
    wall = np.array([0.0, 0.0, -1.0])
    depth = np.where(hit, t_in, plane_hits(wall, -5.0))
    normals = np.where(hit[..., None], cube_normals, wall)
    faces = np.unique(axis[hit])
    labels = np.where(hit, np.searchsorted(faces, axis), 3)
    return depth, normals, labels


def test_a_box_corner_keeps_every_face_exact_up_to_its_creases_and_silhouette() -> None:
    depth, expected, labels = box_corner_scene()
    assert set(np.unique(labels)) == {0, 1, 2, 3}  # three faces and the wall are seen
    normals = normals_from_depth(depth, K)
    radius = DEFAULT_RADIUS
    padded = np.pad(labels, radius, constant_values=3)
    # Pixels of a face whose window holds no other face: the wall behind may be in it (a depth edge).
    other_face = np.zeros(labels.shape, dtype=bool)
    beside_wall = np.zeros(labels.shape, dtype=bool)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            neighbour = padded[dy : dy + HEIGHT, dx : dx + WIDTH]
            other_face |= (neighbour != labels) & (neighbour != 3)
            beside_wall |= neighbour == 3
    for face in range(3):
        clean = (labels == face) & ~other_face
        assert clean.sum() > 500
        assert angles_deg(normals[clean], expected[clean]).max() < EXACT_DEG, f"face {face}"
        at_silhouette = clean & beside_wall
        assert at_silhouette.sum() > 20
        assert angles_deg(normals[at_silhouette], expected[at_silhouette]).max() < EXACT_DEG
    # The wall around the cube stays exact too, right up to the cube's silhouette.
    wall = labels == 3
    assert angles_deg(normals[wall], expected[wall]).max() < EXACT_DEG


def test_unknown_depth_gives_unknown_normals() -> None:
    depth = plane_hits(unit(0.0, 0.0, -1.0), -2.0)
    depth[100:150, 100:150] = 0.0  # a hole
    depth[200, 50] = np.nan
    depth[300:, :] = 0.0
    depth[320, 100:200] = 2.0  # a one-pixel line in the unknown part: no plane through a line
    depth[340, 300] = 2.0  # an isolated pixel: too few neighbours
    normals = normals_from_depth(depth, K)
    assert not known(normals)[100:150, 100:150].any()
    assert not known(normals)[200, 50]
    assert not known(normals)[300:].any()
    assert known(normals)[:100].all()


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"depth must have shape \(H, W\)"):
        normals_from_depth(np.ones((4, 4, 1)), K)
    with pytest.raises(ValueError, match=r"K must have shape \(3, 3\)"):
        normals_from_depth(np.ones((4, 4)), np.eye(4))


def test_480_by_360_takes_well_under_a_second() -> None:
    depth = plane_hits(unit(0.3, -0.5, -0.8), -3.0)
    depth[::7, ::11] = 0.0  # holes: windows that are summed pixel by pixel
    best = min(_timed(normals_from_depth, depth, K) for _ in range(3))
    print(f"\nnormals_from_depth on 480 x 360: {1000 * best:.0f} ms")
    assert best < 1.0


def _timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


# Rendered scenes -------------------------------------------------------------------------------------------

SCENES = 8


@pytest.fixture(scope="module")
def sampler(tmp_path_factory: pytest.TempPathFactory) -> SceneSampler:
    return SceneSampler(CadIndex.load(build_library(tmp_path_factory.mktemp("cads"), per_class=2, seed=0)))


@pytest.mark.slow
def test_accuracy_on_rendered_scenes(sampler: SceneSampler) -> None:
    """Median angular error against the clean render's normals, of the normals fitted to the clean, mild and
    realistic depth of the same scenes (and, for comparison, of the realistic level's own simulated
    network normals)."""
    errors: dict[str, list[np.ndarray]] = {"clean": [], "mild": [], "realistic": [], "realistic normals.npy": []}
    for seed in range(SCENES):
        scene = sampler.sample(seed)
        truth = render_scene_frame(scene, sampler.caster, PerceptionNoise("clean")).normals
        for level in ("clean", "mild", "realistic"):
            frame = render_scene_frame(scene, sampler.caster, PerceptionNoise(level))
            fitted = normals_from_depth(frame.depth, scene.camera.K)
            both = known(fitted) & known(truth)
            assert both.mean() > 0.9
            errors[level].append(angles_deg(fitted[both], truth[both]))
            if level == "realistic":
                errors["realistic normals.npy"].append(angles_deg(frame.normals[both], truth[both]))
    pooled = {name: np.concatenate(values) for name, values in errors.items()}
    medians = {name: float(np.median(values)) for name, values in pooled.items()}
    report = ", ".join(
        f"{name} {medians[name]:.1f} ({100 * np.mean(pooled[name] > 10):.0f} % over 10 deg)" for name in pooled
    )
    print(f"\nmedian angular error over {SCENES} rendered 480 x 360 scenes (deg): {report}")
    assert medians["clean"] < 5.0
    assert medians["mild"] < 15.0
    assert medians["realistic"] < 35.0
