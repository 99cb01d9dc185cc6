"""A miniature ScanNet + Scan2CAD + ShapeNet tree made from a synthetic room, with its truth.

One room (scan frame z up, floor z = 0, walls 3 m around, the whole room turned by 37 deg about z and
moved, as a scan's frame is arbitrary) holds procedural furniture: chair A, table B, a tall cabinet D, chair
C hidden behind D from every camera, bin E beside the cameras (its centre outside their images), a filing
cabinet of a class outside the 9, and a sofa whose CAD the ShapeNet folder lacks. Scan2CAD's world is y-up:
the scan's `trs` turns z up to y up, about y by 25 deg, and moves it; the models' `trs` are
`M_scan @ M_object`. Each CAD is shifted off its box centre before export (ShapeNet models are not centred),
and `center` says by how much.

Two scans of the same room: `scene0001_00` in SensReader's layout (colour 1296 x 968, depth 640 x 480 in mm,
frame 2's pose is -inf) and `scene0002_00` in scannet_frames_25k's (frames 000000 and 000100; its colour
JPEGs are 640 x 480 with the 1296 x 968 calibration in intrinsics_color.txt). The colour images are a plain
pattern (nothing reads their content); depth is ray cast with `multisparc.render`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from multisparc.cad.procedural import generate
from multisparc.geometry import matrix_to_quat
from multisparc.render import Plane, RayCaster, Room, render_full

K_COLOUR = np.array([[1170.19, 0.0, 647.75], [0.0, 1170.19, 483.75], [0.0, 0.0, 1.0]])
COLOUR_SIZE = (1296, 968)
K_DEPTH = np.array([[577.59, 0.0, 318.9], [0.0, 578.73, 242.68], [0.0, 0.0, 1.0]])
DEPTH_SIZE = (640, 480)
ROOM_YAW, ROOM_SHIFT = math.radians(37.0), np.array([2.1, -1.3, 0.0])
SCAN_TRS_YAW, SCAN_TRS_SHIFT = math.radians(25.0), np.array([0.4, 0.0, -1.7])
SYM_TAGS = {"none": "__SYM_NONE", "2": "__SYM_ROTATE_UP_2", "4": "__SYM_ROTATE_UP_4", "inf": "__SYM_ROTATE_UP_INF"}


def rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def quaternion(R: np.ndarray) -> list[float]:
    return matrix_to_quat(torch.as_tensor(R, dtype=torch.float64)).tolist()


def in_room(points: np.ndarray) -> np.ndarray:
    """Room coordinates (3,) or (N, 3) -> scan frame (the room turned and moved)."""
    return points @ rot_z(ROOM_YAW).T + ROOM_SHIFT


@dataclass
class TruthObject:
    """A placed object: label, class (or synset), synset, model id, scan-frame pose X = t + R (s X_cad)."""

    label: str
    category: str
    synset: str
    model: str
    R: np.ndarray
    t: np.ndarray
    s: np.ndarray
    sym: str
    centre: np.ndarray
    mesh: object = field(repr=False, default=None)
    exported: bool = True

    @property
    def cad(self) -> str:
        return f"{self.synset}_{self.model}"


@dataclass
class Tree:
    """Paths of the miniature tree and its truth: objects in annotation order, camera poses (camera -> scan)
    per scan and frame number (None: an inf pose), true depth (H, W) metres per scan and frame."""

    scannet: Path
    annotations: Path
    shapenet: Path
    objects: list[TruthObject]
    poses: dict[str, dict[int, np.ndarray | None]]
    depths: dict[str, dict[int, np.ndarray]]

    def object(self, label: str) -> TruthObject:
        return next(obj for obj in self.objects if obj.label == label)


def _object(label, category, synset, model, mesh, sym, room_xy, yaw, size) -> TruthObject:
    offset = np.array([0.01, 0.07, -0.02])  # ShapeNet models are not centred on their box
    mesh = mesh.copy()
    mesh.apply_translation(offset)
    extent = mesh.extents
    s = np.asarray(size, dtype=np.float64) / extent
    R = rot_z(ROOM_YAW + yaw) @ rot_x(math.pi / 2)  # CAD +Y -> scan +z, then turned about z
    centre_room = np.array([room_xy[0], room_xy[1], size[1] / 2])
    t = in_room(centre_room) - R @ (s * offset)
    return TruthObject(label, category, synset, model, R, t, s, sym, offset, mesh)


def make_objects(rng: np.random.Generator) -> list[TruthObject]:
    """The furniture of the module docstring, in annotation order."""
    chair = generate("chair", rng)
    table = generate("table", rng)
    cabinet = generate("cabinet", rng)
    bin_ = generate("bin", rng)
    sofa = generate("sofa", rng)
    objects = [
        _object("A", "chair", "03001627", "chairA", chair.mesh, chair.sym, (-0.7, 0.4), 0.3, (0.55, 0.9, 0.55)),
        _object("B", "table", "04379243", "tableB", table.mesh, table.sym, (0.7, 0.6), -0.2, (1.2, 0.75, 0.8)),
        _object("D", "cabinet", "02933112", "cabinetD", cabinet.mesh, cabinet.sym, (0.0, 1.8), 0.0, (1.6, 2.2, 0.5)),
        _object("C", "chair", "03001627", "chairC", chair.mesh, chair.sym, (0.0, 2.35), math.pi, (0.5, 0.85, 0.5)),
        _object("E", "bin", "02747177", "binE", bin_.mesh, bin_.sym, (2.4, -2.2), 0.0, (0.3, 0.4, 0.3)),
        _object("F", "03337140", "03337140", "fileF", cabinet.mesh, "none", (-2.2, 1.5), 0.0, (0.5, 1.0, 0.6)),
        _object("S", "sofa", "04256520", "sofaS", sofa.mesh, sofa.sym, (-2.0, 0.5), math.pi / 2, (2.0, 0.85, 0.9)),
    ]
    objects[-1].exported = False  # its CAD is missing from the ShapeNet folder
    return objects


def camera_pose(room_position, yaw: float, pitch: float) -> np.ndarray:
    """Camera -> scan (4, 4): OpenCV axes, looking along room +y turned by `yaw`, pitched down by `pitch`."""
    # Camera axes in room coordinates looking along +y: x right = +x, y down = -z, z forward = +y.
    base = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    R_room = rot_z(yaw) @ base @ rot_x(-pitch)
    pose = np.eye(4)
    pose[:3, :3] = rot_z(ROOM_YAW) @ R_room
    pose[:3, 3] = in_room(np.asarray(room_position, dtype=np.float64))
    return pose


def room_planes(cam_to_world: np.ndarray) -> Room:
    """Floor and four walls (3 m from the room centre) in the camera frame."""
    R, c = cam_to_world[:3, :3], cam_to_world[:3, 3]

    def plane(point, normal):
        point_scan, normal_scan = in_room(np.asarray(point, dtype=float)), rot_z(ROOM_YAW) @ np.asarray(normal, float)
        return Plane(R.T @ (point_scan - c), R.T @ normal_scan)

    walls = [plane((3, 0, 0), (-1, 0, 0)), plane((-3, 0, 0), (1, 0, 0)), plane((0, 3, 0), (0, -1, 0))]
    walls.append(plane((0, -3, 0), (0, 1, 0)))
    return Room(plane((0, 0, 0), (0, 0, 1)), tuple(walls))


def render_depth(caster: RayCaster, objects: list[TruthObject], cam_to_world: np.ndarray) -> np.ndarray:
    """True z-depth (480, 640) metres of the depth camera at `cam_to_world` (room and exported objects)."""
    from multisparc.render import PlacedObject

    R_cw, c = cam_to_world[:3, :3], cam_to_world[:3, 3]
    placed = [
        PlacedObject(index + 1, obj.cad, R_cw.T @ obj.R, R_cw.T @ (obj.t - c), obj.s)
        for index, obj in enumerate(objects)
    ]
    frame = render_full(caster, placed, room_planes(cam_to_world), K_DEPTH, *DEPTH_SIZE)
    return frame.depth.astype(np.float64)


def _matrix_text(matrix: np.ndarray) -> str:
    return "\n".join(" ".join(repr(float(value)) for value in row) for row in matrix) + "\n"


def _pattern(size: tuple[int, int]) -> Image.Image:
    cols, rows = np.meshgrid(np.arange(size[0]), np.arange(size[1]))
    rgb = np.stack([cols * 255 // size[0], rows * 255 // size[1], (cols + rows) % 256], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


def _write_frame(folder: Path, stem: str, pose: np.ndarray, depth: np.ndarray | None, colour_size) -> None:
    for name in ("color", "depth", "pose"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    _pattern(colour_size).save(folder / "color" / f"{stem}.jpg", quality=90)
    (folder / "pose" / f"{stem}.txt").write_text(_matrix_text(pose))
    millimetres = np.zeros(DEPTH_SIZE[::-1]) if depth is None else np.round(depth * 1000.0)
    Image.fromarray(millimetres.astype(np.uint16)).save(folder / "depth" / f"{stem}.png")


def _intrinsic_4x4(K: np.ndarray) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = K
    return matrix


def scan2cad_record(scan: str, objects: list[TruthObject]) -> dict:
    """The full_annotations.json record of a scan (scan `trs`: scan -> Scan2CAD world)."""
    R_scan = rot_y(SCAN_TRS_YAW) @ rot_x(-math.pi / 2)  # z up -> y up, then turned about y
    models = []
    for obj in objects:
        R = R_scan @ obj.R
        models.append(
            {
                "catid_cad": obj.synset,
                "id_cad": obj.model,
                "trs": {
                    "translation": (R_scan @ obj.t + SCAN_TRS_SHIFT).tolist(),
                    "rotation": quaternion(R),
                    "scale": obj.s.tolist(),
                },
                "sym": SYM_TAGS[obj.sym],
                "bbox": (obj.mesh.extents / 2).tolist(),
                "center": obj.centre.tolist(),
            }
        )
    trs = {"translation": SCAN_TRS_SHIFT.tolist(), "rotation": quaternion(R_scan), "scale": [1.0, 1.0, 1.0]}
    return {"id_scan": scan, "trs": trs, "n_aligned_models": len(models), "aligned_models": models}


def build_tree(root: Path, seed: int = 3) -> Tree:
    """Write the miniature tree under `root` (module docstring) and return it with its truth."""
    objects = make_objects(np.random.default_rng(seed))
    shapenet = root / "ShapeNetCore.v2"
    for obj in objects:
        if obj.exported:
            folder = shapenet / obj.synset / obj.model / "models"
            folder.mkdir(parents=True, exist_ok=True)
            obj.mesh.export(folder / "model_normalized.obj")
    meshes = {obj.cad: obj.mesh for obj in objects if obj.exported}
    caster = RayCaster(meshes)
    visible_objects = [obj for obj in objects if obj.exported]
    scannet = root / "scannet"
    poses = {
        "scene0001_00": {
            0: camera_pose((0.0, -2.3, 1.5), 0.0, math.radians(20.0)),
            1: camera_pose((0.6, -2.2, 1.4), math.radians(8.0), math.radians(15.0)),
            2: None,
        },
        "scene0002_00": {
            0: camera_pose((-0.4, -2.4, 1.6), math.radians(-6.0), math.radians(22.0)),
            100: camera_pose((0.2, -2.1, 1.3), math.radians(4.0), math.radians(12.0)),
        },
    }
    depths: dict[str, dict[int, np.ndarray]] = {}
    for scan, frames in poses.items():
        folder = scannet / scan
        depths[scan] = {}
        sensreader = scan == "scene0001_00"
        for number, pose in frames.items():
            depth = None if pose is None else render_depth(caster, visible_objects, pose)
            if depth is not None:
                depths[scan][number] = depth
            written_pose = np.full((4, 4), -np.inf) if pose is None else pose
            stem = str(number) if sensreader else f"{number:06d}"
            _write_frame(folder, stem, written_pose, depth, COLOUR_SIZE if sensreader else DEPTH_SIZE)
        if sensreader:
            (folder / "intrinsic").mkdir()
            (folder / "intrinsic" / "intrinsic_color.txt").write_text(_matrix_text(_intrinsic_4x4(K_COLOUR)))
            (folder / "intrinsic" / "intrinsic_depth.txt").write_text(_matrix_text(_intrinsic_4x4(K_DEPTH)))
        else:
            (folder / "intrinsics_color.txt").write_text(_matrix_text(_intrinsic_4x4(K_COLOUR)))
            (folder / "intrinsics_depth.txt").write_text(_matrix_text(_intrinsic_4x4(K_DEPTH)))
    annotations = root / "full_annotations.json"
    records = [scan2cad_record(scan, objects) for scan in poses]
    annotations.write_text(json.dumps(records))
    return Tree(scannet, annotations, shapenet, objects, poses, depths)
