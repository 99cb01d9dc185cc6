"""Tests of multisparc.cad: mesh loading, outward surface samples, the sample cache and the CAD index."""

from __future__ import annotations

import json
import pickle
import re
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh

import multisparc.cad.sampling as sampling_module
from multisparc.cad import (
    CadEmptyMesh,
    CadEntry,
    CadError,
    CadFileNotFound,
    CadFormatError,
    CadIndex,
    CadIndexError,
    CadInvalidGeometry,
    SampleCache,
    UnknownCadId,
    default_cache_root,
    load_mesh,
    sample_surface,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CAD_DATA = DATA / "cad"
SWEETHOME3D = CAD_DATA / "sweethome3d"
MISC = CAD_DATA / "misc"
NO_CAD_DATA = f"shared CAD data not found at {CAD_DATA}"
SHARED_MESHES = sorted(p for p in CAD_DATA.rglob("*") if p.suffix in (".obj", ".off")) if CAD_DATA.is_dir() else []


@pytest.fixture(autouse=True)
def _private_sample_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every default SampleCache of these tests out of the user's home."""
    monkeypatch.setenv("MULTISPARC_CACHE", str(tmp_path / "cache"))


def _box_file(folder: Path, name: str = "box.obj", extents=(1.0, 2.0, 0.5), centre=(0.0, 0.0, 0.0)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    box = trimesh.creation.box(extents=extents)
    box.apply_translation(centre)
    path = folder / name
    box.export(path)
    return path


def _outward_fraction(points: np.ndarray, normals: np.ndarray, centre: np.ndarray) -> float:
    return float(np.mean(np.einsum("ij,ij->i", normals, points - centre) > 0))


# Loading ------------------------------------------------------------------------------------------


@pytest.mark.skipif(not CAD_DATA.is_dir(), reason=NO_CAD_DATA)
@pytest.mark.parametrize("path", SHARED_MESHES, ids=lambda p: p.name)
def test_every_shared_mesh_loads_with_finite_positive_extent(path: Path) -> None:
    mesh = load_mesh(path)
    assert isinstance(mesh, trimesh.Trimesh)
    assert len(mesh.faces) > 0
    assert np.all(np.isfinite(mesh.vertices))
    assert np.all(np.isfinite(mesh.extents)) and np.all(mesh.extents > 0)


@pytest.mark.slow
@pytest.mark.skipif(not CAD_DATA.is_dir(), reason=NO_CAD_DATA)
def test_watertightness_is_reported_not_required() -> None:
    watertight = {path.name: load_mesh(path).is_watertight for path in SHARED_MESHES}
    assert not watertight["cornerSofa.obj"] and not watertight["bookcase.obj"]
    assert watertight["table.obj"] and watertight["bed140x190.obj"]


@pytest.mark.skipif(not MISC.is_dir(), reason=NO_CAD_DATA)
def test_obj_with_objects_and_materials_is_merged_into_one_mesh() -> None:
    lines = (MISC / "chair_model.obj").read_text().splitlines()
    triangles = sum(len(line.split()) - 3 for line in lines if line.startswith("f "))
    assert sum(line.startswith("o ") for line in lines) > 1
    mesh = load_mesh(MISC / "chair_model.obj")
    assert len(mesh.faces) == triangles == 12756


@pytest.mark.skipif(not MISC.is_dir(), reason=NO_CAD_DATA)
def test_off_file_loads_all_faces() -> None:
    counts = (MISC / "chair.off").read_text().splitlines()[1].split()
    assert len(load_mesh(MISC / "chair.off").faces) == int(counts[1]) == 1804


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".off", ".stl", ".glb"])
def test_formats_round_trip_a_box(tmp_path: Path, suffix: str) -> None:
    path = _box_file(tmp_path, f"box{suffix}", centre=(0.5, 1.0, -2.0))
    mesh = load_mesh(path)
    np.testing.assert_allclose(mesh.extents, [1.0, 2.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(mesh.bounds.mean(axis=0), [0.5, 1.0, -2.0], atol=1e-6)
    assert len(mesh.vertices) == 8  # duplicates merged
    assert mesh.is_watertight and mesh.volume == pytest.approx(1.0)


def test_gltf_scene_parts_are_placed_by_their_transforms(tmp_path: Path) -> None:
    scene = trimesh.Scene()
    scene.add_geometry(
        trimesh.creation.box(extents=(1, 1, 1)), transform=trimesh.transformations.translation_matrix((-2, 0, 0))
    )
    scene.add_geometry(
        trimesh.creation.box(extents=(1, 1, 1)), transform=trimesh.transformations.translation_matrix((2, 0, 0))
    )
    path = tmp_path / "two.glb"
    scene.export(path)
    mesh = load_mesh(path)
    assert len(mesh.faces) == 24
    np.testing.assert_allclose(mesh.bounds, [[-2.5, -0.5, -0.5], [2.5, 0.5, 0.5]], atol=1e-6)


def test_unit_scale_multiplies_coordinates(tmp_path: Path) -> None:
    path = _box_file(tmp_path, centre=(1.0, 1.0, 1.0))
    np.testing.assert_allclose(load_mesh(path, unit_scale=0.01).extents, [0.01, 0.02, 0.005])
    scaled = load_mesh(path, unit_scale=(2.0, 1.0, 4.0))
    np.testing.assert_allclose(scaled.extents, [2.0, 2.0, 2.0])
    np.testing.assert_allclose(scaled.bounds.mean(axis=0), [2.0, 1.0, 4.0])
    with pytest.raises(ValueError, match=r"unit_scale"):
        load_mesh(path, unit_scale=(1.0, -1.0, 1.0))


def test_shapenet_model_folder_resolves_to_model_normalized(tmp_path: Path) -> None:
    model = tmp_path / "03001627" / "abc123"
    _box_file(model / "models", "model_normalized.obj")
    np.testing.assert_allclose(load_mesh(model).extents, [1.0, 2.0, 0.5])
    with pytest.raises(CadFileNotFound, match=r"model_normalized.obj"):
        load_mesh(tmp_path / "03001627")


# Bad input ----------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CadFileNotFound, match=r"nothing.obj"):
        load_mesh(tmp_path / "nothing.obj")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.obj").write_bytes(b"")
    with pytest.raises(CadEmptyMesh, match=r"empty.obj"):
        load_mesh(tmp_path / "empty.obj")


@pytest.mark.parametrize("name", ["garbage.obj", "garbage.ply", "garbage.glb", "garbage.off"])
def test_garbage_bytes(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with pytest.raises(CadError, match=name) as raised:
        load_mesh(tmp_path / name)
    assert isinstance(raised.value, CadFormatError | CadEmptyMesh)
    assert raised.value.path == tmp_path / name


def test_text_without_faces(tmp_path: Path) -> None:
    (tmp_path / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(CadEmptyMesh, match=r"points.obj: no triangles"):
        load_mesh(tmp_path / "points.obj")


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_non_finite_vertex(tmp_path: Path, bad: str) -> None:
    text = f"v 0 0 0\nv 1 0 0\nv {bad} 1 0\nv 0 0 1\nf 1 2 3\nf 1 3 4\nf 1 2 4\nf 2 3 4\n"
    (tmp_path / "nan.obj").write_text(text)
    with pytest.raises(CadInvalidGeometry, match=r"nan.obj: 1 vertices used by faces are NaN or infinite"):
        load_mesh(tmp_path / "nan.obj")


def test_flat_and_degenerate_meshes(tmp_path: Path) -> None:
    (tmp_path / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 2 4 3\n")
    with pytest.raises(CadInvalidGeometry, match=r"flat.obj: bounding box is flat"):
        load_mesh(tmp_path / "flat.obj")
    (tmp_path / "line.obj").write_text("v 0 0 0\nv 1 1 1\nv 2 2 2\nf 1 2 3\n")
    with pytest.raises(CadInvalidGeometry, match=r"line.obj: all triangles are degenerate"):
        load_mesh(tmp_path / "line.obj")


def test_unsupported_suffix(tmp_path: Path) -> None:
    (tmp_path / "model.fbx").write_bytes(b"\x00" * 10)
    with pytest.raises(CadFormatError, match=r"model.fbx: unsupported mesh format"):
        load_mesh(tmp_path / "model.fbx")


# Sampling -----------------------------------------------------------------------------------------


def _box(extents=(1.0, 2.0, 0.5)) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=extents)


def _half_flipped_box() -> trimesh.Trimesh:
    box = _box()
    faces = box.faces.copy()
    faces[::2] = faces[::2, ::-1]
    return trimesh.Trimesh(box.vertices, faces, process=False)


def _doubled_box() -> trimesh.Trimesh:
    box = _box()
    return trimesh.Trimesh(box.vertices, np.vstack([box.faces, box.faces[:, ::-1]]), process=False)


def _randomly_flipped_sphere() -> trimesh.Trimesh:
    sphere = trimesh.creation.icosphere(subdivisions=4)
    faces = sphere.faces.copy()
    flip = np.random.default_rng(7).random(len(faces)) < 0.5
    faces[flip] = faces[flip, ::-1]
    return trimesh.Trimesh(sphere.vertices, faces, process=False)


@pytest.mark.parametrize("build", [_half_flipped_box, _doubled_box, _randomly_flipped_sphere])
def test_normals_point_outward_on_closed_broken_meshes(build) -> None:
    mesh = build()
    centre = mesh.bounds.mean(axis=0)
    naive_points, naive_faces = trimesh.sample.sample_surface(mesh, 4000, seed=1)
    # The mesh really breaks winding-based normals: about half of them point inward.
    assert _outward_fraction(naive_points, mesh.face_normals[naive_faces], centre) < 0.75
    points, normals = sample_surface(mesh, 4000, seed=1)
    assert _outward_fraction(points, normals, centre) >= 0.99


def test_normals_point_outward_on_open_box_walls() -> None:
    box = _box()
    open_box = trimesh.Trimesh(box.vertices, box.faces[box.face_normals[:, 1] < 0.5], process=False)
    assert not open_box.is_watertight
    points, normals = sample_surface(open_box, 4000, seed=2)
    walls = np.abs(normals[:, 1]) < 0.5
    assert walls.sum() > 2000
    assert _outward_fraction(points[walls], normals[walls], np.zeros(3)) >= 0.99
    floor = ~walls
    assert np.mean(normals[floor, 1] < 0) >= 0.99  # the floor is seen from below, the only outside


def test_hidden_samples_of_interpenetrating_parts_are_outward_for_their_own_part() -> None:
    seat = trimesh.creation.box(extents=(1.0, 0.2, 1.0))
    leg = trimesh.creation.box(extents=(0.2, 1.0, 0.2))
    leg.apply_translation((0.0, -0.3, 0.0))
    leg.invert()  # wound inside out: only the ray test against the leg alone can orient it
    mesh = trimesh.util.concatenate([seat, leg])
    points, normals = sample_surface(mesh, 4000, seed=5)
    on_leg_side = np.isclose(np.abs(points[:, 0]), 0.1, atol=1e-6) | np.isclose(np.abs(points[:, 2]), 0.1, atol=1e-6)
    hidden = on_leg_side & (np.abs(points[:, 1]) < 0.1)  # leg walls inside the seat, seen from nowhere
    assert hidden.sum() > 50
    from_leg_axis = points[hidden] * np.array([1.0, 0.0, 1.0], dtype=np.float32)
    assert np.all(np.einsum("ij,ij->i", normals[hidden], from_leg_axis) > 0)
    visible_leg = on_leg_side & (points[:, 1] < -0.1)
    assert _outward_fraction(points[visible_leg], normals[visible_leg] * [1, 0, 1], np.zeros(3)) >= 0.99


def test_samples_lie_on_the_surface_area_weighted_with_unit_normals() -> None:
    points, normals = sample_surface(_box(), 20000, seed=3)
    assert points.shape == normals.shape == (20000, 3)
    assert points.dtype == normals.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    half = np.array([0.5, 1.0, 0.25], dtype=np.float32)
    on_face = np.isclose(np.abs(points), half, atol=1e-5)
    assert np.all(on_face.any(axis=1))
    # x faces: 2 * (2 * 0.5) of a total area 2 * (1 * 2 + 2 * 0.5 + 1 * 0.5) = 7.
    assert np.mean(on_face[:, 0]) == pytest.approx(2 / 7, abs=0.015)


def test_sampling_is_reproducible_per_seed() -> None:
    mesh = _randomly_flipped_sphere()
    first, second, other = sample_surface(mesh, 500, 4), sample_surface(mesh, 500, 4), sample_surface(mesh, 500, 5)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.allclose(first[0], other[0])


def test_sampling_is_fast() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=5)  # 20480 faces, a quarter of them flipped
    faces = sphere.faces.copy()
    faces[::4] = faces[::4, ::-1]
    mesh = trimesh.Trimesh(sphere.vertices, faces, process=False)
    start = time.perf_counter()
    points, normals = sample_surface(mesh, 10000, seed=0)
    assert time.perf_counter() - start < 1.0
    assert _outward_fraction(points, normals, np.zeros(3)) >= 0.99


def test_sampling_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"n must be at least 1"):
        sample_surface(_box(), 0, seed=0)


# Sample cache -------------------------------------------------------------------------------------


def test_cache_serves_the_second_call_from_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mesh_path = _box_file(tmp_path / "meshes")
    cache = SampleCache(tmp_path / "samples")
    first = cache.get(mesh_path, 300, seed=1, unit_scale=(1.0, 2.0, 1.0))
    assert cache.file_for(mesh_path, 300, seed=1, unit_scale=(1.0, 2.0, 1.0)).is_file()
    assert np.abs(first[0][:, 1]).max() == pytest.approx(2.0)  # unit_scale applied before sampling

    def no_loading(*args, **kwargs):
        raise AssertionError("the mesh was loaded although its samples are cached")

    monkeypatch.setattr(sampling_module, "load_mesh", no_loading)
    second = cache.get(mesh_path, 300, seed=1, unit_scale=(1.0, 2.0, 1.0))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    monkeypatch.undo()
    other = cache.get(mesh_path, 300, seed=2, unit_scale=(1.0, 2.0, 1.0))
    assert not np.allclose(first[0], other[0])
    assert not list(cache.root.glob("*.tmp"))


def test_cache_key_follows_content_and_arguments(tmp_path: Path) -> None:
    cache = SampleCache(tmp_path / "samples")
    path = _box_file(tmp_path)
    key = cache.key(path, 100, 0)
    copy = tmp_path / "elsewhere" / "renamed.obj"
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    assert cache.key(copy, 100, 0) == key
    assert len({key, cache.key(path, 101, 0), cache.key(path, 100, 1), cache.key(path, 100, 0, 2.0)}) == 4
    _box_file(tmp_path, extents=(1.0, 1.0, 1.0))
    assert cache.key(path, 100, 0) != key


def test_default_cache_root_follows_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_cache_root() == tmp_path / "cache" / "samples"
    monkeypatch.delenv("MULTISPARC_CACHE")
    assert default_cache_root() == Path.home() / ".cache" / "multisparc" / "samples"


# CAD index ----------------------------------------------------------------------------------------


def _write_cads_json(folder: Path, records: dict | str) -> Path:
    path = folder / "cads.json"
    path.write_text(records if isinstance(records, str) else json.dumps(records))
    return path


def test_index_load_save_round_trip(tmp_path: Path) -> None:
    _box_file(tmp_path / "meshes", "box.obj", centre=(0.0, 1.0, 0.0))
    _box_file(tmp_path / "meshes", "cube.ply", extents=(1.0, 1.0, 1.0))
    records = {
        "box": {"path": "meshes/box.obj", "category": "cabinet", "sym": "2", "unit_scale": [0.5, 0.5, 0.5]},
        "cube": {"path": "meshes/cube.ply", "category": "trashbin", "sym": "4", "extra": "ignored"},
    }
    index = CadIndex.load(_write_cads_json(tmp_path, records))
    assert len(index) == 2 and list(index) == ["box", "cube"] and "box" in index and "sofa" not in index
    assert index["box"] == CadEntry("box", tmp_path / "meshes" / "box.obj", "cabinet", "2", (0.5, 0.5, 0.5))
    assert index["cube"].category == "bin" and index["cube"].unit_scale is None
    assert index.ids_of("bin") == ["cube"] and index.ids_of("trashbin") == ["cube"] and index.ids_of("sofa") == []
    np.testing.assert_allclose(index.extent("box"), [0.5, 1.0, 0.25])
    np.testing.assert_allclose(index.centre("box"), [0.0, 0.5, 0.0])

    saved = index.save(tmp_path / "copy" / "cads.json")
    written = json.loads(saved.read_text())
    assert written["box"] == {"path": "../meshes/box.obj", "category": "cabinet", "sym": "2", "unit_scale": [0.5] * 3}
    assert written["cube"] == {"path": "../meshes/cube.ply", "category": "bin", "sym": "4"}
    reloaded = CadIndex.load(saved)
    assert dict(reloaded) == dict(index)


def test_index_caches_meshes_and_points(tmp_path: Path) -> None:
    _box_file(tmp_path / "meshes")
    index = CadIndex.load(
        _write_cads_json(tmp_path, {"box": {"path": "meshes/box.obj", "category": "bed", "sym": "none"}}),
        cache=SampleCache(tmp_path / "samples"),
    )
    assert index.mesh("box") is index.mesh("box")
    points, normals = index.points("box", 200, seed=3)
    assert points.shape == (200, 3) and not points.flags.writeable and not normals.flags.writeable
    assert index.points("box", 200, seed=3)[0] is points
    assert len(list((tmp_path / "samples").glob("*.npz"))) == 1
    revived = pickle.loads(pickle.dumps(index))
    np.testing.assert_array_equal(revived.points("box", 200, seed=3)[0], points)
    np.testing.assert_allclose(revived.extent("box"), [1.0, 2.0, 0.5])


def test_unknown_cad_id_names_the_index(tmp_path: Path) -> None:
    _box_file(tmp_path / "meshes")
    path = _write_cads_json(tmp_path, {"box": {"path": "meshes/box.obj", "category": "bed", "sym": "none"}})
    index = CadIndex.load(path)
    with pytest.raises(UnknownCadId, match=r"cads.json: unknown CAD id 'sofa_1'"):
        index.mesh("sofa_1")
    with pytest.raises(CadIndexError):
        index["sofa_1"]
    assert index.get("sofa_1") is None  # also a KeyError, so mapping idioms work


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"box": {"path": "meshes/box.obj",\n "category": "bed" "sym": "none"}}', r"malformed JSON at line 2"),
        ('["box"]', "expected a JSON object"),
        ('{"box": "meshes/box.obj"}', "entry 'box' must be an object"),
        ('{"box": {"path": "meshes/box.obj", "category": "bed"}}', "entry 'box' lacks key.s. sym"),
        ('{"box": {"path": "meshes/box.obj", "category": "lamp", "sym": "none"}}', "unknown category 'lamp'"),
        ('{"box": {"path": "meshes/box.obj", "category": "bed", "sym": "3"}}', "unknown symmetry '3'"),
        ('{"box": {"path": "meshes/gone.obj", "category": "bed", "sym": "none"}}', "gone.obj does not exist"),
        (
            '{"box": {"path": "meshes/box.obj", "category": "bed", "sym": "none", "unit_scale": [1, 0]}}',
            "unit_scale must be 3 positive",
        ),
    ],
)
def test_bad_cads_json(tmp_path: Path, content: str, message: str) -> None:
    _box_file(tmp_path / "meshes")
    path = _write_cads_json(tmp_path, content)
    with pytest.raises(CadIndexError, match=message) as raised:
        CadIndex.load(path)
    assert str(raised.value).startswith(f"{path}: ")


def test_missing_cads_json(tmp_path: Path) -> None:
    with pytest.raises(CadFileNotFound, match=r"cads.json: no such CAD index file"):
        CadIndex.load(tmp_path / "cads.json")


def test_entry_validates_its_fields(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown category"):
        CadEntry("x", tmp_path / "x.obj", "lamp", "none")
    with pytest.raises(ValueError, match=r"unknown symmetry"):
        CadEntry("x", tmp_path / "x.obj", "bed", "8")
    assert CadEntry("x", Path("x.obj"), "bed", "none").path.is_absolute()


def test_from_folder_with_category_folders_and_shapenet_layout(tmp_path: Path) -> None:
    _box_file(tmp_path / "lib" / "table", "t1.obj")
    _box_file(tmp_path / "lib" / "trashbin", "b1.ply")
    _box_file(tmp_path / "lib" / "03001627" / "abc123" / "models", "model_normalized.obj")
    index = CadIndex.from_folder(tmp_path / "lib")
    assert sorted(index) == ["03001627_abc123", "table_t1", "trashbin_b1"]
    assert index["table_t1"].category == "table" and index["table_t1"].sym == "2"  # the class default
    assert index["trashbin_b1"].category == "bin" and index["trashbin_b1"].sym == "inf"
    assert index["03001627_abc123"].category == "chair"
    assert index["03001627_abc123"].path == tmp_path / "lib" / "03001627" / "abc123"
    np.testing.assert_allclose(index.extent("03001627_abc123"), [1.0, 2.0, 0.5])

    by_callable = CadIndex.from_folder(tmp_path / "lib", lambda path: "cabinet" if path.suffix == ".obj" else None)
    assert sorted(by_callable) == ["table_t1"] and by_callable["table_t1"].category == "cabinet"
    with pytest.raises(CadIndexError, match=r"entry 'table_t1': unknown category 'lamp'"):
        CadIndex.from_folder(tmp_path / "lib", {"table_t1": "lamp"})


def test_from_folder_errors(tmp_path: Path) -> None:
    _box_file(tmp_path / "stuff", "thing.obj")
    with pytest.raises(CadIndexError, match=r"folder 'stuff' is no class name"):
        CadIndex.from_folder(tmp_path / "stuff")
    with pytest.raises(CadIndexError, match=r"no mesh files"):
        CadIndex.from_folder(tmp_path / "stuff", {})
    with pytest.raises(CadFileNotFound, match=r"no such CAD folder"):
        CadIndex.from_folder(tmp_path / "missing")


@pytest.mark.skipif(not MISC.is_dir(), reason=NO_CAD_DATA)
def test_from_folder_on_misc_meshes_with_a_mapping() -> None:
    mapping = {"bed": "bed", "bathtub": "bathtub", "chair": "chair", "chair_model": "chair", "table": "table"}
    index = CadIndex.from_folder(MISC, mapping)
    assert sorted(index) == sorted(mapping)  # model24765 is not in the mapping
    assert index.ids_of("chair") == ["chair", "chair_model"]
    assert index["chair"].path == MISC / "chair.off"


def _catalogue_sizes() -> dict[str, np.ndarray]:
    """Model name -> (width, height, depth) in metres, read straight from the catalogue."""
    text = (SWEETHOME3D / "DefaultFurnitureCatalog.properties").read_text()
    sizes = {}
    for number, name in re.findall(r"^id#(\d+)=eTeks#(\w+)$", text, flags=re.MULTILINE):
        size = [
            float(re.search(rf"^{axis}#{number}=(.+)$", text, flags=re.MULTILINE)[1])
            for axis in ("width", "height", "depth")
        ]
        sizes[name] = np.array(size) / 100
    return sizes


@pytest.mark.skipif(not SWEETHOME3D.is_dir(), reason=NO_CAD_DATA)
def test_sweethome3d_index_is_metric_and_classed() -> None:
    index = CadIndex.from_sweethome3d(SWEETHOME3D)
    assert len(index) == 27
    counts = {category: len(index.ids_of(category)) for category in ("bed", "bookshelf", "chair", "sofa", "table")}
    assert counts == {"bed": 2, "bookshelf": 2, "chair": 5, "sofa": 3, "table": 5}
    assert (
        len(index.ids_of("cabinet")) == 7
        and len(index.ids_of("bathtub")) == 2
        and index.ids_of("display") == ["sh3d_flatTV"]
    )
    assert index.ids_of("bin") == [] and "sh3d_toiletUnit" not in index
    sizes = _catalogue_sizes()
    for cad_id in index:
        name = cad_id.removeprefix("sh3d_")
        expected = sizes[name]
        if name in ("bath", "fittedBath"):  # modelRotation turns the file's z axis to the catalogue's x
            expected = expected[[2, 1, 0]]
        np.testing.assert_allclose(index.extent(cad_id), expected, rtol=0.01, err_msg=cad_id)
    np.testing.assert_allclose(index.extent("sh3d_chair"), [0.40, 0.90, 0.42], rtol=0.01)
    assert index["sh3d_roundTable"].sym == "inf" and index["sh3d_squareTable"].sym == "4"
    assert index["sh3d_table"].sym == "2" and index["sh3d_sofa"].sym == "none"


@pytest.mark.skipif(not SWEETHOME3D.is_dir(), reason=NO_CAD_DATA)
def test_sweethome3d_split_is_fixed_disjoint_and_covers_the_catalogue() -> None:
    whole = CadIndex.from_sweethome3d(SWEETHOME3D)
    train = CadIndex.from_sweethome3d(SWEETHOME3D, half="train")
    test = CadIndex.from_sweethome3d(SWEETHOME3D, half="test")
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(whole)
    assert len(train) == 11 and len(test) == 16
    # The same split on every call (it is a fixed table, not a draw).
    assert list(CadIndex.from_sweethome3d(SWEETHOME3D, half="train")) == list(train)
    # Every class of the test half is a class of the catalogue, and no class is in training alone.
    for category in {train[cad_id].category for cad_id in train}:
        assert test.ids_of(category), category
    assert test.ids_of("display") == ["sh3d_flatTV"] and not train.ids_of("display")
    with pytest.raises(ValueError, match="half"):
        CadIndex.from_sweethome3d(SWEETHOME3D, half="val")


def test_sweethome3d_missing_catalogue(tmp_path: Path) -> None:
    with pytest.raises(CadFileNotFound, match=r"DefaultFurnitureCatalog.properties"):
        CadIndex.from_sweethome3d(tmp_path)


def _write_catalogue(folder: Path, width: str, rotation: str | None = None) -> Path:
    lines = [
        "# a two-model catalogue",
        "id#1=eTeks#table",
        "model#1=/com/eteks/sweethome3d/io/resources/table.obj",
        f"width#1={width}",
        "depth#1=80",
        "height#1=74",
        "id#2=eTeks#plant",
        "model#2=/com/eteks/sweethome3d/io/resources/plant.obj",
    ]
    if rotation is not None:
        lines.append(f"modelRotation#1={rotation}")
    path = folder / "DefaultFurnitureCatalog.properties"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sweethome3d_scales_and_permutes_axes(tmp_path: Path) -> None:
    _box_file(tmp_path, "table.obj", extents=(1.0, 2.0, 0.5))
    _write_catalogue(tmp_path, "150")
    index = CadIndex.from_sweethome3d(tmp_path)
    assert list(index) == ["sh3d_table"] and index["sh3d_table"].sym == "2"
    np.testing.assert_allclose(index["sh3d_table"].unit_scale, [1.5, 0.37, 1.6])
    np.testing.assert_allclose(index.extent("sh3d_table"), [1.5, 0.74, 0.8])
    _write_catalogue(tmp_path, "150", rotation="0 0 -1 0 1 0 1 0 0")
    np.testing.assert_allclose(CadIndex.from_sweethome3d(tmp_path).extent("sh3d_table"), [0.8, 0.74, 1.5])


@pytest.mark.parametrize(
    ("width", "rotation", "message"),
    [
        ("wide", None, "width#1 is not a positive size in cm: 'wide'"),
        ("-3", None, "width#1 is not a positive size"),
        ("150", "0.7 0 0.7 0 1 0 -0.7 0 0.7", "modelRotation#1 is not an axis permutation"),
        ("150", "1 0 0", "modelRotation#1 is not 9 numbers"),
    ],
)
def test_sweethome3d_bad_catalogue(tmp_path: Path, width: str, rotation: str | None, message: str) -> None:
    _box_file(tmp_path, "table.obj")
    path = _write_catalogue(tmp_path, width, rotation)
    with pytest.raises(CadIndexError, match=message) as raised:
        CadIndex.from_sweethome3d(tmp_path)
    assert raised.value.path == path
