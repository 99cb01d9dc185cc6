"""Random synthetic scenes for pre-training: 1 to 4 (or more) CAD models standing in a room.

One draw: a camera (`camera_rig`), objects standing on the floor in its view (`placement`; in a share
`layout_share` of the scenes a group of them arranged as in real rooms, `layouts`), a room around
them (`room`), materials and light (`appearance`), then a cheap visibility check
(`visibility`). Scenes in which too few objects are visible enough are drawn again. No frame is
rendered: pixels are ray cast on demand (`RenderedPixelSource`) or a frame at export
(`render_scene_frame`).
"""

from __future__ import annotations

import numpy as np

from multisparc.cad import CadIndex
from multisparc.categories import CATEGORIES
from multisparc.datasets.bundle import Camera
from multisparc.render import PlacedObject, RayCaster
from multisparc.scenes.appearance import random_lighting, random_object_material
from multisparc.scenes.camera_rig import CameraRig, sample_camera
from multisparc.scenes.config import SceneConfig
from multisparc.scenes.export import to_bundle
from multisparc.scenes.layouts import choose_template, place_layout
from multisparc.scenes.placement import StandingObject, place_objects
from multisparc.scenes.room import WallLine, plan_room, room_in_camera
from multisparc.scenes.scene import SceneObject, SyntheticScene
from multisparc.scenes.visibility import estimate_visibility

# `to_bundle` belongs to the sampler's interface (docs/ARCHITECTURE.md); it lives in `export`.
__all__ = ["SceneSampler", "SceneSamplingError", "to_bundle"]


class SceneSamplingError(RuntimeError):
    """No acceptable scene within the configured number of attempts."""


class SceneSampler:
    """Draws `SyntheticScene`s from a CAD index.

    caster: the renderer's ray caster for `cads` (built here if not given; share one to reuse its
    per-CAD acceleration structures).
    """

    def __init__(self, cads: CadIndex, config: SceneConfig | None = None, caster: RayCaster | None = None) -> None:
        self.cads = cads
        self.config = config if config is not None else SceneConfig()
        self.caster = caster if caster is not None else RayCaster(cads)
        wanted = self.config.categories if self.config.categories is not None else CATEGORIES
        self.categories = [category for category in wanted if cads.ids_of(category)]
        if not self.categories:
            raise ValueError(f"{cads.source}: the CAD index has no model of the classes {', '.join(wanted)}")

    def sample(self, rng: np.random.Generator | int) -> SyntheticScene:
        """A scene with at least `min_detections` detected objects; the same seed gives the same scene.

        Raises SceneSamplingError after `max_attempts` rejected draws.
        """
        rng = np.random.default_rng(rng)
        for _ in range(self.config.max_attempts):
            scene = self._draw(rng)
            if scene is not None:
                return scene
        raise SceneSamplingError(
            f"no scene with {self.config.min_detections} object(s) at least {self.config.min_visible_fraction:.0%} "
            f"visible in {self.config.max_attempts} attempts; relax objects, object_distance or min_visible_fraction"
        )

    def _place(
        self, count: int, rig: CameraRig, rng: np.random.Generator
    ) -> tuple[list[StandingObject] | None, WallLine | None]:
        """`count` objects in the view of `rig` (None if they do not fit) and the wall a layout's group
        backs onto. A share `layout_share` of the draws is a structured layout; with none, no number is
        drawn for the choice, so the scenes stay those of independent placement."""
        share = self.config.layout_share
        if share > 0 and rng.uniform() < share:
            template = choose_template(self.categories, count, rng)
            layout = place_layout(template, self.cads, self.categories, count, rig, self.config, rng)
            return (None, None) if layout is None else (layout.objects, layout.wall)
        return place_objects(self.cads, self.categories, count, rig, self.config, rng), None

    def _draw(self, rng: np.random.Generator) -> SyntheticScene | None:
        """One attempt: a scene, or None when its objects do not fit or too few are visible."""
        config = self.config
        rig = sample_camera(config, rng)
        count = int(rng.integers(config.objects[0], config.objects[1] + 1))
        standing, wall = self._place(count, rig, rng)
        if standing is None:
            return None
        corners = np.concatenate([obj.footprint.corners() for obj in standing] + [rig.position[None, [0, 2]]])
        tallest = max(obj.s[1] * self.cads.extent(obj.cad_id)[1] for obj in standing)  # bottoms at y = 0
        plan = plan_room(corners, max(tallest, rig.position[1]), config, rng, wall)
        room = room_in_camera(plan, rig, rng)
        lighting = random_lighting(rig, config.shadows, rng)
        placed = []
        for instance_id, obj in enumerate(standing, start=1):
            albedo, texture = random_object_material(rng)
            R = rig.world_to_camera @ obj.R
            t = rig.to_camera(obj.t[None])[0]
            placed.append(PlacedObject(instance_id, obj.cad_id, R, t, obj.s, albedo, texture))
        points = [self.cads.points(obj.cad_id, config.visibility_points)[0] for obj in standing]
        seen = estimate_visibility(
            self.caster, placed, points, rig.K, config.width, config.height, config.visibility_fraction_points
        )
        objects = tuple(
            SceneObject(
                instance_id=item.instance_id,
                cad_id=obj.cad_id,
                category=obj.category,
                sym=obj.sym,
                R=item.R,
                t=item.t,
                s=item.s,
                albedo=item.albedo,
                texture=item.texture,
                box=visibility.box,
                visible_fraction=visibility.visible_fraction,
                truncation=visibility.truncation,
                detected=visibility.box is not None
                and visibility.visible_fraction >= config.min_visible_fraction
                and visibility.truncation <= config.max_truncation,
            )
            for obj, item, visibility in zip(standing, placed, seen, strict=True)
        )
        for scene_object, item in zip(objects, placed, strict=True):
            # The cached `placed` is the object the visibility was cast with: the renderer keeps what it
            # derived from it (its transforms and bounds) for the scene's renders.
            vars(scene_object)["placed"] = item
        if sum(obj.detected for obj in objects) < config.min_detections:
            return None
        # World origin at the room's floor centre.
        cam_to_world = rig.cam_to_world
        cam_to_world[:3, 3] -= plan.centre
        camera = Camera(K=rig.K, width=config.width, height=config.height, cam_to_world=cam_to_world, up=rig.up)
        return SyntheticScene(
            camera=camera,
            room=room,
            lighting=lighting,
            objects=objects,
            noise_seed=int(rng.integers(2**63)),
        )
