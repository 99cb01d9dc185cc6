"""Procedural CAD library: closed meshes, real sizes and proportions, true symmetry tags,
determinism, variety and the written library."""

from __future__ import annotations

import functools
import json
import re

import numpy as np
import pytest
import trimesh

from multisparc.cad import CadIndex
from multisparc.cad.procedural import PROCEDURAL_STYLES, ProceduralCad, build_library, generate
from multisparc.categories import CATEGORIES, category_info

SEEDS = range(8)

# (min, max) of the bounding-box size along CAD x, y (up), z (front), metres.
SIZE_RANGES = {
    "bathtub": ((1.45, 1.9), (0.45, 0.7), (0.65, 0.9)),
    "bed": ((0.9, 2.0), (0.75, 1.35), (1.95, 2.35)),
    "bin": ((0.18, 0.55), (0.25, 0.75), (0.1, 0.55)),
    "bookshelf": ((0.55, 1.25), (0.85, 2.15), (0.2, 0.45)),
    "cabinet": ((0.55, 1.85), (0.55, 2.25), (0.38, 0.7)),
    "chair": ((0.4, 0.65), (0.75, 1.1), (0.4, 0.7)),
    "display": ((0.5, 1.3), (0.25, 1.0), (0.02, 0.32)),
    "sofa": ((1.4, 2.6), (0.7, 1.0), (0.75, 1.85)),
    "table": ((0.5, 2.05), (0.34, 0.8), (0.4, 1.35)),
}
# Maximal distance (metres) of the turned surface from the original one: a true symmetry stays
# within the polygonal approximation of round parts, a broken one moves some part by centimetres.
MATCH_TOL = 0.003
MISMATCH_MIN = 0.02
# The tag's own turn, and a turn that the tag says must NOT map the model onto itself.
SYMMETRY_TURN_DEG = {"none": None, "2": 180.0, "4": 90.0, "inf": 17.0}
NEXT_SYMMETRY_TURN_DEG = {"none": 180.0, "2": 90.0, "4": 45.0}


@functools.cache
def models(category: str) -> tuple[ProceduralCad, ...]:
    return tuple(generate(category, np.random.default_rng(seed)) for seed in SEEDS)


def all_models() -> list[ProceduralCad]:
    return [cad for category in CATEGORIES for cad in models(category)]


def floor(mesh: trimesh.Trimesh) -> float:
    return float(mesh.bounds[0, 1])


def dominant_plane(mesh: trimesh.Trimesh, axis: int, sign: int, bin_size: float = 0.01) -> tuple[float, float]:
    """Coordinate along `axis` (binned) and total area of the largest set of faces facing
    `sign` * axis at one level: e.g. the seat of a chair for (axis=1, sign=+1)."""
    facing = sign * mesh.face_normals[:, axis] > 0.99
    levels, inverse = np.unique(np.round(mesh.triangles_center[facing, axis] / bin_size), return_inverse=True)
    areas = np.bincount(inverse, weights=mesh.area_faces[facing])
    return float(levels[areas.argmax()] * bin_size), float(areas.max())


def turned_distance(mesh: trimesh.Trimesh, angle_deg: float, count: int = 2000) -> float:
    """Largest distance from the original surface of `count` surface points turned about +Y by angle_deg."""
    points, _ = trimesh.sample.sample_surface(mesh, count, seed=0)
    turn = trimesh.transformations.rotation_matrix(np.radians(angle_deg), (0, 1, 0))[:3, :3]
    _, distances, _ = trimesh.proximity.closest_point(mesh, points @ turn.T)
    return float(distances.max())


def first_hit(mesh: trimesh.Trimesh, origin, direction) -> np.ndarray | None:
    locations, _, _ = mesh.ray.intersects_location([origin], [direction], multiple_hits=True)
    if len(locations) == 0:
        return None
    return locations[np.argmin((locations - origin) @ np.asarray(direction, dtype=float))]


@pytest.mark.parametrize("category", CATEGORIES)
def test_models_are_single_closed_solids_centred_on_their_box(category):
    for cad in models(category):
        mesh = cad.mesh
        assert cad.category == category
        assert mesh.is_watertight and mesh.is_winding_consistent, cad.variant
        assert mesh.volume > 0, cad.variant  # outward normals
        assert mesh.body_count == 1, cad.variant
        assert 12 <= len(mesh.faces) <= 5000, (cad.variant, len(mesh.faces))
        np.testing.assert_allclose(mesh.bounds.mean(axis=0), 0.0, atol=1e-9)


@pytest.mark.parametrize("category", CATEGORIES)
def test_sizes_are_real_furniture_sizes(category):
    info = category_info(category)
    for cad in models(category):
        for axis, (lo, hi) in enumerate(SIZE_RANGES[category]):
            assert lo <= cad.mesh.extents[axis] <= hi, (cad.variant, axis, cad.mesh.extents)
        # inside the class's size range that scene sampling and initialisation assume
        assert np.all(cad.mesh.extents >= info.min_size) and np.all(cad.mesh.extents <= info.max_size)


@pytest.mark.slow
@pytest.mark.parametrize("category", CATEGORIES)
def test_symmetry_tags_are_true_and_not_larger(category):
    for cad in models(category):
        assert cad.sym in SYMMETRY_TURN_DEG
        own_turn = SYMMETRY_TURN_DEG[cad.sym]
        if own_turn is not None:
            assert turned_distance(cad.mesh, own_turn) < MATCH_TOL, (cad.variant, cad.sym)
        if cad.sym != "inf":
            next_turn = NEXT_SYMMETRY_TURN_DEG[cad.sym]
            assert turned_distance(cad.mesh, next_turn) > MISMATCH_MIN, (cad.variant, cad.sym)


def test_round_parts_give_the_expected_tags():
    tables = [generate("table", np.random.default_rng(seed)) for seed in range(40)]
    for cad in tables:
        top, base = cad.variant.split("/")[:2]
        if base == "trestle" or top == "rectangular":
            assert cad.sym == "2"
        elif base == "pedestal" and top == "round":
            assert cad.sym == "inf"
        else:
            assert cad.sym == "4"
    assert {cad.sym for cad in tables} == {"2", "4", "inf"}
    bins = [generate("bin", np.random.default_rng(seed)) for seed in range(20)]
    assert all((cad.sym == "inf") == cad.variant.startswith("round") for cad in bins)


@pytest.mark.parametrize("category", ["chair", "sofa"])
def test_seats_are_at_sitting_height_with_the_back_at_minus_z(category):
    for cad in models(category):
        seat_y, _ = dominant_plane(cad.mesh, axis=1, sign=1)
        assert 0.38 <= seat_y - floor(cad.mesh) <= 0.5, cad.variant
        vertices = cad.mesh.vertices
        top = vertices[vertices[:, 1] > vertices[:, 1].max() - 0.02]
        assert top[:, 2].mean() < 0, cad.variant


def test_beds_are_long_low_with_the_headboard_at_minus_z():
    for cad in models("bed"):
        x, _, z = cad.mesh.extents
        assert z > x
        mattress_y, mattress_area = dominant_plane(cad.mesh, axis=1, sign=1)
        assert 0.4 <= mattress_y - floor(cad.mesh) <= 0.7 < 0.9
        assert mattress_area > 0.6 * x * 1.9  # the mattress top spans most of the bed
        vertices = cad.mesh.vertices
        assert vertices[vertices[:, 1] > vertices[:, 1].max() - 0.02][:, 2].max() < -0.9


def test_table_tops_are_at_the_top_and_cover_the_footprint():
    for cad in models("table"):
        y = cad.mesh.extents[1]
        top_y, top_area = dominant_plane(cad.mesh, axis=1, sign=1)
        assert top_y == pytest.approx(cad.mesh.bounds[1, 1], abs=0.006)
        footprint = cad.params["length"] * cad.params["width"]
        assert top_area > (0.7 if cad.variant.startswith("round") else 0.95) * footprint
        assert y == pytest.approx(cad.params["height"], abs=1e-6)
        dining = cad.variant.endswith("dining")
        assert (0.7 <= y <= 0.78) if dining else (0.35 <= y <= 0.5)


def test_displays_are_thin_panels_facing_plus_z():
    for cad in models("display"):
        x, _, z = cad.mesh.extents
        assert z < 0.45 * x
        if cad.variant == "wall":
            assert z < 0.09
        screen_z, screen_area = dominant_plane(cad.mesh, axis=2, sign=1)
        assert screen_area > 0.8 * cad.params["width"] * cad.params["panel_height"]
        back_z, _ = dominant_plane(cad.mesh, axis=2, sign=-1)
        assert screen_z > back_z


def test_bookshelves_are_tall_shallow_and_open_at_the_front():
    for cad in models("bookshelf"):
        x, y, z = cad.mesh.extents
        assert y > 2 * z and x > z
        # horizontal rays from the front through the left compartments
        heights = np.linspace(floor(cad.mesh) + 0.1, cad.mesh.bounds[1, 1] - 0.1, 25)
        hits = [first_hit(cad.mesh, (-x / 4, height, 1.0), (0.0, 0.0, -1.0)) for height in heights]
        assert all(hit is not None for hit in hits) == cad.params["closed_back"], cad.variant
        reach_the_back = [hit is None or hit[2] < -z / 2 + 0.02 for hit in hits]
        assert np.mean(reach_the_back) > 0.7, cad.variant


def test_open_bins_and_bathtubs_are_hollow():
    for cad in models("bin"):
        hull_fraction = cad.mesh.volume / cad.mesh.convex_hull.volume
        assert (hull_fraction > 0.8) if cad.params["lid"] else (hull_fraction < 0.35), cad.variant
    for cad in models("bathtub"):
        top = cad.mesh.bounds[1, 1]
        basin = first_hit(cad.mesh, (0.0, top + 1.0, 0.0), (0.0, -1.0, 0.0))
        assert basin is not None
        assert basin[1] - floor(cad.mesh) < 0.2, cad.variant
        assert floor(cad.mesh) + cad.params["height"] - basin[1] > 0.3, cad.variant


def test_cabinets_have_fronts_and_handles_at_plus_z():
    for cad in models("cabinet"):
        front_z, front_area = dominant_plane(cad.mesh, axis=2, sign=1)
        x, y, _ = cad.mesh.extents
        assert front_area > 0.6 * x * y
        assert 0.015 <= cad.mesh.bounds[1, 2] - front_z <= 0.035  # handles stand out of the fronts


@pytest.mark.parametrize("category", CATEGORIES)
def test_same_seed_gives_identical_mesh_files(category):
    a = generate(category, np.random.default_rng(1234))
    b = generate(category, np.random.default_rng(1234))
    assert a.variant == b.variant and a.params == b.params and a.sym == b.sym
    assert a.mesh.export(file_type="ply") == b.mesh.export(file_type="ply")


@pytest.mark.parametrize("category", CATEGORIES)
def test_seeds_give_varied_models(category):
    extents = np.array([cad.mesh.extents for cad in models(category)])
    distances = np.linalg.norm(extents[:, None] - extents[None], axis=-1)
    assert distances[np.triu_indices(len(SEEDS), 1)].min() > 1e-3
    assert len({cad.variant for cad in models(category)}) >= 2


def test_unknown_category_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"lamp.*bathtub, bed, bin, bookshelf, cabinet, chair, display, sofa, table"):
        generate("lamp", np.random.default_rng(0))


def test_aliases_give_the_canonical_class():
    assert generate("trashbin", np.random.default_rng(0)).category == "bin"


def test_build_library_writes_loadable_deterministic_index(tmp_path):
    cads_json = build_library(tmp_path / "a", per_class=2, seed=7)
    assert cads_json == tmp_path / "a" / "cads.json"
    index = json.loads(cads_json.read_text())
    assert sorted(index) == sorted(f"proc_{c}_{k:03d}" for c in CATEGORIES for k in range(2))
    for cad_id, entry in index.items():
        assert entry["path"] == f"{entry['category']}/{cad_id.removeprefix('proc_')}.ply"
        assert entry["sym"] in SYMMETRY_TURN_DEG
    loaded = CadIndex.load(cads_json)
    assert len(loaded) == 2 * len(CATEGORIES)
    for cad_id in loaded:
        mesh = loaded.mesh(cad_id)
        assert mesh.is_watertight and mesh.volume > 0
        assert loaded[cad_id].sym == index[cad_id]["sym"]
    again = build_library(tmp_path / "b", per_class=2, seed=7)
    other = build_library(tmp_path / "c", per_class=2, seed=8)
    for entry in index.values():
        data = (cads_json.parent / entry["path"]).read_bytes()
        assert data == (again.parent / entry["path"]).read_bytes()
        assert data != (other.parent / entry["path"]).read_bytes()
    assert again.read_text() == cads_json.read_text()


def test_build_library_rejects_empty_classes(tmp_path):
    with pytest.raises(ValueError, match="per_class"):
        build_library(tmp_path, per_class=0)


# The wide style is tested on this many models a class, drawn from one stream per class as in build_library.
WIDE_DRAWS = 10


@functools.cache
def wide_models(category: str) -> tuple[ProceduralCad, ...]:
    rng = np.random.default_rng([11, CATEGORIES.index(category)])
    return tuple(generate(category, rng, style="wide") for _ in range(WIDE_DRAWS))


@pytest.mark.slow
@pytest.mark.parametrize("category", CATEGORIES)
def test_wide_models_are_closed_solids_of_real_size(category):
    info = category_info(category)
    for cad in wide_models(category):
        mesh = cad.mesh
        assert cad.category == category
        assert mesh.is_watertight and mesh.is_winding_consistent, cad.variant
        assert mesh.volume > 0, cad.variant
        assert mesh.body_count == 1, cad.variant
        assert 12 <= len(mesh.faces) <= 5000, (cad.variant, len(mesh.faces))
        np.testing.assert_allclose(mesh.bounds.mean(axis=0), 0.0, atol=1e-9)
        extents = mesh.extents
        assert np.all(extents >= info.min_size) and np.all(extents <= info.max_size), (cad.variant, extents)


@pytest.mark.slow
@pytest.mark.parametrize("category", CATEGORIES)
def test_wide_symmetry_tags_are_true_and_not_larger(category):
    # fewer surface points than the classic check keeps this fast; the tolerances stay the same
    for cad in wide_models(category):
        own_turn = SYMMETRY_TURN_DEG[cad.sym]
        if own_turn is not None:
            assert turned_distance(cad.mesh, own_turn, 600) < MATCH_TOL, (cad.variant, cad.sym)
        if cad.sym != "inf":
            next_turn = NEXT_SYMMETRY_TURN_DEG[cad.sym]
            assert turned_distance(cad.mesh, next_turn, 600) > MISMATCH_MIN, (cad.variant, cad.sym)


def upper_part_z(mesh: trimesh.Trimesh) -> float:
    """Area-weighted mean z of the faces in the top 40 % of the model's height, over its depth."""
    low, high = mesh.bounds[:, 1]
    upper = mesh.triangles_center[:, 1] > low + 0.6 * (high - low)
    return float(np.average(mesh.triangles_center[upper, 2], weights=mesh.area_faces[upper])) / mesh.extents[2]


@pytest.mark.parametrize("category", ["chair", "sofa"])
def test_wide_backs_are_at_minus_z(category):
    with_backs = [cad for cad in wide_models(category) if cad.sym == "none"]  # backless stools have no front
    assert with_backs
    for cad in with_backs:
        assert upper_part_z(cad.mesh) < -0.03, cad.variant


def test_wide_beds_have_the_headboard_at_minus_z():
    for cad in wide_models("bed"):
        x, _, z = cad.mesh.extents
        assert z > x
        vertices = cad.mesh.vertices
        top = vertices[vertices[:, 1] > vertices[:, 1].max() - 0.02]
        assert top[:, 2].max() < cad.mesh.bounds[0, 2] + 0.2, cad.variant


@functools.cache
def library_variants(category: str, style: str) -> tuple[str, ...]:
    """Variants of the 24 models of `category` in a library of seed 0 in `style`."""
    rng = np.random.default_rng([0, CATEGORIES.index(category)])
    return tuple(generate(category, rng, style=style).variant for _ in range(24))


@pytest.mark.slow
@pytest.mark.parametrize("category", CATEGORIES)
def test_wide_gives_more_distinct_variants_than_classic(category):
    counts = {style: len(set(library_variants(category, style))) for style in PROCEDURAL_STYLES}
    assert counts["wide"] > counts["classic"], counts


@pytest.mark.slow
@pytest.mark.parametrize("category", CATEGORIES)
def test_classic_style_is_the_default_and_draws_the_same(category):
    a_rng, b_rng = np.random.default_rng(77), np.random.default_rng(77)
    a, b = generate(category, a_rng), generate(category, b_rng, style="classic")
    assert a.variant == b.variant and a.params == b.params and a.sym == b.sym
    assert a.mesh.export(file_type="ply") == b.mesh.export(file_type="ply")
    assert a_rng.random() == b_rng.random()  # the same number of draws


# The classic variant grammar of each class, as it was before the wide style existed.
CLASSIC_VARIANTS = {
    "bathtub": r"(rounded|rectangular)/(feet|floor)",
    "bed": r"(double|single)/(box_base|legs)(/footboard)?",
    "bin": r"(round|square|oblong)/(tapered|straight)/(lid|open)",
    "bookshelf": r"(closed|open)_back/\d+_levels(/divider)?",
    "cabinet": r"(sideboard|wardrobe|chest)/(legs|plinth)/(doors|drawers)_\d+x\d+(\+(doors|drawers)_\d+x\d+)*",
    "chair": r"(four_legs|pedestal|sled)/(panel|slats)/(arms|no_arms)",
    "display": r"stand_plate|stand_feet|wall",
    "sofa": r"(straight|l_shape_left|l_shape_right)/[23]_seats/(rolled_arms|square_arms|no_arms)",
    "table": r"(rectangular|square|round)/(four_legs_round|four_legs_square|pedestal|trestle)/(dining|coffee)",
}
# The first library models (seed 0) of the classic style, which the benchmark sets are built from.
CLASSIC_FIRST_VARIANTS = {
    "bathtub": ["rectangular/feet", "rectangular/floor", "rectangular/feet", "rectangular/floor"],
    "bed": ["single/legs", "double/box_base", "double/box_base", "double/box_base/footboard"],
    "bin": ["round/tapered/lid", "round/tapered/open", "square/tapered/open", "round/tapered/open"],
    "bookshelf": [
        "open_back/6_levels/divider",
        "open_back/3_levels/divider",
        "closed_back/5_levels/divider",
        "closed_back/5_levels/divider",
    ],
    "cabinet": [
        "wardrobe/plinth/doors_1x2+drawers_1x2",
        "sideboard/legs/drawers_1x3+doors_1x3",
        "chest/legs/drawers_6x2",
        "wardrobe/plinth/doors_1x2+drawers_1x2",
    ],
    "chair": ["four_legs/panel/no_arms", "pedestal/slats/no_arms", "sled/panel/no_arms", "pedestal/slats/arms"],
    "display": ["stand_feet", "stand_feet", "wall", "stand_feet"],
    "sofa": [
        "straight/3_seats/rolled_arms",
        "straight/2_seats/rolled_arms",
        "l_shape_left/2_seats/rolled_arms",
        "l_shape_right/2_seats/rolled_arms",
    ],
    "table": [
        "round/trestle/coffee",
        "rectangular/four_legs_round/coffee",
        "square/pedestal/coffee",
        "square/pedestal/dining",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("category", CATEGORIES)
def test_classic_variants_keep_their_old_names_and_order(category):
    variants = library_variants(category, "classic")
    assert all(re.fullmatch(CLASSIC_VARIANTS[category], variant) for variant in variants), variants
    assert list(variants[:4]) == CLASSIC_FIRST_VARIANTS[category]


def test_unknown_style_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"style 'fancy'.*classic, wide"):
        generate("chair", np.random.default_rng(0), style="fancy")
    with pytest.raises(ValueError, match="style"):
        build_library(tmp_path, per_class=1, style="fancy")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_build_library_wide_is_deterministic_and_loadable(tmp_path):
    cads_json = build_library(tmp_path / "a", per_class=1, seed=3, style="wide")
    again = build_library(tmp_path / "b", per_class=1, seed=3, style="wide")
    classic = build_library(tmp_path / "c", per_class=1, seed=3)
    assert again.read_text() == cads_json.read_text()
    loaded = CadIndex.load(cads_json)
    assert len(loaded) == len(CATEGORIES)
    changed = 0
    for cad_id, entry in json.loads(cads_json.read_text()).items():
        assert loaded.mesh(cad_id).is_watertight
        data = (cads_json.parent / entry["path"]).read_bytes()
        assert data == (again.parent / entry["path"]).read_bytes()
        changed += data != (classic.parent / entry["path"]).read_bytes()
    assert changed > 0  # the styles share the streams but not the models
