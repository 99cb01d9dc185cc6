"""Synthetic scenes: placement geometry, camera ranges, visibility, determinism, perception noise,
sparse = full with noise, and the bundle round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from multisparc.cad import CadIndex, SampleCache
from multisparc.cad.procedural import build_library
from multisparc.categories import category_info
from multisparc.datasets.bundle import Camera, read_bundle, write_bundle
from multisparc.geometry import pitch_roll_from_up, quat_to_matrix, yaw_pitch_roll_to_matrix
from multisparc.render import (
    DEFAULT_LIGHTING,
    Plane,
    RayCaster,
    Room,
    instance_boxes,
    pixel_directions,
    render_full,
    render_pixels,
)
from multisparc.render import visible_fractions as rendered_visible_fractions
from multisparc.scenes import (
    NOISE_LEVELS,
    CameraRig,
    Footprint,
    PerceptionNoise,
    RenderedPixelSource,
    SceneConfig,
    SceneSampler,
    SyntheticScene,
    footprints_overlap,
    perceive_detections,
    render_scene_frame,
    sample_scale,
    to_bundle,
)
from multisparc.scenes.pixel_fields import (
    STREAMS,
    hashed_normal,
    hashed_uniform,
    hashed_uniforms,
    smooth_field,
    smooth_fields,
)
from multisparc.scenes.placement import _first_free
from multisparc.scenes.visibility import estimate_visibility

WIDTH, HEIGHT = 480, 360
SEEDS = range(12)


@pytest.fixture(scope="module")
def cads(tmp_path_factory: pytest.TempPathFactory) -> CadIndex:
    """The procedural library (2 models per class), every mesh moved off its centre: CAD models need
    not be centred, and placement must not assume they are."""
    root = tmp_path_factory.mktemp("cads")
    procedural = CadIndex.load(build_library(root / "procedural", per_class=2, seed=0))
    rng = np.random.default_rng(7)
    records = {}
    for cad_id in procedural:
        mesh = procedural.mesh(cad_id).copy()
        mesh.apply_translation(rng.uniform(-0.5, 0.5, 3))
        mesh.export(root / f"{cad_id}.ply")
        records[cad_id] = {
            "path": f"{cad_id}.ply",
            "category": procedural[cad_id].category,
            "sym": procedural[cad_id].sym,
        }
    (root / "cads.json").write_text(json.dumps(records))
    return CadIndex.load(root / "cads.json", cache=SampleCache(root / "samples"))


@pytest.fixture(scope="module")
def sampler(cads: CadIndex) -> SceneSampler:
    return SceneSampler(cads)


@pytest.fixture(scope="module")
def scenes(sampler: SceneSampler) -> list[SyntheticScene]:
    return [sampler.sample(seed) for seed in SEEDS]


def world_pose(scene: SyntheticScene, obj) -> tuple[np.ndarray, np.ndarray]:
    """World-frame R (3, 3) and t (3,) of a scene object (X_world = t + R (s X_cad))."""
    cam_to_world = scene.camera.cam_to_world
    return cam_to_world[:3, :3] @ obj.R, cam_to_world[:3, :3] @ obj.t + cam_to_world[:3, 3]


def test_separating_axis_test_on_known_rectangles() -> None:
    square = Footprint(np.zeros(2), np.eye(2), np.full(2, 0.5))
    turn = np.array([[1.0, 1.0], [-1.0, 1.0]]) / np.sqrt(2)
    # A unit square turned by 45 deg reaches 0.707 from its centre: its corner pokes into `square` at
    # x = 1.1 - 0.707 < 0.5, and clears it at x = 1.25, though the bounding boxes still overlap there.
    assert footprints_overlap(square, Footprint(np.array([1.1, 0.0]), turn, np.full(2, 0.5)))
    assert not footprints_overlap(square, Footprint(np.array([1.25, 0.0]), turn, np.full(2, 0.5)))
    # The margin keeps them apart by at least that much.
    assert not footprints_overlap(square, Footprint(np.array([1.2, 0.0]), np.eye(2), np.full(2, 0.5)), margin=0.1)
    assert footprints_overlap(square, Footprint(np.array([1.05, 0.0]), np.eye(2), np.full(2, 0.5)), margin=0.1)


def _turned(angle: float) -> np.ndarray:
    """(2, 2) rows: the unit axes of a rectangle turned by `angle` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, s], [-s, c]])


def test_vectorised_free_spot_search_matches_the_pairwise_test() -> None:
    rng = np.random.default_rng(8)
    found = 0
    for _ in range(50):
        others = [
            Footprint(rng.uniform(-2, 2, 2), _turned(rng.uniform(0, np.pi)), rng.uniform(0.1, 0.8, 2))
            for _ in range(int(rng.integers(1, 5)))
        ]
        margins = rng.uniform(0.0, 0.2, len(others))
        axes, half_size = _turned(rng.uniform(0, np.pi)), rng.uniform(0.1, 0.6, 2)
        spots = rng.uniform(-3, 3, (30, 2))
        expected = next(
            (
                index
                for index, spot in enumerate(spots)
                if not any(
                    footprints_overlap(Footprint(spot, axes, half_size), other, margin)
                    for other, margin in zip(others, margins, strict=True)
                )
            ),
            None,
        )
        assert _first_free(spots, axes, half_size, others, margins) == expected
        found += expected not in (None, 0)
    assert found > 10  # the search had to skip blocked spots, not just take the first


def test_scales_stay_in_class_range_with_bounded_anisotropy(cads: CadIndex) -> None:
    rng = np.random.default_rng(0)
    for cad_id in cads:
        category, extent = cads[cad_id].category, cads.extent(cad_id)
        for _ in range(20):
            s = sample_scale(category, extent, 1.25, rng)
            size = s * extent
            info = category_info(category)
            assert np.all(size >= np.asarray(info.min_size) - 1e-9) and np.all(size <= np.asarray(info.max_size) + 1e-9)


def test_objects_stand_upright_on_the_floor_apart_and_inside_the_room(
    scenes: list[SyntheticScene], cads: CadIndex
) -> None:
    for scene in scenes:
        boxes = []
        for obj in scene.objects:
            R, t = world_pose(scene, obj)
            vertices = t + (obj.s * cads.mesh(obj.cad_id).vertices) @ R.T
            assert abs(vertices[:, 1].min()) < 1e-3, "the model's lowest point is on the floor"
            np.testing.assert_allclose(R[:, 1], [0.0, 1.0, 0.0], atol=1e-9)  # CAD up = world up
            # Every vertex is inside the room: on the inner side of the floor, walls and ceiling.
            camera_vertices = obj.t + (obj.s * cads.mesh(obj.cad_id).vertices) @ obj.R.T
            for plane in scene.room.planes:
                assert np.min((camera_vertices - plane.point) @ plane.normal) > -1e-3
            lower, upper = cads.mesh(obj.cad_id).bounds
            transform = np.eye(4)
            transform[:3, :3], transform[:3, 3] = R, t + R @ (obj.s * (lower + upper) / 2)
            boxes.append(trimesh.creation.box(extents=obj.s * (upper - lower), transform=transform))
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                overlap = trimesh.boolean.intersection([boxes[i], boxes[j]], engine="manifold")
                assert len(overlap.faces) == 0, "bounding boxes of two objects intersect"


def test_camera_height_pitch_and_up(scenes: list[SyntheticScene]) -> None:
    config = SceneConfig()
    for scene in scenes:
        cam_to_world = scene.camera.cam_to_world
        assert config.camera_height[0] <= cam_to_world[1, 3] <= config.camera_height[1]
        up = scene.camera.up
        np.testing.assert_allclose(up, cam_to_world[:3, :3].T @ [0.0, 1.0, 0.0], atol=1e-12)
        pitch, roll = pitch_roll_from_up(torch.from_numpy(up))
        assert 0.0 <= np.rad2deg(float(pitch)) <= 40.0
        assert abs(np.rad2deg(float(roll))) < 10.0  # N(0, 2 deg): beyond 5 sigma never happens
        K = scene.camera.K
        assert K[0, 0] == K[1, 1] and abs(K[0, 0] - 435.0) <= 435.0 * 0.03
        assert abs(K[0, 2] - (WIDTH - 1) / 2) <= 4.0 and abs(K[1, 2] - (HEIGHT - 1) / 2) <= 4.0


def test_visibility_thresholds_and_agreement_with_full_render(
    scenes: list[SyntheticScene], sampler: SceneSampler
) -> None:
    config = sampler.config
    for scene in scenes:
        assert scene.detected, "every accepted scene has a detectable object"
        for obj in scene.detected:
            assert obj.visible_fraction >= config.min_visible_fraction and obj.truncation <= config.max_truncation
            x1, y1, x2, y2 = obj.box
            assert 0 <= x1 <= x2 <= WIDTH - 1 and 0 <= y1 <= y2 <= HEIGHT - 1
    for scene in scenes[:4]:
        K = scene.camera.K
        frame = render_full(sampler.caster, scene.placed_objects, scene.room, K, WIDTH, HEIGHT, scene.lighting)
        truth = rendered_visible_fractions(sampler.caster, scene.placed_objects, K, frame.instance)
        true_boxes = instance_boxes(frame.instance, [obj.instance_id for obj in scene.objects])
        for obj in scene.objects:
            assert abs(obj.visible_fraction - truth[obj.instance_id]) < 0.12
            if obj.detected:
                assert np.abs(obj.box - true_boxes[obj.instance_id]).max() <= 12


def test_visibility_sparse_search_matches_casting_every_sample(scenes: list[SyntheticScene], cads: CadIndex) -> None:
    config = SceneConfig()
    caster = RayCaster(cads)
    exact_boxes = compared = 0
    for scene in scenes:
        objects, K = scene.placed_objects, scene.camera.K
        points = [cads.points(obj.cad_key, config.visibility_points)[0] for obj in objects]
        estimates = estimate_visibility(caster, objects, points, K, WIDTH, HEIGHT, config.visibility_fraction_points)
        for obj, samples, estimate in zip(objects, points, estimates, strict=True):
            # Every sample cast: the pixel under each in-image sample, and whether it shows the object.
            camera = obj.t + (obj.s * samples) @ obj.R.T
            uv = np.rint((camera @ K.T)[:, :2] / camera[:, 2:]).astype(np.int64)
            inside = np.flatnonzero((camera[:, 2] > 1e-3) & np.all((uv >= 0) & (uv < [WIDTH, HEIGHT]), axis=1))
            shown = (
                caster.instances(objects, None, np.zeros((3, 1)), pixel_directions(K, uv[inside])) == obj.instance_id
            )
            first = inside < config.visibility_fraction_points
            assert estimate.truncation == pytest.approx(1.0 - len(inside) / len(samples), abs=1e-12)
            assert estimate.visible_fraction == pytest.approx(shown[first].mean() if first.any() else 0.0, abs=1e-12)
            if estimate.box is None:
                assert not shown[first].any()
                continue
            visible = uv[inside[shown]]
            box = np.concatenate([visible.min(axis=0), visible.max(axis=0)])
            # The box spans visible samples: inside the box of all of them, and equal to it where no
            # occluder hides an edge beyond the searched bands.
            assert np.all(estimate.box[:2] >= box[:2]) and np.all(estimate.box[2:] <= box[2:])
            exact_boxes += int(np.array_equal(estimate.box, box))
            compared += 1
    assert exact_boxes >= 0.9 * compared


def test_camera_rig_rotation_is_the_geometry_convention() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        yaw, pitch, roll = rng.uniform(-np.pi, np.pi), rng.uniform(0.0, 1.4), rng.normal(0.0, 0.1)
        rig = CameraRig.looking(np.eye(3), WIDTH, HEIGHT, np.zeros(3), yaw, pitch, roll)
        expected = yaw_pitch_roll_to_matrix(*(torch.tensor(a, dtype=torch.float64) for a in (yaw, pitch, roll)))
        np.testing.assert_allclose(rig.world_to_camera, expected.numpy(), atol=1e-12)


def test_same_seed_same_scene(sampler: SceneSampler) -> None:
    a, b, c = sampler.sample(5), sampler.sample(5), sampler.sample(6)
    assert a.noise_seed == b.noise_seed != c.noise_seed
    assert [o.cad_id for o in a.objects] == [o.cad_id for o in b.objects]
    for first, second in zip(a.objects, b.objects, strict=True):
        np.testing.assert_array_equal(first.R, second.R)
        np.testing.assert_array_equal(first.t, second.t)
        np.testing.assert_array_equal(first.box, second.box)
    np.testing.assert_array_equal(a.camera.cam_to_world, b.camera.cam_to_world)


def test_ten_objects(cads: CadIndex, sampler: SceneSampler) -> None:
    scene = SceneSampler(cads, SceneConfig(objects=(10, 10)), sampler.caster).sample(3)
    assert len(scene.objects) == 10
    assert [obj.instance_id for obj in scene.objects] == list(range(1, 11))


def test_clean_noise_is_the_exact_render(scenes: list[SyntheticScene], sampler: SceneSampler) -> None:
    scene = scenes[0]
    K = scene.camera.K
    frame = render_scene_frame(scene, sampler.caster, PerceptionNoise("clean"))
    exact = render_full(sampler.caster, scene.placed_objects, scene.room, K, WIDTH, HEIGHT, scene.lighting)
    for name in ("rgb", "depth", "normals", "instance"):
        np.testing.assert_array_equal(getattr(frame, name), getattr(exact, name))
    source = RenderedPixelSource(scene, sampler.caster, PerceptionNoise("clean"))
    assert [d.instance_id for d in source.detections] == [o.instance_id for o in scene.detected]
    for detection, obj in zip(source.detections, scene.detected, strict=True):
        np.testing.assert_array_equal(detection.bbox, obj.box)
        assert detection.score == 1.0
    pixels = np.random.default_rng(0).integers(0, [WIDTH, HEIGHT], (500, 2))
    sparse = source.sample(pixels, np.zeros(500, dtype=int))
    exact_sparse = render_pixels(sampler.caster, scene.placed_objects, scene.room, K, pixels, scene.lighting)
    np.testing.assert_array_equal(sparse.depth, exact_sparse.depth)
    np.testing.assert_array_equal(sparse.normals, exact_sparse.normals)
    np.testing.assert_array_equal(sparse.mask, exact_sparse.instance == scene.detected[0].instance_id)


def wall_scene(distance: float) -> SyntheticScene:
    """An empty room whose only surface is a wall facing the camera at z = distance metres."""
    K = np.array([[435.0, 0.0, (WIDTH - 1) / 2], [0.0, 435.0, (HEIGHT - 1) / 2], [0.0, 0.0, 1.0]])
    room = Room(floor=Plane(np.array([0.0, 0.0, distance]), np.array([0.0, 0.0, -1.0])))
    return SyntheticScene(
        Camera(K, WIDTH, HEIGHT, np.eye(4), np.array([0.0, -1.0, 0.0])), room, DEFAULT_LIGHTING, (), 11
    )


def test_realistic_depth_error_grows_with_distance() -> None:
    caster = RayCaster({})
    noise = PerceptionNoise("realistic")
    params = NOISE_LEVELS["realistic"]
    spread, white = {}, {}
    for distance in (1.5, 4.0):
        scene = wall_scene(distance)
        noisy = render_scene_frame(scene, caster, noise).depth
        clean = render_scene_frame(scene, caster, PerceptionNoise("clean")).depth
        valid = noisy > 0
        assert 0.005 < 1.0 - valid.mean() < 0.015  # dropout of 1 %
        error = np.where(valid, noisy - clean, np.nan)
        spread[distance] = np.nanstd(error)
        # Neighbouring pixels share the smooth errors: their difference is white noise of std sqrt(2) sigma.
        white[distance] = np.nanstd(error[:, 1:] - error[:, :-1]) / np.sqrt(2)
        expected = params.depth_sigma_const + params.depth_sigma_quadratic * distance**2
        assert white[distance] == pytest.approx(expected, rel=0.1)
    assert spread[4.0] > 1.5 * spread[1.5]


def noise_holes(level: str, seed: int) -> np.ndarray:
    """(H * W,) bool: the pixels of the level's mask holes for the noise seed."""
    pixels = np.stack(np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT)), axis=-1).reshape(-1, 2)
    return PerceptionNoise(level).mask_holes(pixels, seed)


def test_noise_levels_order_and_mask_holes(scenes: list[SyntheticScene], sampler: SceneSampler) -> None:
    scene = scenes[1]
    clean = render_scene_frame(scene, sampler.caster, PerceptionNoise("clean"))
    errors = {}
    for level in ("mild", "realistic"):
        frame = render_scene_frame(scene, sampler.caster, PerceptionNoise(level))
        both = (frame.depth > 0) & (clean.depth > 0)
        errors[level] = np.median(np.abs(frame.depth - clean.depth)[both])
        # The frame's holes are the hole field's; over 16 seeds that field leaves out the level's share of
        # the pixels within a quarter of it (a smooth field's variance differs a little from seed to seed).
        np.testing.assert_array_equal(frame.instance.reshape(-1) == -1, noise_holes(level, scene.noise_seed))
        shares = [noise_holes(level, seed).mean() for seed in range(16)]
        assert np.mean(shares) == pytest.approx(NOISE_LEVELS[level].mask_holes, rel=0.25)
        assert np.std(shares) < 0.15 * NOISE_LEVELS[level].mask_holes
        for obj in scene.detected:
            noisy_mask, true_mask = frame.instance == obj.instance_id, clean.instance == obj.instance_id
            iou = (noisy_mask & true_mask).sum() / (noisy_mask | true_mask).sum()
            assert 0.6 < iou < 1.0, "masks are perturbed but still the object"
    assert 0 < errors["mild"] < errors["realistic"]


def test_predicted_depth_is_scaled_per_image_and_normals_follow_it() -> None:
    exact = PerceptionNoise(
        "predicted",
        **dict.fromkeys(
            ("depth_sigma_const", "depth_sigma_quadratic", "depth_scale_error", "depth_offset_error", "depth_dropout"),
            0.0,
        ),
        **dict.fromkeys(("normal_sigma", "normal_field", "geometry_shift", "geometry_blur"), 0.0),
    )
    scales, offsets = zip(*(exact.image_scale_offset(seed) for seed in range(400)), strict=True)
    # Log-normal scale of 7 % std, offset of 3 cm std, one draw per image.
    assert np.std(np.log(scales)) == pytest.approx(0.07, rel=0.15)
    assert np.std(offsets) == pytest.approx(0.03, rel=0.15)
    # A wall turned 30 deg about the vertical, 3 m ahead, seen with a large offset.
    seed = next(seed for seed, offset in enumerate(offsets) if abs(offset) > 0.05)
    scale, offset = scales[seed], offsets[seed]
    K = np.array([[435.0, 0.0, (WIDTH - 1) / 2], [0.0, 435.0, (HEIGHT - 1) / 2], [0.0, 0.0, 1.0]])
    wall = Plane(np.array([0.0, 0.0, 3.0]), np.array([np.sin(np.radians(30)), 0.0, -np.cos(np.radians(30))]))
    scene = SyntheticScene(
        Camera(K, WIDTH, HEIGHT, np.eye(4), np.array([0.0, -1.0, 0.0])), Room(floor=wall), DEFAULT_LIGHTING, (), seed
    )
    caster = RayCaster({})
    clean = render_scene_frame(scene, caster, PerceptionNoise("clean"))
    frame = render_scene_frame(scene, caster, exact)
    np.testing.assert_allclose(frame.depth, scale * clean.depth + offset, rtol=1e-5)
    # The normals are those of the surface the noisy depth describes: finite differences of its points.
    rows, cols = np.mgrid[100:260, 100:380]
    rays = np.stack([(cols - K[0, 2]) / K[0, 0], (rows - K[1, 2]) / K[1, 1], np.ones(cols.shape)], axis=-1)
    points = frame.depth[rows, cols][..., None] * rays
    from_depth = np.cross(points[1:, :-1] - points[:-1, :-1], points[:-1, 1:] - points[:-1, :-1])
    from_depth /= np.linalg.norm(from_depth, axis=-1, keepdims=True)
    from_depth *= -np.sign((from_depth * rays[:-1, :-1]).sum(-1, keepdims=True))  # facing the camera

    def angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0)))

    given = frame.normals[100:259, 100:379]
    assert angles(from_depth, given).max() < 0.05
    # The offset bends the wall by about |O| / (S z) rad: the true normals no longer fit.
    assert angles(clean.normals[100:259, 100:379], given).max() > 0.3 * np.degrees(abs(offset) / (3 * scale))


def test_predicted_detections_come_without_masks_half_the_time(
    scenes: list[SyntheticScene], sampler: SceneSampler, tmp_path: Path
) -> None:
    scene = max(scenes, key=lambda s: len(s.detected))
    noise = PerceptionNoise("predicted")
    has_mask = [d.has_mask for seed in range(300) for d in perceive_detections(scene, noise, seed)]
    assert np.mean(has_mask) == pytest.approx(0.5, abs=0.06)
    assert all(d.has_mask for seed in range(50) for d in perceive_detections(scene, PerceptionNoise("realistic"), seed))
    # A maskless detection's mask is its box, in the pixel source and in the written bundle alike.
    seed = next(s for s in range(100) if not all(d.has_mask for d in perceive_detections(scene, noise, s)))
    frame = render_scene_frame(scene, sampler.caster, noise, seed)
    bundle = to_bundle(scene, frame, "scene")
    source = RenderedPixelSource(scene, sampler.caster, noise, seed)
    for k, (detection, written) in enumerate(zip(source.detections, bundle.detections, strict=True)):
        assert (written.mask is None) == (not detection.has_mask)
        x1, y1, x2, y2 = detection.bbox
        pixels = np.array([[int(np.ceil(x1)), int(np.ceil(y1))], [int(x2), int(y2)]])
        if not detection.has_mask:
            np.testing.assert_array_equal(source.sample(pixels, np.full(2, k)).mask, [1.0, 1.0])


def test_smooth_and_white_fields_have_unit_variance() -> None:
    pixels = np.stack(np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT)), axis=-1).reshape(-1, 2)
    white = hashed_normal(3, 1, pixels)
    assert abs(white.mean()) < 0.01 and white.std() == pytest.approx(1.0, abs=0.01)
    stds = [smooth_field(seed, 1, pixels, (20.0, 80.0)).std() for seed in range(20)]
    assert np.mean(stds) == pytest.approx(1.0, abs=0.15)


def test_batched_fields_equal_single_fields_bit_for_bit() -> None:
    pixels = np.random.default_rng(6).integers(0, [WIDTH, HEIGHT], (1000, 2))
    streams = (3, 4, 9)
    np.testing.assert_array_equal(
        hashed_uniforms(21, streams, pixels), np.stack([hashed_uniform(21, k, pixels) for k in streams])
    )
    np.testing.assert_array_equal(
        smooth_fields(21, streams, pixels, (20.0, 80.0)),
        np.stack([smooth_field(21, k, pixels, (20.0, 80.0)) for k in streams]),
    )
    # A pixel's value does not depend on the other pixels of the batch.
    np.testing.assert_array_equal(
        smooth_field(21, 3, pixels[:7], (8.0, 30.0)), smooth_field(21, 3, pixels, (8.0, 30.0))[:7]
    )
    with pytest.raises(ValueError, match="stream"):
        hashed_uniform(21, STREAMS, pixels)


def test_detection_noise_rates(scenes: list[SyntheticScene]) -> None:
    scene = max(scenes, key=lambda s: len(s.detected))
    noise = PerceptionNoise("realistic")
    kept, spurious = [], []
    for seed in range(400):
        detections = perceive_detections(scene, noise, seed)
        true = [d for d in detections if d.object_index is not None]
        kept.append(len(true) / len(scene.detected))
        spurious.append(len(detections) - len(true))
        for detection in true:
            box = scene.objects[detection.object_index].box
            # Sides move by at most 10 % of the image size (less where clipped or widened to 2 px).
            assert np.all(np.abs(detection.bbox - box) <= 0.1 * np.array([WIDTH, HEIGHT, WIDTH, HEIGHT]) + 2)
    assert np.mean(kept) == pytest.approx(0.9, abs=0.04)
    assert np.mean(spurious) == pytest.approx(0.3, abs=0.08)


def test_sparse_equals_full_with_noise(scenes: list[SyntheticScene], sampler: SceneSampler) -> None:
    scene = max(scenes, key=lambda s: len(s.detected))
    noise = PerceptionNoise("realistic", spurious_rate=2.0)  # false detections too
    frame = render_scene_frame(scene, sampler.caster, noise)
    bundle = to_bundle(scene, frame, "scene")
    source = RenderedPixelSource(scene, sampler.caster, noise)
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, [WIDTH, HEIGHT], (3000, 2))
    detection_index = rng.integers(0, len(source.detections), 3000)
    sparse = source.sample(pixels, detection_index)
    cols, rows = pixels[:, 0], pixels[:, 1]
    np.testing.assert_array_equal(np.round(sparse.rgb * 255).astype(np.uint8), frame.rgb[rows, cols])
    np.testing.assert_array_equal(sparse.depth, frame.depth[rows, cols])
    np.testing.assert_array_equal(sparse.normals, frame.normals[rows, cols])
    masks = np.stack([detection.mask for detection in bundle.detections])
    np.testing.assert_array_equal(sparse.mask, masks[detection_index, rows, cols])
    assert sparse.mask.sum() > 0


def test_bundle_round_trip(scenes: list[SyntheticScene], sampler: SceneSampler, tmp_path: Path) -> None:
    scene = scenes[2]
    bundle = to_bundle(scene, render_scene_frame(scene, sampler.caster, PerceptionNoise("mild")), "synthetic")
    back = read_bundle(write_bundle(tmp_path / "synthetic", bundle))
    observation = back.observation
    np.testing.assert_array_equal(observation.image, bundle.observation.image)
    np.testing.assert_array_equal(observation.depth, bundle.observation.depth)
    np.testing.assert_allclose(observation.normals, bundle.observation.normals, atol=1e-6)
    np.testing.assert_array_equal(observation.camera.K, scene.camera.K)
    np.testing.assert_array_equal(observation.camera.cam_to_world, scene.camera.cam_to_world)
    np.testing.assert_allclose(observation.camera.up, scene.camera.up, atol=1e-12)
    assert len(back.detections) == len(bundle.detections)
    for read, written in zip(back.detections, bundle.detections, strict=True):
        assert (read.id, read.category, read.cad, read.score) == (
            written.id,
            written.category,
            written.cad,
            written.score,
        )
        np.testing.assert_array_equal(read.bbox, written.bbox)
        np.testing.assert_array_equal(read.mask, written.mask)
    assert [pose.id for pose in back.gt] == [obj.instance_id for obj in scene.detected]
    for pose, obj in zip(back.gt, scene.detected, strict=True):
        np.testing.assert_array_equal(pose.t, obj.t)
        np.testing.assert_array_equal(pose.s, obj.s)
        R = quat_to_matrix(torch.from_numpy(pose.q)).numpy()
        np.testing.assert_allclose(R, obj.R, atol=1e-9)
        assert pose.sym == obj.sym and pose.cad == obj.cad_id


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"scenes\.yaml: unknown scene setting"):
        SceneConfig.from_dict({"objets": [1, 4]}, source="scenes.yaml")
    with pytest.raises(ValueError, match="low <= high"):
        SceneConfig(camera_height=(2.0, 1.0))
    with pytest.raises(ValueError, match="unknown noise level"):
        PerceptionNoise("noisy")
    assert SceneConfig.from_dict(SceneConfig(objects=(2, 6)).to_dict()) == SceneConfig(objects=(2, 6))


def test_pixel_source_rejects_pixels_outside_the_image(scenes: list[SyntheticScene], sampler: SceneSampler) -> None:
    source = RenderedPixelSource(scenes[0], sampler.caster)
    with pytest.raises(ValueError, match="outside the 480 x 360 image"):
        source.sample(np.array([[480, 10]]), np.array([0]))
    with pytest.raises(ValueError, match="detection_index must lie in"):
        source.sample(np.array([[10, 10]]), np.array([len(source.detections)]))
