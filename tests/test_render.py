"""Tests of the CPU ray-casting renderer against known geometry."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from multisparc.cad.errors import UnknownCadId
from multisparc.cad.index import CadEntry, CadIndex
from multisparc.render import (
    Lighting,
    PlacedObject,
    Plane,
    RayCaster,
    Room,
    Texture,
    image_pixels,
    instance_boxes,
    object_pixel_stats,
    pixel_directions,
    pixel_rays,
    raycast,
    render_full,
    render_object_alone,
    render_pixels,
    texture_factor,
    visible_fractions,
)

WIDTH, HEIGHT = 160, 120
K = np.array([[150.0, 0.0, 80.0], [0.0, 150.0, 60.0], [0.0, 0.0, 1.0]])
CENTRE = np.array([[80, 60]])
LEVEL_UP = np.array([0.0, -1.0, 0.0])


def _points(depth: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Camera-frame points (N, 3) of z-depths (N,) at pixels (N, 2) (col, row): depth * K^-1 [u, v, 1]."""
    homogeneous = np.concatenate([pixels, np.ones((len(pixels), 1))], axis=1)
    return depth[:, None] * (homogeneous @ np.linalg.inv(K).T)


def _doubled(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The mesh with every face twice, once in each winding (as some CAD exports have)."""
    return trimesh.Trimesh(mesh.vertices, np.concatenate([mesh.faces, mesh.faces[:, ::-1]]), process=False)


def _slanted_quad() -> trimesh.Trimesh:
    """Two triangles in the CAD plane x + y = 0 (normal along (1, 1, 0)), 2 m x 2 m."""
    vertices = np.array([[-1.0, 1.0, -1.0], [1.0, -1.0, -1.0], [1.0, -1.0, 1.0], [-1.0, 1.0, 1.0]])
    return trimesh.Trimesh(vertices, [[0, 1, 2], [0, 2, 3]], process=False)


@pytest.fixture(scope="module")
def meshes() -> dict[str, trimesh.Trimesh]:
    cube = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    return {
        "cube": cube,
        "cube_doubled": _doubled(cube),
        "cube_inverted": trimesh.Trimesh(cube.vertices, cube.faces[:, ::-1], process=False),
        "sphere": trimesh.creation.icosphere(subdivisions=3, radius=0.5),
        "cylinder": trimesh.creation.cylinder(radius=0.3, height=1.0, sections=24),
        "quad": _slanted_quad(),
    }


@pytest.fixture(scope="module")
def caster(meshes: dict[str, trimesh.Trimesh]) -> RayCaster:
    return RayCaster(meshes)


def _place(instance_id: int, cad_key: str, t, R=None, s=(1.0, 1.0, 1.0), **material) -> PlacedObject:
    return PlacedObject(instance_id, cad_key, np.eye(3) if R is None else R, np.asarray(t, float), s, **material)


def _furnished_scene() -> tuple[list[PlacedObject], Room]:
    """Four overlapping textured objects in a box room seen by a slightly pitched camera."""
    pitch = Rotation.from_euler("x", 12, degrees=True).as_matrix()
    objects = [
        _place(
            1,
            "cube",
            pitch @ [-0.6, 0.9, 3.0],
            pitch,
            (0.8, 1.2, 0.6),
            albedo=(0.8, 0.2, 0.2),
            texture=Texture("checker", 0.1, 0.3),
        ),
        _place(
            2,
            "sphere",
            pitch @ [0.1, 0.8, 3.6],
            pitch,
            (1.2, 1.2, 1.2),
            albedo=(0.2, 0.7, 0.3),
            texture=Texture("grain", 0.07, 0.2),
        ),
        _place(
            3,
            "cylinder",
            pitch @ [0.7, 1.0, 2.6],
            pitch @ Rotation.from_euler("z", 30, degrees=True).as_matrix(),
            (1.0, 0.9, 1.0),
            albedo=(0.3, 0.3, 0.9),
            texture=Texture("stripes", 0.05, 0.25),
        ),
        _place(4, "cube_doubled", pitch @ [0.0, 1.2, 5.0], pitch, (2.0, 0.6, 0.8), albedo=(0.9, 0.8, 0.3)),
    ]
    return objects, Room.box(pitch @ LEVEL_UP, 1.5, wall_distances=(6.0, 2.5, 3.0, 2.5), wall_yaw=0.2)


# Geometry ------------------------------------------------------------------------------------------


def test_cube_front_face_depth_is_exact_at_centre_pixel(caster: RayCaster) -> None:
    cube = _place(1, "cube", [0.0, 0.0, 3.5])
    samples = render_pixels(caster, [cube], None, K, CENTRE)
    assert samples.depth[0] == 3.0
    assert samples.instance[0] == 1
    np.testing.assert_array_equal(samples.normals[0], [0.0, 0.0, -1.0])


def test_depth_is_z_depth_not_ray_distance(caster: RayCaster) -> None:
    cube = _place(1, "cube", [0.0, 0.0, 3.5], s=(2.0, 2.0, 1.0))
    pixel = np.array([[120, 20]])  # off-centre, still on the 2 m wide front face at z = 3 m
    samples = render_pixels(caster, [cube], None, K, pixel)
    direction = pixel_rays(K, pixel)[0]
    hits = caster.cast([cube], None, np.zeros(3), direction[None])
    assert samples.depth[0] == pytest.approx(3.0, abs=1e-6)
    assert hits.distance[0] == pytest.approx(3.0 / direction[2], rel=1e-6)
    assert hits.distance[0] > 3.2  # the ray is 21 deg off axis: distance exceeds depth by 7 %
    np.testing.assert_allclose(hits.point[0], 3.0 / direction[2] * direction, rtol=1e-6)


def test_cube_faces_have_camera_facing_axis_normals(caster: RayCaster) -> None:
    cube = _place(1, "cube", [0.8, -0.6, 3.5])
    frame = render_full(caster, [cube], None, K, WIDTH, HEIGHT)
    hit = frame.instance == 1
    normals = frame.normals[hit]
    # Seen from the origin, the cube shows its front (-z), left (-x) and bottom (+y: y points down) faces.
    seen = {tuple(n) for n in np.round(normals).astype(int).tolist()}
    assert seen == {(0, 0, -1), (-1, 0, 0), (0, 1, 0)}
    np.testing.assert_allclose(np.abs(normals).max(axis=1), 1.0, atol=1e-6)


def test_rotated_nonuniformly_scaled_plane_has_analytic_normal_and_depth(caster: RayCaster) -> None:
    R = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    s = np.array([1.0, 3.0, 0.5])
    t = np.array([0.1, -0.2, 4.0])
    quad = _place(1, "quad", t, R, s)
    frame = render_full(caster, [quad], None, K, WIDTH, HEIGHT)
    hit = frame.instance == 1
    assert hit.sum() > 500
    # The analytic plane: transform the CAD vertices and take the cross product.
    v = t + (R @ (s * _slanted_quad().vertices).T).T
    normal = np.cross(v[1] - v[0], v[2] - v[0])
    normal /= np.linalg.norm(normal)
    normal = normal if np.dot(normal, v[0]) < 0 else -normal  # facing the camera at the origin
    # The naive (non inverse-transpose) normal differs by tens of degrees here, so this is a real check.
    naive = R @ np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0)
    assert abs(np.dot(naive, normal)) < 0.9
    np.testing.assert_allclose(frame.normals[hit], np.broadcast_to(normal, (hit.sum(), 3)), atol=1e-5)
    rows, cols = np.nonzero(hit)
    points = _points(frame.depth[hit], np.stack([cols, rows], axis=1))
    np.testing.assert_allclose((points - v[0]) @ normal, 0.0, atol=1e-5)


def test_doubled_and_inverted_windings_render_like_the_plain_cube(caster: RayCaster) -> None:
    R = Rotation.from_euler("xyz", [25, 40, 10], degrees=True).as_matrix()
    frames = {
        key: render_full(caster, [_place(1, key, [0.2, 0.1, 3.0], R)], None, K, WIDTH, HEIGHT)
        for key in ("cube", "cube_doubled", "cube_inverted")
    }
    reference = frames["cube"]
    hit = reference.instance == 1
    rows, cols = np.nonzero(hit)
    rays = pixel_rays(K, np.stack([cols, rows], axis=1))
    for key, frame in frames.items():
        np.testing.assert_array_equal(frame.instance, reference.instance, err_msg=key)
        np.testing.assert_array_equal(frame.depth, reference.depth, err_msg=key)
        assert np.all(np.sum(frame.normals[hit] * rays, axis=1) < 0), key
        np.testing.assert_allclose(frame.normals, reference.normals, atol=1e-6, err_msg=key)


def test_occlusion_ordering_and_instance_ids(caster: RayCaster) -> None:
    front = _place(7, "cube", [0.0, 0.0, 3.5])
    back = _place(3, "cube", [0.6, 0.0, 5.5])
    pixels = np.array([[80, 60], [110, 60], [5, 5]])  # front face, back cube beside the front one, empty
    for order in ([front, back], [back, front]):
        samples = render_pixels(caster, order, None, K, pixels)
        np.testing.assert_array_equal(samples.instance, [7, 3, -1])
        np.testing.assert_allclose(samples.depth, [3.0, 5.0, 0.0], atol=1e-6)
        np.testing.assert_array_equal(samples.normals[2], [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="instance id 3 is used by two objects"):
        render_pixels(caster, [back, _place(3, "sphere", [0, 0, 3])], None, K, pixels)


def test_interpenetrating_objects_show_the_nearest_surface(caster: RayCaster) -> None:
    # A ball half sunk into a wall: its bounding box starts in front of the wall everywhere, its surface
    # only near its centre, so bounding volumes alone cannot decide which surface is nearer.
    centre, radius = np.array([0.1, -0.1, 3.3]), 0.5
    wall = _place(1, "cube", [0.0, 0.0, 3.5], s=(4.0, 4.0, 1.0))
    ball = _place(2, "sphere", centre)
    pixels = image_pixels(WIDTH, HEIGHT)
    samples = render_pixels(caster, [ball, wall], None, K, pixels)
    rays = pixel_rays(K, pixels)
    along = rays @ centre
    discriminant = along**2 - centre @ centre + radius**2
    ball_distance = np.where(discriminant > 0, along - np.sqrt(np.clip(discriminant, 0, None)), np.inf)
    wall_distance = 3.0 / rays[:, 2]
    clear = np.abs(ball_distance - wall_distance) > 0.02  # the icosphere deviates from the sphere by < 1 mm
    expected = np.where(ball_distance < wall_distance, 2, 1)
    np.testing.assert_array_equal(samples.instance[clear], expected[clear])
    assert (expected[clear] == 2).sum() > 100 and (discriminant[clear & (expected == 1)] > 0).sum() > 100


def test_floor_depth_matches_the_analytic_formula() -> None:
    height = 1.4
    room = Room(floor=Plane(point=[0.0, height, 0.0], normal=LEVEL_UP))
    caster = RayCaster({})
    rows = np.arange(HEIGHT)
    pixels = np.stack([np.full(HEIGHT, 30), rows], axis=1)
    samples = render_pixels(caster, [], room, K, pixels)
    below = rows > K[1, 2]
    expected = height * K[1, 1] / (rows[below] - K[1, 2])
    np.testing.assert_allclose(samples.depth[below], expected, rtol=1e-6)
    assert np.all(samples.instance[below] == 0)
    np.testing.assert_array_equal(samples.instance[~below], -1)  # the horizon row and above: no floor
    np.testing.assert_array_equal(samples.depth[~below], 0.0)
    np.testing.assert_allclose(samples.normals[below], np.broadcast_to(LEVEL_UP, (below.sum(), 3)))


def test_box_room_surfaces_lie_on_their_planes() -> None:
    up = Rotation.from_euler("xz", [15, -5], degrees=True).as_matrix() @ LEVEL_UP
    room = Room.box(up, camera_height=1.5, wall_distances=(4.0, 2.0, None, 2.5), ceiling_height=2.5)
    frame = render_full(RayCaster({}), [], room, K, WIDTH, HEIGHT)
    assert np.all(frame.instance == 0)  # the camera is enclosed: every ray meets a wall, floor or ceiling
    points = _points(frame.depth.reshape(-1), image_pixels(WIDTH, HEIGHT))
    offsets = np.stack([(points - plane.point) @ plane.normal for plane in room.planes])
    on_some_plane = np.min(np.abs(offsets), axis=0)
    assert on_some_plane.max() < 1e-5
    assert np.all(offsets > -1e-5)  # and inside every one of them
    # Straight ahead of a level camera the front wall is 4 m away.
    level = Room.box(LEVEL_UP, camera_height=1.5)
    assert render_pixels(RayCaster({}), [], level, K, CENTRE).depth[0] == pytest.approx(4.0)


# Full frames and sparse pixels ---------------------------------------------------------------------


def test_render_full_equals_render_pixels_bit_for_bit(caster: RayCaster) -> None:
    objects, room = _furnished_scene()
    frame = render_full(caster, objects, room, K, WIDTH, HEIGHT)
    assert set(np.unique(frame.instance)) == {0, 1, 2, 3, 4}
    rng = np.random.default_rng(0)
    for count in (1, 37, 2500):
        # The same scene anew each time (nothing cached from the frame): a few rays work out the planes
        # of the triangles they meet alone, many get every triangle's at once; the bits must not differ.
        objects, room = _furnished_scene()
        pixels = np.stack([rng.integers(0, WIDTH, count), rng.integers(0, HEIGHT, count)], axis=1)
        samples = render_pixels(caster, objects, room, K, pixels)
        cols, rows = pixels[:, 0], pixels[:, 1]
        np.testing.assert_array_equal(samples.depth, frame.depth[rows, cols])
        np.testing.assert_array_equal(samples.normals, frame.normals[rows, cols])
        np.testing.assert_array_equal(samples.instance, frame.instance[rows, cols])
        np.testing.assert_array_equal(samples.rgb, frame.rgb[rows, cols].astype(np.float32) / 255.0)


def test_shaded_subset_and_instance_queries_agree_with_the_full_frame(caster: RayCaster) -> None:
    objects, room = _furnished_scene()
    frame = render_full(caster, objects, room, K, WIDTH, HEIGHT)
    pixels = np.random.default_rng(3).integers(0, [WIDTH, HEIGHT], (3000, 2))
    shaded = np.arange(3000) % 3 == 0
    samples = render_pixels(caster, objects, room, K, pixels, shaded=shaded)
    cols, rows = pixels[:, 0], pixels[:, 1]
    np.testing.assert_array_equal(samples.depth, frame.depth[rows, cols])
    np.testing.assert_array_equal(samples.normals, frame.normals[rows, cols])
    np.testing.assert_array_equal(samples.instance, frame.instance[rows, cols])
    np.testing.assert_array_equal(samples.rgb[shaded], frame.rgb[rows, cols][shaded].astype(np.float32) / 255.0)
    np.testing.assert_array_equal(samples.rgb[~shaded], 0.0)
    instances = caster.instances(objects, room, np.zeros((3, 1)), pixel_directions(K, pixels))
    np.testing.assert_array_equal(instances, frame.instance[rows, cols])


def test_shadow_rays_with_one_direction_match_per_ray_directions(caster: RayCaster) -> None:
    objects, _ = _furnished_scene()
    rng = np.random.default_rng(4)
    origins = rng.uniform([-2.0, -1.0, 1.0], [2.0, 2.0, 6.0], (4000, 3))
    towards = np.array([-0.3, -1.0, -0.6])
    shared = caster.occluded(objects, origins, towards)
    per_ray = caster.occluded(objects, origins, np.broadcast_to(towards, origins.shape))
    np.testing.assert_array_equal(shared, per_ray)
    assert 0.05 < shared.mean() < 0.95


def test_per_cad_intersector_is_built_once_across_scenes(meshes, monkeypatch: pytest.MonkeyPatch) -> None:
    built = {"intersectors": 0, "embree": 0}
    from_mesh, embree_scene = raycast.CadGeometry.from_mesh, raycast.EmbreeScene

    def counting_geometry(mesh):
        built["intersectors"] += 1
        return from_mesh(mesh)

    def counting_embree(*args, **kwargs):
        built["embree"] += 1
        return embree_scene(*args, **kwargs)

    monkeypatch.setattr(raycast.CadGeometry, "from_mesh", counting_geometry)
    monkeypatch.setattr(raycast, "EmbreeScene", counting_embree)
    fresh = RayCaster(meshes)
    first = [_place(1, "cube", [0, 0, 3]), _place(2, "sphere", [1, 0, 4])]
    second = [
        _place(5, "sphere", [-0.5, 0.2, 2.5]),
        _place(6, "cube", [0.5, 0, 3], s=(2, 1, 1)),
        _place(7, "cube", [0, 1, 6]),
    ]
    for scene in (first, second, first):
        render_full(fresh, scene, None, K, WIDTH, HEIGHT)
    assert built == {"intersectors": 2, "embree": 2}


def test_caster_pickles_without_its_cache(caster: RayCaster) -> None:
    cube = _place(1, "cube", [0.0, 0.0, 3.5])
    caster.geometry("cube")
    copy = pickle.loads(pickle.dumps(caster))
    assert copy._cached_geometry.cache_info().currsize == 0
    assert render_pixels(copy, [cube], None, K, CENTRE).depth[0] == 3.0


def test_cad_index_as_mesh_source(tmp_path) -> None:
    path = tmp_path / "cube.obj"
    trimesh.creation.box(extents=(1.0, 1.0, 1.0)).export(path)
    index = CadIndex([CadEntry("box", path, "cabinet", "none")], source=tmp_path / "cads.json")
    caster = RayCaster(index)
    assert render_pixels(caster, [_place(1, "box", [0, 0, 3.5])], None, K, CENTRE).depth[0] == 3.0
    with pytest.raises(UnknownCadId, match=r"cads\.json.*'chair'"):
        render_pixels(caster, [_place(1, "chair", [0, 0, 3.5])], None, K, CENTRE)


# Shading -------------------------------------------------------------------------------------------


def test_lambert_shading_and_cast_shadow() -> None:
    caster = RayCaster({"cube": trimesh.creation.box(extents=(1.0, 1.0, 1.0))})
    albedo = np.array([0.5, 0.6, 0.7])
    floor_albedo = np.array([0.8, 0.8, 0.8])
    room = Room(floor=Plane([0.0, 1.0, 0.0], LEVEL_UP, floor_albedo))
    cube = _place(1, "cube", [0.0, 0.2, 4.0], s=(1.0, 0.2, 1.0), albedo=albedo)  # a slab floating 0.7 m up
    light = Lighting(towards_light=(0.0, -1.0, 0.0), ambient=0.3, diffuse=0.6)
    pixels = np.array([[80, 100], [10, 110], [80, 68]])  # floor under the slab, open floor, slab front
    samples = render_pixels(caster, [cube], room, K, pixels, light)
    np.testing.assert_array_equal(samples.instance, [0, 0, 1])
    expected = [floor_albedo * 0.3, floor_albedo * 0.9, albedo * 0.3]  # under the slab, lit floor, side face
    np.testing.assert_allclose(samples.rgb, np.round(np.array(expected) * 255) / 255, atol=1e-7)
    no_shadow = render_pixels(caster, [cube], room, K, pixels, Lighting((0.0, -1.0, 0.0), 0.3, 0.6, shadows=False))
    np.testing.assert_allclose(no_shadow.rgb[0], np.round(floor_albedo * 0.9 * 255) / 255, atol=1e-7)


def test_textures_vary_the_albedo_deterministically() -> None:
    points = np.random.default_rng(1).uniform(-1, 1, (3, 1000))
    for pattern in ("stripes", "checker", "planks", "grain"):
        texture = Texture(pattern, period=0.1, contrast=0.25)
        factor = texture_factor(texture, points)
        assert factor.min() >= 0.75 - 1e-12 and factor.max() <= 1.25 + 1e-12, pattern
        assert factor.std() > 0.05, pattern
        np.testing.assert_array_equal(factor, texture_factor(texture, points.copy()))
    np.testing.assert_array_equal(texture_factor(Texture(), points), 1.0)
    checker = Texture("checker", period=0.5, contrast=0.5)
    np.testing.assert_allclose(
        texture_factor(checker, np.array([[0.25, 0.75], [0.25, 0.25], [0.25, 0.25]])), [1.5, 0.5]
    )
    with pytest.raises(ValueError, match="unknown texture pattern 'marble'"):
        Texture("marble")
    with pytest.raises(ValueError, match="contrast"):
        Texture("checker", contrast=1.0)


# Visibility ----------------------------------------------------------------------------------------


def test_pixel_stats_and_boxes_of_an_instance_map() -> None:
    instance = np.full((5, 6), -1, dtype=np.int32)
    instance[1:3, 2:5] = 4
    instance[4, 0] = 4
    instance[0, 5] = 0
    assert object_pixel_stats(instance, [4, 0, 9]) == {4: 7, 0: 1, 9: 0}
    assert instance_boxes(instance, [4, 0, 9]) == {4: [0, 1, 4, 4], 0: [5, 0, 5, 0]}
    with pytest.raises(ValueError, match="integer"):
        object_pixel_stats(instance.astype(float), [4])


def test_visible_fraction_of_a_half_hidden_object(caster: RayCaster) -> None:
    front = _place(1, "cube", [-0.5, 0.0, 3.0])
    back = _place(2, "cube", [0.0, 0.0, 6.0], s=(2.0, 1.0, 1.0))
    frame = render_full(caster, [front, back], None, K, WIDTH, HEIGHT)
    alone = render_object_alone(caster, back, K, WIDTH, HEIGHT)
    reference = render_full(caster, [back], None, K, WIDTH, HEIGHT).instance == 2
    np.testing.assert_array_equal(alone, reference)
    fractions = visible_fractions(caster, [front, back], K, frame.instance)
    assert fractions[1] == 1.0
    visible = int((frame.instance == 2).sum())
    assert fractions[2] == visible / reference.sum()
    assert 0.3 < fractions[2] < 0.8


# Input checks --------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors(caster: RayCaster) -> None:
    cube = _place(1, "cube", [0.0, 0.0, 3.0])
    with pytest.raises(ValueError, match="integer"):
        render_pixels(caster, [cube], None, K, CENTRE.astype(float))
    with pytest.raises(ValueError, match="last row"):
        render_pixels(caster, [cube], None, np.eye(3) * 2, CENTRE)
    with pytest.raises(KeyError, match="no CAD 'table'"):
        render_pixels(caster, [_place(1, "table", [0, 0, 3])], None, K, CENTRE)
    with pytest.raises(ValueError, match="not a rotation"):
        _place(1, "cube", [0, 0, 3], R=np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match="scales must be positive"):
        _place(1, "cube", [0, 0, 3], s=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="instance_id must be >= 1"):
        _place(0, "cube", [0, 0, 3])
    with pytest.raises(ValueError, match="at most 4 walls"):
        Room(Plane([0, 1, 0], LEVEL_UP), walls=tuple(Plane([0, 0, 3], [0, 0, -1]) for _ in range(5)))
    with pytest.raises(ValueError, match="zero vectors"):
        caster.cast([cube], None, np.zeros(3), np.zeros((2, 3)))
