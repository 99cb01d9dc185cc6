"""Structured scene layouts: templates keep their relations, objects stay apart and in the room, and a
layout share of 0 draws the scenes of independent placement."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from multisparc.cad import CadIndex
from multisparc.categories import CATEGORIES, category_info
from multisparc.scenes import (
    Footprint,
    PerceptionNoise,
    SceneConfig,
    SceneSampler,
    StandingObject,
    footprints_overlap,
    render_scene_frame,
    sample_camera,
)
from multisparc.scenes.layouts import TEMPLATES, choose_template, place_layout

# Scenes of the box library below drawn by independent placement before layouts existed (seed:
# noise seed, CAD ids, first object's t rounded to micrometres): layout_share 0 must draw them still.
INDEPENDENT = {
    0: (8613056079711841974, ["display_1", "cabinet_0", "sofa_1", "bed_0"], [1.046816, -0.402542, 1.62896]),
    1: (2574234862181810930, ["bookshelf_1", "cabinet_1"], [-1.214012, 0.835994, 3.5897]),
    2: (4456915138207118713, ["bathtub_1", "bin_0", "bed_1", "table_1"], [-0.452906, -0.616104, 3.188583]),
    3: (3480359101191689617, ["bed_1", "display_1"], [0.446104, 0.940888, 4.812525]),
    4: (3098095684911212082, ["bed_1", "sofa_1", "bookshelf_1"], [1.398534, -1.4426, 4.662538]),
    5: (9106121275987992137, ["bathtub_0"], [-0.446307, 0.518293, 2.925625]),
}
SEEDS = range(16)


@pytest.fixture(scope="module")
def cads(tmp_path_factory: pytest.TempPathFactory) -> CadIndex:
    """Two boxes per class near the class's typical size, moved off their centres (placement must not
    assume centred models). Boxes, not the procedural library: the recorded scenes must not change
    when the furniture generator does."""
    root = tmp_path_factory.mktemp("boxes")
    rng = np.random.default_rng(3)
    records = {}
    for category in CATEGORIES:
        for k in range(2):
            cad_id = f"{category}_{k}"
            mesh = trimesh.creation.box(
                extents=np.asarray(category_info(category).typical_size) * rng.uniform(0.8, 1.2, 3)
            )
            mesh.apply_translation(rng.uniform(-0.3, 0.3, 3))
            mesh.export(root / f"{cad_id}.ply")
            records[cad_id] = {"path": f"{cad_id}.ply", "category": category, "sym": "none"}
    (root / "cads.json").write_text(json.dumps(records))
    return CadIndex.load(root / "cads.json")


def groups(cads: CadIndex, template: str, count: int) -> list[list[StandingObject]]:
    """The groups `template` places for each of SEEDS (world frame), at least 3/4 of them."""
    config = SceneConfig()
    found = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        rig = sample_camera(config, rng)
        layout = place_layout(TEMPLATES[template], cads, CATEGORIES, count, rig, config, rng)
        if layout is not None:
            assert layout.template == template and len(layout.objects) == count
            found.append(layout.objects[: layout.group_size])
    assert len(found) >= 0.75 * len(SEEDS)
    return found


def front(obj: StandingObject) -> np.ndarray:
    """(2,) the model's front (CAD +Z), world (x, z)."""
    return obj.R[[0, 2], 2]


def angle_to(obj: StandingObject, target: np.ndarray) -> float:
    """Degrees between the model's front and the way from its footprint centre to `target` (2,)."""
    way = target - obj.footprint.centre
    return float(np.rad2deg(np.arccos(np.clip(front(obj) @ way / np.linalg.norm(way), -1.0, 1.0))))


def world_footprint(scene, obj, cads: CadIndex) -> tuple[Footprint, np.ndarray, np.ndarray]:
    """A scene object's footprint, world R (3, 3) and t (3,)."""
    cam_to_world = scene.camera.cam_to_world
    R, t = cam_to_world[:3, :3] @ obj.R, cam_to_world[:3, :3] @ obj.t + cam_to_world[:3, 3]
    centre = t + R @ (obj.s * cads.centre(obj.cad_id))
    half = obj.s[[0, 2]] * cads.extent(obj.cad_id)[[0, 2]] / 2
    return Footprint(centre[[0, 2]], R[np.ix_([0, 2], [0, 2])].T, half), R, t


def test_layout_share_zero_draws_the_scenes_of_independent_placement(cads: CadIndex) -> None:
    default, explicit = SceneSampler(cads), SceneSampler(cads, SceneConfig(layout_share=0.0))
    for seed, (noise_seed, cad_ids, t) in INDEPENDENT.items():
        scene = explicit.sample(seed)
        assert scene.noise_seed == noise_seed  # the last number drawn: no extra draw before it
        assert [obj.cad_id for obj in scene.objects] == cad_ids
        np.testing.assert_allclose(scene.objects[0].t, t, atol=2e-6)
        again = default.sample(seed)
        for a, b in zip(scene.objects, again.objects, strict=True):
            np.testing.assert_array_equal(a.R, b.R)
            np.testing.assert_array_equal(a.t, b.t)


def test_layout_share_is_checked_and_serialised() -> None:
    for share in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="layout_share"):
            SceneConfig(layout_share=share)
    config = SceneConfig(layout_share=0.4)
    assert config.to_dict()["layout_share"] == 0.4
    assert SceneConfig.from_dict(config.to_dict()) == config


def test_templates_fit_the_classes_and_count() -> None:
    assert TEMPLATES["dining"].fits(["table", "chair"], 3) and not TEMPLATES["dining"].fits(["table", "chair"], 2)
    assert not TEMPLATES["lounge"].fits(["sofa"], 4) and TEMPLATES["lounge"].fits(["sofa", "table"], 2)
    rng = np.random.default_rng(0)
    assert {choose_template(["chair"], 1, rng).name for _ in range(20)} == {"wall"}
    assert {choose_template(["chair"], 3, rng).name for _ in range(40)} == {"row", "wall"}


def test_dining_chairs_face_the_table_centre(cads: CadIndex) -> None:
    for group in groups(cads, "dining", 7):
        table, chairs = group[0], group[1:]
        assert table.category == "table" and chairs and all(chair.category == "chair" for chair in chairs)
        assert len(chairs) <= 6 and len({chair.cad_id for chair in chairs}) <= 2
        for chair in chairs:
            assert angle_to(chair, table.footprint.centre) < 1.0
            same = [other for other in chairs if other.cad_id == chair.cad_id]
            assert all(np.array_equal(other.s, chair.s) for other in same)  # a repeated model keeps its scale


def test_row_repeats_one_model_evenly_with_one_yaw(cads: CadIndex) -> None:
    for group in groups(cads, "row", 4):
        assert 2 <= len(group) <= 4 and len({obj.cad_id for obj in group}) == 1
        for obj in group[1:]:
            np.testing.assert_array_equal(obj.s, group[0].s)
            np.testing.assert_allclose(obj.R, group[0].R, atol=1e-12)
        steps = np.diff([obj.footprint.centre for obj in group], axis=0)
        np.testing.assert_allclose(steps, np.broadcast_to(steps[0], steps.shape), atol=1e-9)
        assert abs(steps[0] @ front(group[0])) < 1e-9  # side by side, not one behind the other


def test_lounge_sofa_and_display_face_each_other(cads: CadIndex) -> None:
    for group in groups(cads, "lounge", 3):
        sofa, others = group[0], {obj.category: obj for obj in group[1:]}
        assert sofa.category == "sofa" and set(others) <= {"display", "table"} and others
        if "display" in others:
            display = others["display"]
            assert angle_to(sofa, display.footprint.centre) < 0.01
            assert angle_to(display, sofa.footprint.centre) < 0.01
            assert 1.5 <= np.linalg.norm(display.footprint.centre - sofa.footprint.centre) <= 6.0
        if "table" in others:
            assert angle_to(sofa, others["table"].footprint.centre) < 0.01  # right in front of the sofa


def test_bedside_furniture_stands_beside_the_bed_in_line_with_its_back(cads: CadIndex) -> None:
    for group in groups(cads, "bedroom", 4):
        bed, beside = group[0], group[1:]
        assert bed.category == "bed" and beside and {obj.category for obj in beside} <= {"cabinet", "bin"}
        bed_back = bed.footprint.corners() @ front(bed)
        sideways = np.array([front(bed)[1], -front(bed)[0]])
        for obj in beside:
            np.testing.assert_allclose(obj.R, bed.R, atol=1e-12)
            assert (obj.footprint.corners() @ front(bed)).min() == pytest.approx(bed_back.min(), abs=1e-9)
            lateral = abs((obj.footprint.centre - bed.footprint.centre) @ sideways)
            assert lateral >= bed.footprint.half_size[0] + obj.footprint.half_size[0]


def test_wall_groups_stand_square_with_their_backs_on_a_room_wall(cads: CadIndex) -> None:
    # One object per scene: only the wall template fits.
    sampler = SceneSampler(cads, SceneConfig(layout_share=1.0, objects=(1, 1)))
    for seed in range(8):
        scene = sampler.sample(seed)
        (obj,) = scene.objects
        footprint, R, _ = world_footprint(scene, obj, cads)
        facing = R[[0, 2], 2]
        assert np.abs(facing).max() == pytest.approx(1.0, abs=1e-12)  # a multiple of 90 deg to the room
        back = (footprint.corners() @ facing).min()
        cam_to_world = scene.camera.cam_to_world
        walls = []
        for plane in scene.room.walls:
            normal = (cam_to_world[:3, :3] @ plane.normal)[[0, 2]]
            if normal @ facing > 1 - 1e-9:  # the wall behind it, facing the same way
                walls.append(back - (cam_to_world[:3, :3] @ plane.point + cam_to_world[:3, 3])[[0, 2]] @ facing)
        assert len(walls) == 1 and 0 < walls[0] < 0.02


def test_structured_scenes_keep_objects_apart_inside_the_room_and_render(cads: CadIndex) -> None:
    config = SceneConfig(layout_share=1.0, objects=(3, 6))
    sampler = SceneSampler(cads, config)
    for seed in range(10):
        scene = sampler.sample(seed)
        footprints = [world_footprint(scene, obj, cads)[0] for obj in scene.objects]
        for i, a in enumerate(footprints):
            for b in footprints[i + 1 :]:
                assert not footprints_overlap(a, b, config.footprint_margin - 1e-9)
        for obj in scene.objects:
            vertices = obj.t + (obj.s * cads.mesh(obj.cad_id).vertices) @ obj.R.T  # camera frame
            for plane in scene.room.planes:
                assert np.min((vertices - plane.point) @ plane.normal) > -1e-6
    frame = render_scene_frame(scene, sampler.caster, PerceptionNoise("clean"))
    assert {obj.instance_id for obj in scene.detected} <= set(np.unique(frame.instance))
