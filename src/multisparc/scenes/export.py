"""Synthetic scenes as scene bundles, so that synthetic and real data share one path downstream."""

from __future__ import annotations

import numpy as np
import torch

from multisparc.datasets.bundle import Camera, Detection, ObjectPose, Observation, SceneBundle
from multisparc.geometry import matrix_to_quat
from multisparc.render import image_pixels
from multisparc.scenes.pixels import SceneFrame
from multisparc.scenes.scene import SyntheticScene


def to_bundle(scene: SyntheticScene, frame: SceneFrame, name: str) -> SceneBundle:
    """The bundle of a rendered scene (`render_scene_frame`).

    Observation: the frame's image, noisy depth and normals, the camera with `cam_to_world` and `up`.
    Detections: the frame's detections with their masks (from its noisy instance map; none for a
    detection that came without one), jittered boxes and scores. Ground truth: every detected object
    (visible enough, whether the detector found it or not), id = instance id, camera-frame t,
    q (w, x, y, z), s and symmetry.
    """
    camera = scene.camera
    pixels = image_pixels(camera.width, camera.height)
    instance = frame.instance.reshape(-1)
    detections = [
        Detection(
            id=det.id,
            category=det.category,
            bbox=det.bbox.copy(),
            cad=det.cad,
            score=det.score,
            mask=det.mask(instance, pixels).reshape(camera.height, camera.width) if det.has_mask else None,
        )
        for det in frame.detections
    ]
    gt = [
        ObjectPose(
            id=obj.instance_id,
            category=obj.category,
            cad=obj.cad_id,
            t=obj.t.copy(),
            q=matrix_to_quat(torch.from_numpy(obj.R)).numpy(),
            s=obj.s.copy(),
            sym=obj.sym,
        )
        for obj in scene.detected
    ]
    observation = Observation(
        image=frame.rgb,
        camera=Camera(
            K=camera.K.copy(),
            width=camera.width,
            height=camera.height,
            cam_to_world=None if camera.cam_to_world is None else camera.cam_to_world.copy(),
            up=None if camera.up is None else np.asarray(camera.up, dtype=np.float64).copy(),
        ),
        depth=frame.depth,
        normals=frame.normals,
    )
    return SceneBundle(name=name, observation=observation, detections=detections, gt=gt)
