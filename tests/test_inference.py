"""Tests of multisparc.inference: initial hypotheses, the refinement loop, selection, bad input, the CLI.

The scene: a 160 x 120 camera 1.4 m above the floor of a box room, pitched down 20 deg and rolled 4 deg,
looking at three box-shaped CADs standing on the floor (a chair and a table centred on their origin, a
cabinet whose origin is its bottom corner). Depth, normals and instance masks are ray cast with
`multisparc.render`; detections are the instances' tight boxes and masks. Networks are the small CPU
configuration, randomly initialised; a zero decoder head (the network's own initialisation) gives the
identity update and logit 0, a small random head a non-trivial deterministic update.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from multisparc.cad import CadIndex, SampleCache, UnknownCadId
from multisparc.categories import category_info, typical_scale
from multisparc.commands import align as align_command
from multisparc.datasets.bundle import (
    BundleError,
    Camera,
    Detection,
    ObjectPose,
    Observation,
    SceneBundle,
    read_poses,
    write_bundle,
)
from multisparc.datasets.pixels import ImagePixelSource
from multisparc.geometry import Pose, axis_angle_y, matrix_to_quat, yaw_pitch_roll_to_matrix
from multisparc.inference import (
    Aligner,
    InitialisationConfig,
    align,
    gravity_up,
    initial_poses,
    load_checkpoint,
    render_overlay,
    surface_depth,
    up_from_normals,
    up_of_pitch,
)
from multisparc.inference import pipeline as pipeline_module
from multisparc.inference.result import FINAL_SOURCES
from multisparc.inputs import InputConfig
from multisparc.model import ModelConfig, MultiSparcNet, NetOutput
from multisparc.render import PlacedObject, RayCaster, Room, instance_boxes, render_full
from multisparc.training.checkpoint import CheckpointError, export_model

WIDTH, HEIGHT = 160, 120
K_CAM = np.array([[120.0, 0.0, 79.5], [0.0, 120.0, 59.5], [0.0, 0.0, 1.0]])
PITCH, ROLL = math.radians(20.0), math.radians(4.0)
UP = np.array([math.sin(ROLL) * math.cos(PITCH), -math.cos(ROLL) * math.cos(PITCH), -math.sin(PITCH)])
CAMERA_HEIGHT = 1.4
INPUTS = InputConfig(n_bbox=120, n_cad=40)
# (cad id, category, mesh extents, offset of the mesh from its origin, yaw, metres ahead, metres right)
OBJECTS = (
    ("chair0", "chair", (0.5, 0.9, 0.5), (0.0, 0.0, 0.0), 0.4, 2.6, -0.7),
    ("table0", "table", (1.2, 0.74, 0.8), (0.0, 0.0, 0.0), -0.2, 3.4, 0.5),
    ("cabinet0", "cabinet", (0.9, 1.0, 0.5), (0.45, 0.5, 0.25), 2.8, 4.2, -0.2),
)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.atan2(np.linalg.norm(np.cross(a, b)), np.dot(a, b)))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks run fastest on one thread, and do not stall when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cads(tmp_path_factory: pytest.TempPathFactory) -> CadIndex:
    folder = tmp_path_factory.mktemp("cads")
    records = {}
    for cad_id, category, extents, offset, *_ in OBJECTS:
        mesh = trimesh.creation.box(extents=extents)
        mesh.apply_translation(offset)
        mesh.export(folder / f"{cad_id}.ply")
        records[cad_id] = {"path": f"{cad_id}.ply", "category": category, "sym": "none"}
    (folder / "cads.json").write_text(json.dumps(records))
    return CadIndex.load(folder / "cads.json", cache=SampleCache(folder / "samples"))


@pytest.fixture(scope="module")
def scene(cads: CadIndex) -> SceneBundle:
    """The rendered scene of the module docstring, with ground truth; camera.json has no "up"."""
    ahead = np.array([0.0, 0.0, 1.0]) - UP[2] * UP
    ahead /= np.linalg.norm(ahead)
    right = np.cross(-UP, ahead)
    placed, gt = [], []
    for index, (cad_id, category, extents, offset, yaw, distance, lateral) in enumerate(OBJECTS, start=1):
        R = yaw_pitch_roll_to_matrix(torch.tensor(yaw), torch.tensor(PITCH), torch.tensor(ROLL)).double().numpy()
        s = np.ones(3)
        centre = -CAMERA_HEIGHT * UP + distance * ahead + lateral * right + 0.5 * extents[1] * UP
        t = centre - R @ (s * np.asarray(offset))
        placed.append(PlacedObject(index, cad_id, R, t, s, albedo=np.array([0.2 + 0.2 * index, 0.5, 0.3])))
        quat = matrix_to_quat(torch.from_numpy(R)).numpy()
        gt.append(ObjectPose(index, category, cad_id, t, quat, s))
    room = Room.box(UP, CAMERA_HEIGHT, wall_distances=(6.0, 3.0, 3.0, 3.0))
    frame = render_full(RayCaster(cads), placed, room, K_CAM, WIDTH, HEIGHT)
    boxes = instance_boxes(frame.instance, range(1, len(OBJECTS) + 1))
    detections = [
        Detection(
            i, OBJECTS[i - 1][1], np.array(boxes[i], dtype=np.float64), OBJECTS[i - 1][0], 0.9, frame.instance == i
        )
        for i in range(1, len(OBJECTS) + 1)
    ]
    observation = Observation(frame.rgb, Camera(K_CAM, WIDTH, HEIGHT), frame.depth, frame.normals)
    return SceneBundle("rendered", observation, detections, gt)


def seven_detections(scene: SceneBundle) -> list[Detection]:
    """The three real detections and four shifted copies with ids 11..14: more than n_mul = 5."""
    extra = [
        replace(
            scene.detections[k % 3],
            id=11 + k,
            bbox=scene.detections[k % 3].bbox + np.array([2.0 * k, 1.0, 2.0 * k, 1.0]),
        )
        for k in range(4)
    ]
    return [*scene.detections, *extra]


def tiny_model(mode: str = "multi", head_std: float = 0.0, seed: int = 0) -> MultiSparcNet:
    """ModelConfig.cpu() network; head_std > 0 replaces the zero-initialised last layer by N(0, std)."""
    torch.manual_seed(seed)
    model = MultiSparcNet(replace(ModelConfig.cpu(), mode=mode, n_blocks=2))
    if head_std > 0:
        torch.nn.init.normal_(model.decoder.out.weight, std=head_std)
    return model


def assert_same_alignment(a, b, atol: float = 1e-5) -> None:
    assert [o.id for o in a.objects] == [o.id for o in b.objects]
    np.testing.assert_array_equal(a.chosen, b.chosen)
    np.testing.assert_allclose(a.logits, b.logits, atol=atol)
    for name in ("R", "t", "s"):
        np.testing.assert_allclose(getattr(a.trajectory, name), getattr(b.trajectory, name), atol=atol)


# Initialisation ------------------------------------------------------------------------------------


def test_hypotheses_are_90_degrees_apart_about_up_and_share_centre_and_scale(scene, cads) -> None:
    up = np.array([0.1, -0.9, -0.3])
    camera = replace(scene.observation.camera, up=up)
    observation = replace(scene.observation, camera=camera)
    init = initial_poses(observation, scene.detections[:2], cads, InitialisationConfig())
    R, t, s = (value.numpy() for value in (init.poses.R, init.poses.t, init.poses.s))
    assert init.poses.shape == (4, 2) and init.gravity.source == "camera"
    for h in range(4):
        np.testing.assert_allclose(R[h, :, :, 1], np.broadcast_to(up / np.linalg.norm(up), (2, 3)), atol=1e-6)
        turn = axis_angle_y(torch.tensor(h * math.pi / 2, dtype=torch.float64)).numpy()
        np.testing.assert_allclose(R[0].transpose(0, 2, 1) @ R[h], np.broadcast_to(turn, (2, 3, 3)), atol=1e-6)
        np.testing.assert_allclose(t[h], t[0], atol=1e-12)  # both CADs are centred on their origin
        np.testing.assert_allclose(s[h], s[0])
    # Azimuth 0 faces the camera: the CAD's front (+Z) points back along the optical axis.
    assert (R[0, 0] @ [0.0, 0.0, 1.0])[2] < -0.9
    np.testing.assert_allclose(s[0, 0], typical_scale("chair", (0.5, 0.9, 0.5)))


def test_initial_centre_lies_on_box_ray_behind_the_median_surface_depth(scene, cads) -> None:
    depth = np.full((HEIGHT, WIDTH), 9.0, dtype=np.float32)
    depth[40:61, 20:61] = 2.0  # the box 20..60 x 40..60
    depth[40:45, 20:61] = 0.0  # unknown depth is ignored
    depth[45:47, 20:61] = np.nan
    depth[55:61, 20:61] = 2.5  # a minority of further pixels leaves the median at 2
    observation = replace(scene.observation, depth=depth, camera=replace(scene.observation.camera, up=UP))
    det = Detection(5, "chair", np.array([20.0, 40.0, 60.0, 60.0]), "chair0")
    init = initial_poses(observation, [det], cads, InitialisationConfig())
    ray = np.linalg.inv(K_CAM) @ [40.0, 50.0, 1.0]
    half_depth = 0.5 * category_info("chair").typical_size[2]
    expected = 2.0 * ray + half_depth * ray / np.linalg.norm(ray)
    assert init.depth_source == ["box"] and init.surface_depth[0] == pytest.approx(2.0)
    np.testing.assert_allclose(init.poses.t.numpy()[:, 0], np.broadcast_to(expected, (4, 3)), atol=1e-9)

    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[56:60, 30:40] = True  # the mask sees only the 2.5 m pixels
    assert surface_depth(depth, det.bbox, mask) == (pytest.approx(2.5), "mask")
    empty = np.zeros_like(depth)
    fallback = initial_poses(replace(observation, depth=empty), [det], cads, InitialisationConfig(fallback_depth=3.0))
    assert fallback.depth_source == ["fallback"]
    np.testing.assert_allclose(fallback.poses.t.numpy()[0, 0], 3.0 * ray + half_depth * ray / np.linalg.norm(ray))


def test_off_centre_cad_gets_its_box_centre_on_the_ray(scene, cads) -> None:
    observation = replace(scene.observation, camera=replace(scene.observation.camera, up=UP))
    det = scene.detections[2]  # the cabinet, origin at its bottom corner
    init = initial_poses(observation, [det], cads, InitialisationConfig())
    poses = init.poses.index((slice(None), 0))
    box_centre = torch.tensor(cads.centre("cabinet0")).expand(4, 1, 3)
    centres = poses.apply(box_centre)[:, 0].numpy()
    x1, y1, x2, y2 = det.bbox
    ray = np.linalg.inv(K_CAM) @ [0.5 * (x1 + x2), 0.5 * (y1 + y2), 1.0]
    for centre in centres:
        np.testing.assert_allclose(centre, centres[0], atol=1e-9)
        assert _angle_deg(centre, ray) < 1e-6
    assert np.ptp(poses.t.numpy(), axis=0).max() > 0.1  # the origin, not the centre, moves between hypotheses


def test_gravity_up_from_rendered_floor_normals(scene) -> None:
    estimate = gravity_up(scene.observation, InitialisationConfig())
    assert estimate.source == "normals"
    assert _angle_deg(estimate.up, UP) < 1.0
    wall_only = np.zeros((HEIGHT, WIDTH, 3), dtype=np.float32)
    wall_only[..., 2] = -1.0
    assert up_from_normals(wall_only, up_of_pitch(0.0), 0.02) is None
    fallback = gravity_up(replace(scene.observation, normals=wall_only), InitialisationConfig(default_pitch=0.3))
    assert fallback.source == "default"
    np.testing.assert_allclose(fallback.up, [0.0, -math.cos(0.3), -math.sin(0.3)])


# Refinement and selection --------------------------------------------------------------------------


def test_identity_model_returns_the_first_initialisation_unchanged(scene, cads) -> None:
    result = Aligner(tiny_model(), INPUTS, cads, pipeline="paper").align(scene.observation, scene.detections)
    init = initial_poses(scene.observation, scene.detections, cads, InitialisationConfig())
    for step in range(4):
        np.testing.assert_allclose(result.trajectory.index(step).t, init.poses.t, atol=1e-12)
        np.testing.assert_allclose(result.trajectory.index(step).R, init.poses.R, atol=1e-12)
    np.testing.assert_array_equal(result.chosen, 0)  # all scores tie at 0.5: the first hypothesis wins
    for k, obj in enumerate(result.objects):
        np.testing.assert_allclose(obj.t, init.poses.t[0, k].numpy(), atol=1e-12)
        np.testing.assert_allclose(obj.q, matrix_to_quat(init.poses.R[0, k]).numpy(), atol=1e-12)
        assert obj.score == pytest.approx(0.5) and obj.detection_score == pytest.approx(0.9)
        assert obj.sym == "none" and obj.cad == OBJECTS[k][0]
    # The chosen initialisation is near the truth: the rendered depth and normals carry the geometry.
    for obj, gt in zip(result.objects, scene.gt, strict=True):
        assert np.linalg.norm(obj.t + _centre_offset(obj, cads) - gt.t - _centre_offset(gt, cads)) < 0.5


def _centre_offset(pose: ObjectPose, cads: CadIndex) -> np.ndarray:
    """R (s * c_cad): where the pose puts the CAD's box centre relative to t."""
    R = Pose.from_tqs(*(torch.tensor(v) for v in (pose.t, pose.q, pose.s))).R.numpy()
    return R @ (pose.s * cads.centre(pose.cad))


def test_joint_and_sequential_agree_for_a_single_object_network(scene, cads, monkeypatch) -> None:
    model = tiny_model(mode="single", head_std=0.01)
    detections = seven_detections(scene)
    forwards = []
    monkeypatch.setattr(model, "forward", _recording(model.forward, forwards))
    joint = Aligner(model, INPUTS, cads, pipeline="paper").align(scene.observation, detections)
    assert [shape for shape in forwards] == [(8, 5)] * 4  # 4 hypotheses x 2 chunks of n_mul = 5, 4 passes
    forwards.clear()
    sequential = Aligner(model, INPUTS, cads, mode="single", sequential=True, pipeline="paper")
    sequential = sequential.align(scene.observation, detections)
    assert forwards == [(1, 1)] * (7 * 4 * 4)
    assert_same_alignment(joint, sequential)
    assert np.ptp(joint.logits) > 1e-3 and (joint.trajectory.t[-1] - joint.trajectory.t[0]).abs().max() > 1e-3
    assert {"initialisation", "tokens", "network", "pose update", "total"} <= set(joint.timings)


def test_bfloat16_network_stays_close_to_float32(scene, cads) -> None:
    model = tiny_model(mode="multi", head_std=0.01)
    detections = seven_detections(scene)
    exact = Aligner(model, INPUTS, cads, pipeline="paper").align(scene.observation, detections)
    fast = Aligner(model, INPUTS, cads, precision="bfloat16", pipeline="paper").align(scene.observation, detections)
    moved = (exact.trajectory.t[-1] - exact.trajectory.t[0]).abs().max()
    assert moved > 1e-3
    # bfloat16 keeps 8 bits of mantissa: the updates agree to a few per cent of how far the poses moved.
    assert (fast.trajectory.t[-1] - exact.trajectory.t[-1]).abs().max() < 0.05 * moved
    assert np.abs(fast.logits - exact.logits).max() < 0.03 * np.abs(exact.logits).max()
    with pytest.raises(ValueError, match="precision must be one of"):
        Aligner(model, INPUTS, cads, precision="float16", pipeline="paper")


def _recording(forward, shapes: list):
    def recorded(tokens, object_mask, token_mask=None, rotations=None):
        shapes.append(tuple(object_mask.shape))
        return forward(tokens, object_mask, token_mask, rotations)

    return recorded


def test_more_than_n_mul_detections_equal_their_chunks_aligned_separately(scene, cads, monkeypatch) -> None:
    aligner = Aligner(tiny_model(mode="multi", head_std=0.01), INPUTS, cads, pipeline="paper")
    calls = []
    sample = ImagePixelSource.sample
    monkeypatch.setattr(ImagePixelSource, "sample", lambda self, *a: calls.append(1) or sample(self, *a))
    detections = seven_detections(scene)
    whole = aligner.align(scene.observation, detections)
    assert len(calls) == 1 + 4  # one call for all box tokens, one call per pass for all pose tokens
    first, second = aligner.align(scene.observation, detections[:5]), aligner.align(scene.observation, detections[5:])
    assert [o.id for o in whole.objects] == [1, 2, 3, 11, 12, 13, 14]
    np.testing.assert_allclose(whole.logits, np.concatenate([first.logits, second.logits], axis=2), atol=1e-5)
    np.testing.assert_array_equal(whole.chosen, np.concatenate([first.chosen, second.chosen]))
    for obj, part in zip(whole.objects, first.objects + second.objects, strict=True):
        np.testing.assert_allclose(obj.t, part.t, atol=1e-5)
        np.testing.assert_allclose(obj.q, part.q, atol=1e-5)
    # In joint mode the objects of a chunk do interact: the same detections in other company differ.
    alone = aligner.align(scene.observation, detections[:1])
    assert np.abs(alone.logits[..., 0] - whole.logits[..., 0]).max() > 1e-6


def test_permuting_hypotheses_permutes_results(scene, cads, monkeypatch) -> None:
    aligner = Aligner(tiny_model(head_std=0.01), INPUTS, cads, pipeline="paper")
    plain = aligner.align(scene.observation, scene.detections)
    order = torch.tensor([2, 0, 3, 1])

    def permuted_initial_poses(*args, **kwargs):
        init = initial_poses(*args, **kwargs)
        return replace(init, poses=init.poses.index(order))

    monkeypatch.setattr(pipeline_module, "initial_poses", permuted_initial_poses)
    shuffled = aligner.align(scene.observation, scene.detections)
    np.testing.assert_allclose(shuffled.logits, plain.logits[:, order], atol=1e-5)
    np.testing.assert_allclose(shuffled.trajectory.t, plain.trajectory.t[:, order], atol=1e-6)
    np.testing.assert_array_equal(order[shuffled.chosen].numpy(), plain.chosen)
    for a, b in zip(shuffled.objects, plain.objects, strict=True):
        np.testing.assert_allclose(a.t, b.t, atol=1e-6)


class FixedLogits(MultiSparcNet):
    """Identity updates and logit[b, m] = table[b, m]: item b is hypothesis b for images of <= n_mul objects."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__(ModelConfig.cpu())
        self.register_buffer("table", table)

    def forward(self, tokens, object_mask, token_mask=None, rotations=None) -> NetOutput:
        n_items, n_slots = object_mask.shape
        logit = torch.where(object_mask, self.table[:n_items, :n_slots], 0.0)
        return NetOutput(torch.zeros(n_items, n_slots, 10), logit)


def test_the_hypothesis_of_highest_score_is_chosen(scene, cads) -> None:
    table = torch.tensor(
        [[0.1, 2.0, -1.0, 0, 0], [1.5, -3.0, -2.0, 0, 0], [0.2, 0.5, 4.0, 0, 0], [-1.0, 1.0, 3.0, 0, 0]]
    )
    result = Aligner(FixedLogits(table), INPUTS, cads, pipeline="paper").align(scene.observation, scene.detections)
    np.testing.assert_array_equal(result.chosen, [1, 0, 2])
    scores = [obj.score for obj in result.objects]
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-np.array([1.5, 2.0, 4.0]))), rtol=1e-6)
    np.testing.assert_allclose(result.hypothesis_scores, 1 / (1 + np.exp(-table[:, :3].numpy())), rtol=1e-6)
    records = result.to_predictions()
    assert [r["hypothesis"] for r in records] == [1, 0, 2]
    np.testing.assert_allclose(records[2]["t"], result.trajectory.t[-1, 2, 2].numpy())
    assert len(records[0]["iterations"]) == 4 and records[0]["iterations"][0]["score"] == pytest.approx(scores[0])


def test_seeded_sampling_is_reproducible(scene, cads) -> None:
    model = tiny_model(head_std=0.01)
    a = Aligner(model, INPUTS, cads, seed=3, pipeline="paper").align(scene.observation, scene.detections)
    b = Aligner(model, INPUTS, cads, seed=3, pipeline="paper").align(scene.observation, scene.detections)
    c = Aligner(model, INPUTS, cads, seed=4, pipeline="paper").align(scene.observation, scene.detections)
    np.testing.assert_array_equal(a.logits, b.logits)
    assert np.abs(a.logits - c.logits).max() > 1e-6


# Bad input -----------------------------------------------------------------------------------------


def test_zero_detections_give_an_empty_result(scene, cads, tmp_path) -> None:
    result = Aligner(tiny_model(), INPUTS, cads, pipeline="paper").align(scene.observation, [])
    assert result.objects == [] and result.to_predictions() == []
    assert result.trajectory.shape == (4, 4, 0) and result.diagnostics()["skipped"] == []
    with Image.open(render_overlay(scene.observation, result, cads, tmp_path / "empty.png")) as image:
        assert image.format == "PNG"


def test_boxes_are_clipped_or_skipped_with_a_warning(scene, cads, caplog) -> None:
    partly = replace(scene.detections[0], bbox=np.array([-30.0, 20.0, 50.0, 200.0]))
    outside = replace(scene.detections[1], id=8, bbox=np.array([200.0, 10.0, 260.0, 50.0]))
    with caplog.at_level(logging.WARNING):
        result = Aligner(tiny_model(), INPUTS, cads, pipeline="paper").align(scene.observation, [partly, outside])
    np.testing.assert_allclose(result.boxes, [[0.0, 20.0, 50.0, HEIGHT - 1.0]])
    assert [r["id"] for r in result.to_predictions()] == [1]
    assert [skip["id"] for skip in result.diagnostics()["skipped"]] == [8]
    assert "detection 8 skipped" in caplog.text and "wholly outside" in caplog.text
    ray = np.linalg.inv(K_CAM) @ [25.0, 69.5, 1.0]
    assert _angle_deg(result.objects[0].t, ray) < 1e-6  # the clipped box's centre


def test_unknown_cad_names_the_detection_and_the_index(scene, cads) -> None:
    stranger = replace(scene.detections[0], id=7, cad="sofa_42")
    with pytest.raises(UnknownCadId, match=r"cads\.json: detection 7 asks for CAD 'sofa_42'"):
        Aligner(tiny_model(), INPUTS, cads, pipeline="paper").align(scene.observation, [scene.detections[1], stranger])


@pytest.mark.parametrize("missing", ["depth.npy", "normals.npy"])
def test_missing_depth_or_normals_name_the_bundle_file(scene, cads, tmp_path, missing) -> None:
    scene_dir = write_bundle(tmp_path / "scene", scene)
    (scene_dir / missing).unlink()
    with pytest.raises(BundleError, match=re.escape(f"{scene_dir / missing}: missing from the scene bundle")):
        Aligner(tiny_model(), INPUTS, cads, pipeline="paper").align_bundle(scene_dir)


def test_nan_depth_pixels_count_as_unknown(scene, cads) -> None:
    depth = scene.observation.depth.copy()
    det = scene.detections[0]
    x1, y1, x2, y2 = det.bbox.astype(int)
    depth[y1 : y2 + 1, x1 : (x1 + x2) // 2] = np.nan
    observation = replace(scene.observation, depth=depth)
    result = Aligner(tiny_model(head_std=0.01), INPUTS, cads, pipeline="paper").align(observation, [det])
    valid = depth[y1 : y2 + 1, x1 : x2 + 1][det.mask[y1 : y2 + 1, x1 : x2 + 1]]
    assert result.surface_depth[0] == pytest.approx(np.median(valid[np.isfinite(valid) & (valid > 0)]))
    assert np.isfinite(result.logits).all() and bool(torch.isfinite(result.trajectory.t).all())


# Checkpoints, convenience, overlay and CLI -----------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = tiny_model(head_std=0.01)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    export_model(path, model, model.config.to_dict(), INPUTS.to_dict())
    return path


def test_load_checkpoint_round_trips_and_rejects_other_files(checkpoint, tmp_path) -> None:
    model, inputs = load_checkpoint(checkpoint)
    assert inputs == INPUTS and not model.training
    reference = tiny_model(head_std=0.01)
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value)
    other = tmp_path / "other.pt"
    torch.save({"weights": 1}, other)
    with pytest.raises(CheckpointError, match=r"other\.pt: not a multisparc model file"):
        load_checkpoint(other)


def test_align_convenience_reads_a_bundle_directory(scene, cads, checkpoint, tmp_path) -> None:
    scene_dir = write_bundle(tmp_path / "scene", scene)
    result = align(scene_dir, cads.source, checkpoint, pipeline="paper")
    model = load_checkpoint(checkpoint)[0]
    expected = Aligner(model, INPUTS, cads, pipeline="paper").align(scene.observation, scene.detections)
    assert [o.id for o in result.objects] == [1, 2, 3]
    np.testing.assert_allclose(result.logits, expected.logits, atol=1e-4)


def test_overlay_colours_models_by_score(scene, cads, tmp_path) -> None:
    # The chair scores low under every hypothesis (red), the table high (green), the cabinet is left out.
    table = torch.tensor([[-4.0, 4.0, 0, 0, 0]]).expand(4, 5).contiguous()
    result = Aligner(FixedLogits(table), INPUTS, cads, pipeline="paper").align(scene.observation, scene.detections[:2])
    path = render_overlay(scene.observation, result, cads, tmp_path / "overlay.png")
    with Image.open(path) as image:
        width, height = image.size
        pixels = np.asarray(image.convert("RGB")).astype(int)
    assert width > 2 * WIDTH and height > HEIGHT
    red, green = pixels[..., 0] - pixels[..., 1] > 80, pixels[..., 1] - pixels[..., 0] > 80
    assert red.sum() > 1000 and green.sum() > 1000
    # Each model appears in both panels: red and green pixels on both halves of the picture.
    for mask in (red, green):
        columns = np.flatnonzero(mask.any(axis=0))
        assert columns.min() < width // 2 < columns.max()


@pytest.mark.slow
def test_cli_aligns_a_directory_of_bundles(scene, cads, checkpoint, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MULTISPARC_CACHE", str(tmp_path / "cache"))
    write_bundle(tmp_path / "bundles" / "kitchen", scene)
    write_bundle(tmp_path / "bundles" / "office", replace(scene, detections=scene.detections[1:]))
    parser = argparse.ArgumentParser()
    align_command.add_arguments(parser)
    argv = [str(tmp_path / "bundles"), "--cads", str(cads.source), "--checkpoint", str(checkpoint)]
    args = parser.parse_args([*argv, "--out", str(tmp_path / "out")])
    assert align_command.run(args) == 0
    for name, ids in (("kitchen", [1, 2, 3]), ("office", [2, 3])):
        poses = read_poses(tmp_path / "out" / name / "predictions.json")
        assert [p.id for p in poses] == ids
        # The full pipeline by default: 3 refinements, the scoring pass, then the final step of the stages.
        assert all(0 < p.score < 1 and len(p.extras["iterations"]) == 5 for p in poses)
        assert all(p.extras["final_source"] in FINAL_SOURCES and 0 <= p.extras["geometric_score"] <= 1 for p in poses)
        with Image.open(tmp_path / "out" / name / "overlay.png") as image:
            assert image.format == "PNG"
        diagnostics = json.loads((tmp_path / "out" / name / "alignment.json").read_text())
        assert diagnostics["up_source"] == "normals"
        assert diagnostics["stages"] == ["depth_mask", "verify", "fit", "depth_only", "grid_lookup"]

    missing = parser.parse_args([str(tmp_path / "nowhere"), *argv[1:], "--out", str(tmp_path / "out2")])
    with pytest.raises(BundleError, match="nowhere: no such directory"):
        align_command.run(missing)
