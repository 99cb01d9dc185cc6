"""Synthetic scenes for pre-training: random furniture in random rooms, seen through perception noise.

`SceneSampler(cads, config).sample(rng)` draws a `SyntheticScene` (camera, room, light, objects with
camera-frame poses and visibility) without rendering a frame. `RenderedPixelSource(scene, caster,
noise)` ray casts only the pixels the network asks for; `render_scene_frame` renders the full frame with
the same noise, and `to_bundle` turns it into a scene bundle. `PerceptionNoise("clean" | "mild" |
"realistic" | "predicted")` sets how far depth, normals, masks and detections stray from the truth.
"""

from multisparc.scenes.camera_rig import WORLD_UP, CameraRig, sample_camera, sample_intrinsics
from multisparc.scenes.config import SceneConfig
from multisparc.scenes.detections import SPURIOUS_ID_OFFSET, SyntheticDetection, jitter_box, perceive_detections
from multisparc.scenes.export import to_bundle
from multisparc.scenes.noise import NOISE_LEVELS, NoiseParams, PerceptionNoise
from multisparc.scenes.pixels import RenderedPixelSource, SceneFrame, render_scene_frame
from multisparc.scenes.placement import Footprint, StandingObject, footprints_overlap, sample_scale, stand_on_floor
from multisparc.scenes.sampler import SceneSampler, SceneSamplingError
from multisparc.scenes.scene import SceneObject, SyntheticScene
from multisparc.scenes.visibility import Visibility, estimate_visibility

__all__ = [
    "NOISE_LEVELS",
    "SPURIOUS_ID_OFFSET",
    "WORLD_UP",
    "CameraRig",
    "Footprint",
    "NoiseParams",
    "PerceptionNoise",
    "RenderedPixelSource",
    "SceneConfig",
    "SceneFrame",
    "SceneObject",
    "SceneSampler",
    "SceneSamplingError",
    "StandingObject",
    "SyntheticDetection",
    "SyntheticScene",
    "Visibility",
    "estimate_visibility",
    "footprints_overlap",
    "jitter_box",
    "perceive_detections",
    "render_scene_frame",
    "sample_camera",
    "sample_intrinsics",
    "sample_scale",
    "stand_on_floor",
    "to_bundle",
]
