"""A rendered test scene shared by the baseline and test-time-stage tests.

A 160 x 120 camera 1.4 m above the floor of a box room, pitched down 20 deg and rolled 3 deg, looking at
one chair-like CAD (a seat block with a backrest at its back, so no turn about up maps it onto itself)
standing on the floor 2.6 m ahead, turned by 35 deg and scaled by 1.1. Depth, normals and the instance
mask are ray cast with `multisparc.render`; the detection is the instance's tight box and mask. Test
modules make their fixtures from `chair_cads` and `chair_scene`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import trimesh

from multisparc.cad import CadIndex, SampleCache
from multisparc.datasets.bundle import Camera, Detection, ObjectPose, Observation, SceneBundle
from multisparc.geometry import matrix_to_quat, yaw_pitch_roll_to_matrix
from multisparc.render import PlacedObject, RayCaster, Room, instance_boxes, render_full

WIDTH, HEIGHT = 160, 120
K_CAM = np.array([[120.0, 0.0, 79.5], [0.0, 120.0, 59.5], [0.0, 0.0, 1.0]])
PITCH, ROLL = math.radians(20.0), math.radians(3.0)
UP = np.array([math.sin(ROLL) * math.cos(PITCH), -math.cos(ROLL) * math.cos(PITCH), -math.sin(PITCH)])
CAMERA_HEIGHT = 1.4
YAW, SCALE, DISTANCE = math.radians(35.0), 1.1, 2.6


def chair_mesh() -> trimesh.Trimesh:
    """A 0.55 x 0.9 x 0.5 m chair: seat block 0.45 m high, backrest at the back (-z), centred on its box."""
    seat = trimesh.creation.box(extents=(0.55, 0.45, 0.5))
    seat.apply_translation((0.0, 0.225, 0.0))
    back = trimesh.creation.box(extents=(0.55, 0.45, 0.1))
    back.apply_translation((0.0, 0.675, -0.2))
    mesh = trimesh.util.concatenate([seat, back])
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    return mesh


def chair_cads(folder: Path) -> CadIndex:
    """The CAD index of the one chair, written to `folder`."""
    chair_mesh().export(folder / "chair.ply")
    (folder / "cads.json").write_text(json.dumps({"chair0": {"path": "chair.ply", "category": "chair", "sym": "none"}}))
    return CadIndex.load(folder / "cads.json", cache=SampleCache(folder / "samples"))


def chair_scene(cads: CadIndex) -> SceneBundle:
    """The rendered scene of the module docstring, with camera.json "up" and ground truth."""
    ahead = np.array([0.0, 0.0, 1.0]) - UP[2] * UP
    ahead /= np.linalg.norm(ahead)
    R = yaw_pitch_roll_to_matrix(torch.tensor(YAW), torch.tensor(PITCH), torch.tensor(ROLL)).double().numpy()
    s = np.full(3, SCALE)
    t = -CAMERA_HEIGHT * UP + DISTANCE * ahead + 0.5 * 0.9 * SCALE * UP
    room = Room.box(UP, CAMERA_HEIGHT, wall_distances=(6.0, 3.0, 3.0, 3.0))
    placed = [PlacedObject(1, "chair0", R, t, s, albedo=np.array([0.6, 0.4, 0.3]))]
    frame = render_full(RayCaster(cads), placed, room, K_CAM, WIDTH, HEIGHT)
    box = np.array(instance_boxes(frame.instance, [1])[1], dtype=np.float64)
    detection = Detection(1, "chair", box, "chair0", 0.9, frame.instance == 1)
    observation = Observation(frame.rgb, Camera(K_CAM, WIDTH, HEIGHT, up=UP), frame.depth, frame.normals)
    gt = ObjectPose(1, "chair", "chair0", t, matrix_to_quat(torch.from_numpy(R)).numpy(), s)
    return SceneBundle("chair", observation, [detection], [gt])
