"""Procedural furniture for the 9 Scan2CAD classes: the CAD library the product ships with.

Every model is one closed mesh (watertight, consistently wound, outward normals), built from
primitives united and cut with manifold booleans, a few hundred to a few thousand faces.

Frame of every model (the ShapeNet convention of normalised models, but in real size):
- units: metres, real furniture sizes;
- +Y up, the floor contact at the bottom of the bounding box;
- the front faces +Z: the seat opening of chairs and sofas, the screen of displays, the doors and
  drawers of cabinets, the open side of bookshelves, the foot end of beds (headboard at -Z), the
  long open side of bathtubs (the tap deck of a rectangular tub at +X); tables and bins have no
  front beyond their symmetry;
- origin at the centre of the axis-aligned bounding box.

Symmetry tags follow Scan2CAD (`none`, `2`, `4`, `inf`: rotations about +Y by 180 deg, 90 deg or
any angle) and are exact for the generated geometry up to the polygonal approximation of round
parts: round parts use a number of sections divisible by 4, so 180 and 90 deg turns map them
exactly onto themselves.

Two styles (PROCEDURAL_STYLES): `classic`, one builder per class, frozen (the same seed always
gives the same files); `wide`, several builders per class (the classic one among them) for more
part layouts: frame, lounge, swivel and cantilever chairs and bar stools, corner and loose-cushion
sofas, desks, side tables and more table bases, platform and drawer beds, cube, frame, ladder and
staggered shelves, nightstands, media, hutch and filing cabinets, pedal, swing, handled and
divided bins, monitors, all-in-ones, CRTs and TVs, freestanding and built-in bathtubs.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from trimesh.transformations import rotation_matrix, translation_matrix

from multisparc.categories import CATEGORIES, canonical_category

# Parts that touch overlap by this much (metres) so that the union is one connected solid.
_JOIN = 0.005
_ROUND_SECTIONS = 48
_THIN_SECTIONS = 16

Params = dict[str, float | int | str | bool]

# `classic`: the original generator, one builder per class, whose output for a seed must never
# change (benchmark sets and the shipped network depend on it). `wide`: many more part layouts per
# class (the classic ones among them), for training on more varied shapes.
PROCEDURAL_STYLES: tuple[str, ...] = ("classic", "wide")


@dataclass
class ProceduralCad:
    """One generated model.

    mesh: closed mesh in the CAD frame described in the module docstring (metres, +Y up, front +Z,
    origin at the bounding-box centre). sym: Scan2CAD symmetry tag. variant: the structural
    variant, `/`-separated choices (e.g. `round/pedestal/dining`). params: the drawn parameters
    (metres where they are lengths).
    """

    mesh: trimesh.Trimesh
    category: str
    sym: str
    variant: str
    params: Params = field(default_factory=dict)


def _box(lo: Sequence[float], hi: Sequence[float]) -> trimesh.Trimesh:
    """Axis-aligned box between corners lo (3,) and hi (3,), metres."""
    lo_arr, hi_arr = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    return trimesh.creation.box(extents=hi_arr - lo_arr, transform=translation_matrix((lo_arr + hi_arr) / 2))


def _rod(p0: Sequence[float], p1: Sequence[float], radius: float, sections: int = _THIN_SECTIONS) -> trimesh.Trimesh:
    """Cylinder of `radius` from point p0 (3,) to p1 (3,), metres."""
    return trimesh.creation.cylinder(radius=radius, segment=np.array([p0, p1], dtype=float), sections=sections)


def _post(x: float, z: float, y0: float, y1: float, radius: float, sections: int = _THIN_SECTIONS) -> trimesh.Trimesh:
    """Vertical cylinder at (x, z) from height y0 to y1, metres."""
    return _rod((x, y0, z), (x, y1, z), radius, sections)


def _frustum(
    round_section: bool,
    y0: float,
    y1: float,
    half_bottom: tuple[float, float],
    half_top: tuple[float, float],
    sections: int = _ROUND_SECTIONS,
) -> trimesh.Trimesh:
    """Vertical prism from height y0 to y1 whose cross-section (ellipse or rectangle centred on the Y
    axis) has half sizes (x, z) `half_bottom` at y0 and `half_top` at y1, linearly in between.

    trimesh has no frustum primitive, so a unit cylinder or box is stretched per vertex.
    """
    if round_section:
        unit = _post(0.0, 0.0, y0, y1, 1.0, sections)
    else:
        unit = _box((-1.0, y0, -1.0), (1.0, y1, 1.0))
    vertices = unit.vertices.copy()
    t = ((vertices[:, 1] - y0) / (y1 - y0))[:, None]
    vertices[:, [0, 2]] *= (1 - t) * np.asarray(half_bottom) + t * np.asarray(half_top)
    return trimesh.Trimesh(vertices, unit.faces, process=False)


def _ellipsoid(centre: Sequence[float], semi_axes: Sequence[float], subdivisions: int = 3) -> trimesh.Trimesh:
    """Ellipsoid with the given centre (3,) and semi-axes (3,), metres."""
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
    sphere.apply_scale(semi_axes)
    sphere.apply_translation(centre)
    return sphere


def _union(parts: Sequence[trimesh.Trimesh]) -> trimesh.Trimesh:
    """One closed mesh covering all `parts` (closed meshes)."""
    return trimesh.boolean.union(parts, engine="manifold")


def _difference(solid: trimesh.Trimesh, cavity: trimesh.Trimesh) -> trimesh.Trimesh:
    """`solid` with the volume of `cavity` cut away."""
    return trimesh.boolean.difference([solid, cavity], engine="manifold")


def _both_sides(x: float) -> tuple[float, float]:
    return (-x, x)


def _four_corners(half_x: float, half_z: float) -> list[tuple[float, float]]:
    return [(sx * half_x, sz * half_z) for sx in (-1, 1) for sz in (-1, 1)]


def _hull(points: np.ndarray | Sequence[Sequence[float]]) -> trimesh.Trimesh:
    """Convex hull of points (n, 3), metres: tapered, slanted or bevelled solids."""
    return trimesh.convex.convex_hull(np.asarray(points, dtype=float))


def _prism(profile: Sequence[Sequence[float]], axis: int, lo: float, hi: float) -> trimesh.Trimesh:
    """Prism along `axis` (0, 1, 2 for X, Y, Z) from lo to hi over the convex polygon `profile`, whose
    points are given in the two other axes in increasing order ((y, z) for X, (x, z) for Y, (x, y)
    for Z); metres."""
    section = np.asarray(profile, dtype=float)
    points = np.zeros((2 * len(section), 3))
    points[:, [a for a in range(3) if a != axis]] = np.concatenate([section, section])
    points[:, axis] = np.repeat([lo, hi], len(section))
    return _hull(points)


def _soft_box(lo: Sequence[float], hi: Sequence[float], bevel: float = 0.03) -> trimesh.Trimesh:
    """Box between corners lo (3,) and hi (3,) with its edges bevelled by `bevel` (clipped to a third
    of the shortest side), metres: cushions, mattresses and upholstered parts."""
    lo_arr, hi_arr = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    cut = min(bevel, float(np.min(hi_arr - lo_arr)) / 3)
    corners = []
    for axis in range(3):
        inset = np.full(3, cut)
        inset[axis] = 0.0
        corners += [np.where(upper, hi_arr - inset, lo_arr + inset) for upper in itertools.product((0, 1), repeat=3)]
    return _hull(corners)


def _ring(y0: float, y1: float, inner: float, outer: float) -> trimesh.Trimesh:
    """Flat ring about the Y axis from height y0 to y1 between radii inner and outer, metres."""
    return trimesh.creation.annulus(inner, outer, sections=_ROUND_SECTIONS, segment=[(0.0, y0, 0.0), (0.0, y1, 0.0)])


def _leg(x: float, z: float, y0: float, y1: float, size: float, shape: str) -> trimesh.Trimesh:
    """Vertical leg at (x, z) from height y0 to y1, `size` wide at the top, metres: `square` box,
    `round` cylinder or `tapered` square section narrowing to 60 % at y0."""
    half = size / 2
    if shape == "round":
        return _post(x, z, y0, y1, half)
    if shape == "tapered":
        return _frustum(False, y0, y1, (0.6 * half, 0.6 * half), (half, half)).apply_translation((x, 0.0, z))
    return _box((x - half, y0, z - half), (x + half, y1, z + half))


def _tube(points: Sequence[Sequence[float]], radius: float) -> list[trimesh.Trimesh]:
    """A bent tube of `radius` through `points` (n, 3), metres: straight rods, each running on by
    `radius` past both ends so that the bends stay filled."""
    path = np.asarray(points, dtype=float)
    rods = []
    for p0, p1 in itertools.pairwise(path):
        step = (p1 - p0) * radius / np.linalg.norm(p1 - p0)
        rods.append(_rod(p0 - step, p1 + step, radius))
    return rods


def _cushions(
    lo: Sequence[float], hi: Sequence[float], count: int, axis: int = 0, gap: float = 0.01
) -> list[trimesh.Trimesh]:
    """`count` bevelled cushions side by side along `axis`, `gap` apart, filling the box lo (3,) to
    hi (3,), metres."""
    edges = np.linspace(lo[axis], hi[axis], count + 1)
    cushions = []
    for start, end in itertools.pairwise(edges):
        c_lo, c_hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
        c_lo[axis], c_hi[axis] = start + gap / 2, end - gap / 2
        cushions.append(_soft_box(c_lo, c_hi))
    return cushions


def _leaned(parts: list[trimesh.Trimesh], angle: float, pivot: Sequence[float]) -> list[trimesh.Trimesh]:
    """`parts` turned about the X axis through `pivot` (3,), metres, so that their tops move towards -Z
    by `angle` (radians): back cushions leaning back, a monitor tilted back."""
    turn = rotation_matrix(-angle, (1, 0, 0), pivot)
    return [part.apply_transform(turn) for part in parts]


def _mirrored_x(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """`mesh` reflected through the plane x = 0 (trimesh keeps the faces outward)."""
    return mesh.apply_transform(np.diag([-1.0, 1.0, 1.0, 1.0]))


# What a class builder returns: (mesh with the floor at y = 0, symmetry tag, variant, params).
Built = tuple[trimesh.Trimesh, str, str, Params]
Builder = Callable[[np.random.Generator], Built]


def _chair(rng: np.random.Generator) -> Built:
    """Dining / office chair: seat, back at -Z, optional arms; four legs, pedestal or sled base."""
    width, depth = rng.uniform(0.42, 0.56), rng.uniform(0.42, 0.54)
    seat_top, seat_thickness = rng.uniform(0.42, 0.48), rng.uniform(0.03, 0.08)
    back_height, back_thickness = rng.uniform(0.35, 0.55), rng.uniform(0.025, 0.05)
    base = str(rng.choice(["four_legs", "pedestal", "sled"]))
    back_style = str(rng.choice(["panel", "slats"]))
    arms = bool(rng.random() < 0.4)
    seat_bottom, back_top = seat_top - seat_thickness, seat_top + back_height
    hw, hd = width / 2, depth / 2
    parts = [_box((-hw, seat_bottom, -hd), (hw, seat_top, hd))]

    back_z = (-hd, -hd + back_thickness)
    if back_style == "panel":
        parts.append(_box((-hw, seat_top - _JOIN, back_z[0]), (hw, back_top, back_z[1])))
    else:
        upright = 0.04
        for x in _both_sides(hw - upright / 2):
            parts.append(_box((x - upright / 2, seat_top - _JOIN, back_z[0]), (x + upright / 2, back_top, back_z[1])))
        slats = int(rng.integers(2, 5))
        slat_height = 0.05
        for y in np.linspace(seat_top + 0.4 * back_height, back_top - slat_height, slats):
            parts.append(_box((-hw + upright / 2, y, back_z[0]), (hw - upright / 2, y + slat_height, back_z[1])))

    if arms:
        arm_top, arm_width = seat_top + rng.uniform(0.18, 0.25), 0.05
        for sign in (-1, 1):
            x0, x1 = sorted((sign * hw, sign * (hw - arm_width)))
            parts.append(_box((x0, arm_top - 0.03, -hd), (x1, arm_top, hd - 0.02)))
            parts.append(_box((x0, seat_top - _JOIN, hd - 0.08), (x1, arm_top, hd - 0.04)))

    if base == "four_legs":
        leg = rng.uniform(0.025, 0.045)
        for x, z in _four_corners(hw - leg / 2 - 0.01, hd - leg / 2 - 0.01):
            parts.append(_box((x - leg / 2, 0.0, z - leg / 2), (x + leg / 2, seat_bottom + _JOIN, z + leg / 2)))
    elif base == "pedestal":
        star_radius, caster = rng.uniform(0.25, 0.31), 0.025
        spoke_y = (2 * caster - 0.01, 2 * caster + 0.03)
        parts.append(_post(0.0, 0.0, spoke_y[0], seat_bottom + _JOIN, rng.uniform(0.022, 0.035)))
        for k in range(5):
            turn = rotation_matrix(2 * np.pi * k / 5, (0, 1, 0))
            spoke = _box((0.0, spoke_y[0], -0.02), (star_radius, spoke_y[1], 0.02))
            wheel = _ellipsoid((star_radius - caster, caster, 0.0), (caster, caster, caster), subdivisions=1)
            parts += [spoke.apply_transform(turn), wheel.apply_transform(turn)]
    else:
        tube = rng.uniform(0.01, 0.014)
        run = hd - 0.02
        for x in _both_sides(hw - tube - 0.01):
            parts.append(_rod((x, tube, -run - tube), (x, tube, run + tube), tube))
            for z in (-run, run):
                parts.append(_rod((x, 0.0, z), (x, seat_bottom + _JOIN, z), tube))

    params: Params = {
        "width": width,
        "depth": depth,
        "seat_height": seat_top,
        "seat_thickness": seat_thickness,
        "back_height": back_height,
        "arms": arms,
    }
    return _union(parts), "none", f"{base}/{back_style}/{'arms' if arms else 'no_arms'}", params


def _table_top_size(rng: np.random.Generator, top: str, dining: bool) -> tuple[float, float]:
    """Top size (x, z) in metres; rectangular tops are at least 1.3 times longer than wide so that
    their symmetry is clearly `2`, round tops give (diameter, diameter)."""
    if top == "rectangular":
        length = rng.uniform(1.2, 2.0) if dining else rng.uniform(0.9, 1.3)
        lo, hi = (0.7, 1.0) if dining else (0.45, 0.7)
        return length, float(np.clip(length / rng.uniform(1.3, 1.9), lo, hi))
    if top == "round":
        diameter = rng.uniform(0.8, 1.3) if dining else rng.uniform(0.55, 1.0)
        return diameter, diameter
    side = rng.uniform(0.75, 1.0) if dining else rng.uniform(0.55, 0.9)
    return side, side


def _table(rng: np.random.Generator) -> Built:
    """Dining or coffee table: rectangular, square or round top on four legs, pedestal or trestles."""
    dining = bool(rng.random() < 0.6)
    top = str(rng.choice(["rectangular", "square", "round"]))
    base = str(rng.choice(["four_legs", "pedestal", "trestle"]))
    height = rng.uniform(0.70, 0.78) if dining else rng.uniform(0.35, 0.5)
    length, width = _table_top_size(rng, top, dining)
    top_thickness = rng.uniform(0.02, 0.05)
    under = height - top_thickness
    hl, hw = length / 2, width / 2
    if top == "round":
        parts = [_post(0.0, 0.0, under, height, hl, _ROUND_SECTIONS)]
    else:
        parts = [_box((-hl, under, -hw), (hl, height, hw))]

    if base == "four_legs":
        leg = rng.uniform(0.035, 0.07) if dining else rng.uniform(0.03, 0.05)
        inset = rng.uniform(0.03, 0.1)
        if top == "round":
            corner = (hl - inset - leg) / np.sqrt(2)
            leg_x, leg_z = corner, corner
        else:
            leg_x, leg_z = hl - inset - leg / 2, hw - inset - leg / 2
        round_legs = bool(rng.random() < 0.5)
        for x, z in _four_corners(leg_x, leg_z):
            if round_legs:
                parts.append(_post(x, z, 0.0, under + _JOIN, leg / 2))
            else:
                parts.append(_box((x - leg / 2, 0.0, z - leg / 2), (x + leg / 2, under + _JOIN, z + leg / 2)))
        if dining and top != "round":
            apron, board = rng.uniform(0.06, 0.1), 0.02
            for sign in (-1, 1):
                z0, z1 = sorted((sign * leg_z, sign * (leg_z - board)))
                x0, x1 = sorted((sign * leg_x, sign * (leg_x - board)))
                parts.append(_box((-leg_x, under - apron, z0), (leg_x, under + _JOIN, z1)))
                parts.append(_box((x0, under - apron, -leg_z), (x1, under + _JOIN, leg_z)))
        sym = {"rectangular": "2", "square": "4", "round": "4"}[top]
        variant = f"{top}/four_legs_{'round' if round_legs else 'square'}"
    elif base == "pedestal":
        column = rng.uniform(0.04, 0.07)
        foot_thickness = 0.03
        if top == "rectangular":
            for x in _both_sides(hl / 2):
                parts.append(_post(x, 0.0, foot_thickness - _JOIN, under + _JOIN, column))
                parts.append(_box((x - 0.05, 0.0, -0.35 * width), (x + 0.05, foot_thickness, 0.35 * width)))
        else:
            foot = min(hw, rng.uniform(0.2, 0.3) * (1.0 if dining else 0.8))
            parts.append(_post(0.0, 0.0, foot_thickness - _JOIN, under + _JOIN, column, _ROUND_SECTIONS))
            parts.append(_post(0.0, 0.0, 0.0, foot_thickness, foot, _ROUND_SECTIONS))
        sym = {"rectangular": "2", "square": "4", "round": "inf"}[top]
        variant = f"{top}/pedestal"
    else:
        end_x = hl - rng.uniform(0.1, 0.2) if top != "round" else 0.5 * hl
        board, foot_height = rng.uniform(0.04, 0.06), rng.uniform(0.04, 0.07)
        span = 0.35 * width
        plank = rng.uniform(0.1, 0.25) * width
        for x in _both_sides(end_x):
            parts.append(_box((x - board / 2, 0.0, -plank / 2), (x + board / 2, under + _JOIN, plank / 2)))
            parts.append(_box((x - 0.035, 0.0, -span - 0.06), (x + 0.035, foot_height, span + 0.06)))
            parts.append(_box((x - 0.035, under - 0.05, -span), (x + 0.035, under + _JOIN, span)))
        stretcher_y = 0.3 * under
        parts.append(_box((-end_x, stretcher_y, -0.025), (end_x, stretcher_y + 0.05, 0.025)))
        sym, variant = "2", f"{top}/trestle"

    params: Params = {"length": length, "width": width, "height": height, "top_thickness": top_thickness}
    return _union(parts), sym, f"{variant}/{'dining' if dining else 'coffee'}", params


def _sofa(rng: np.random.Generator) -> Built:
    """Two- or three-seat sofa, back at -Z, with or without arms; the L-shape variant has a chaise
    reaching forward (+Z) on one side."""
    seats = int(rng.choice([2, 3]))
    width = rng.uniform(1.5, 2.0) if seats == 2 else rng.uniform(1.9, 2.5)
    depth, seat_top = rng.uniform(0.8, 1.0), rng.uniform(0.4, 0.47)
    height, back_thickness = rng.uniform(0.72, 0.95), rng.uniform(0.15, 0.25)
    cushion = rng.uniform(0.1, 0.16)
    arms = bool(rng.random() < 0.8)
    arm_width = rng.uniform(0.1, 0.25) if arms else 0.0
    arm_top = rng.uniform(0.55, 0.66)
    l_shape = bool(rng.random() < 0.3)
    chaise_side = int(rng.choice([-1, 1]))
    chaise = rng.uniform(0.55, 0.8) if l_shape else 0.0
    leg = rng.uniform(0.04, 0.12)
    hw, hd = width / 2, depth / 2
    inner = hw - arm_width
    base_top = seat_top - cushion
    seat_width = 2 * inner / seats

    parts = [_box((-hw, leg, -hd), (hw, base_top, hd))]
    parts.append(_box((-inner - _JOIN, leg, -hd), (inner + _JOIN, height, -hd + back_thickness)))
    gap = 0.01
    for k in range(seats):
        x0 = -inner + k * seat_width
        parts.append(_box((x0 + gap, base_top - _JOIN, -hd + back_thickness), (x0 + seat_width - gap, seat_top, hd)))
        parts.append(
            _box(
                (x0 + gap, seat_top - _JOIN, -hd + back_thickness - _JOIN),
                (x0 + seat_width - gap, height - 0.06, -hd + back_thickness + 0.14),
            )
        )
    front = hd + chaise
    if l_shape:
        x0, x1 = sorted((chaise_side * inner, chaise_side * (inner - seat_width)))
        parts.append(_box((x0, leg, hd - _JOIN), (x1, base_top, front)))
        parts.append(_box((x0 + gap, base_top - _JOIN, hd), (x1 - gap, seat_top, front)))
    rolled = bool(rng.random() < 0.5)
    if arms:
        for sign in (-1, 1):
            arm_front = front if (l_shape and sign == chaise_side) else hd
            x0, x1 = sorted((sign * hw, sign * inner))
            top = arm_top - arm_width / 2 if rolled else arm_top
            parts.append(_box((x0, leg, -hd), (x1, top, arm_front)))
            if rolled:
                parts.append(_rod(((x0 + x1) / 2, top, -hd), ((x0 + x1) / 2, top, arm_front), arm_width / 2))
    for sign in (-1, 1):
        x = sign * (hw - 0.05)
        side_front = front if (l_shape and sign == chaise_side) else hd
        for z in (-hd + 0.05, side_front - 0.05):
            parts.append(_box((x - 0.025, 0.0, z - 0.025), (x + 0.025, leg + _JOIN, z + 0.025)))

    params: Params = {
        "seats": seats,
        "width": width,
        "depth": depth,
        "seat_height": seat_top,
        "height": height,
        "arms": arms,
        "chaise_depth": chaise,
    }
    shape = f"l_shape_{'right' if chaise_side > 0 else 'left'}" if l_shape else "straight"
    arm_style = ("rolled_arms" if rolled else "square_arms") if arms else "no_arms"
    return _union(parts), "none", f"{shape}/{seats}_seats/{arm_style}", params


def _bed(rng: np.random.Generator) -> Built:
    """Single or double bed: mattress on a frame with legs or on a box base, headboard at -Z
    (the foot end faces +Z), optional footboard, pillows at the head end."""
    double = bool(rng.random() < 0.6)
    mattress_width = rng.uniform(1.4, 1.8) if double else rng.uniform(0.9, 1.0)
    mattress_length = rng.uniform(1.95, 2.1)
    margin, mattress_top = rng.uniform(0.02, 0.06), rng.uniform(0.45, 0.62)
    mattress_thickness = rng.uniform(0.15, 0.25)
    headboard_top, headboard_thickness = rng.uniform(0.8, 1.3), rng.uniform(0.04, 0.08)
    box_base = bool(rng.random() < 0.5)
    footboard = bool(rng.random() < 0.35)
    frame_top = mattress_top - mattress_thickness
    leg = 0.0 if box_base else rng.uniform(0.08, min(0.25, frame_top - 0.08))
    hw, hl = mattress_width / 2 + margin, mattress_length / 2 + margin

    parts = [_box((-hw, leg, -hl), (hw, frame_top + _JOIN, hl))]
    if not box_base:
        for x, z in _four_corners(hw - 0.04, hl - 0.04):
            parts.append(_box((x - 0.035, 0.0, z - 0.035), (x + 0.035, leg + _JOIN, z + 0.035)))
    parts.append(_box((-hw, 0.0, -hl - headboard_thickness), (hw, headboard_top, -hl + _JOIN)))
    if footboard:
        foot_top = mattress_top + rng.uniform(0.0, 0.15)
        parts.append(_box((-hw, 0.0, hl - _JOIN), (hw, foot_top, hl + 0.04)))
    mw, ml = mattress_width / 2, mattress_length / 2
    parts.append(_box((-mw, frame_top, -ml), (mw, mattress_top, ml)))
    pillow_width = rng.uniform(0.5, 0.65)
    centres = (-mw / 2, mw / 2) if double else (0.0,)
    for x in centres:
        w = min(pillow_width, mw - 0.05) if double else min(pillow_width, 2 * mw - 0.1)
        parts.append(_box((x - w / 2, mattress_top - _JOIN, -ml + 0.05), (x + w / 2, mattress_top + 0.12, -ml + 0.4)))

    params: Params = {
        "mattress_width": mattress_width,
        "mattress_length": mattress_length,
        "mattress_height": mattress_top,
        "headboard_height": headboard_top,
    }
    variant = f"{'double' if double else 'single'}/{'box_base' if box_base else 'legs'}"
    return _union(parts), "none", variant + ("/footboard" if footboard else ""), params


def _bookshelf(rng: np.random.Generator) -> Built:
    """Bookshelf open at +Z: two sides, top, raised bottom and evenly spaced shelves; a closed back
    panel at -Z (tag `none`) or an open back (front and back alike, tag `2`)."""
    width, height, depth = rng.uniform(0.6, 1.2), rng.uniform(0.9, 2.1), rng.uniform(0.25, 0.4)
    board, plinth = rng.uniform(0.016, 0.03), rng.uniform(0.04, 0.1)
    closed = bool(rng.random() < 0.6)
    levels = max(2, round(height / rng.uniform(0.3, 0.42)))
    hw, hd = width / 2, depth / 2
    back = 0.01 if closed else 0.0
    shelf_z = (-hd + back - _JOIN if closed else -hd, hd)
    inner = hw - board + _JOIN

    parts = [_box((-hw, 0.0, -hd), (-hw + board, height, hd)), _box((hw - board, 0.0, -hd), (hw, height, hd))]
    for y in np.linspace(plinth, height - board, levels + 1):
        parts.append(_box((-inner, y, shelf_z[0]), (inner, y + board, shelf_z[1])))
    kick_z = [hd - board - 0.01] if closed else [hd - board - 0.01, -hd + 0.01]
    for z in kick_z:
        parts.append(_box((-inner, 0.0, z), (inner, plinth + _JOIN, z + board)))
    if closed:
        parts.append(_box((-hw, 0.0, -hd), (hw, height, -hd + back)))
    divider = width > 0.9
    if divider:
        parts.append(_box((-board / 2, plinth, shelf_z[0]), (board / 2, height - board / 2, shelf_z[1])))

    params: Params = {"width": width, "height": height, "depth": depth, "levels": levels, "closed_back": closed}
    variant = f"{'closed' if closed else 'open'}_back/{levels}_levels" + ("/divider" if divider else "")
    return _union(parts), "none" if closed else "2", variant, params


def _cabinet_fronts(rng: np.random.Generator, style: str, width: float) -> list[tuple[str, int]]:
    """Rows of the front from top to bottom: (kind "door" or "drawer", columns), with the height
    share of the row implied by its kind (drawers are short)."""
    columns = int(np.clip(round(width / 0.5), 2, 4)) if style != "chest" else int(1 + (width > 0.8))
    if style == "chest":
        return [("drawer", columns)] * int(rng.integers(3, 7))
    layout = str(rng.choice(["doors", "drawers_over_doors", "drawers"]))
    if style == "wardrobe":
        return [("door", columns)] + ([("drawer", columns)] if layout != "doors" else [])
    if layout == "drawers":
        return [("drawer", columns)] * 3
    return ([("drawer", columns)] if layout == "drawers_over_doors" else []) + [("door", columns)]


def _cabinet(rng: np.random.Generator) -> Built:
    """Sideboard, tall wardrobe or chest of drawers; doors and drawer fronts at +Z with small box
    handles, standing on legs or on a plinth recessed at the front."""
    style = str(rng.choice(["sideboard", "wardrobe", "chest"]))
    if style == "sideboard":
        width, height, depth = rng.uniform(1.0, 1.8), rng.uniform(0.6, 0.9), rng.uniform(0.4, 0.5)
    elif style == "wardrobe":
        width, height, depth = rng.uniform(0.8, 1.5), rng.uniform(1.7, 2.2), rng.uniform(0.5, 0.62)
    else:
        width, height, depth = rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.2), rng.uniform(0.4, 0.5)
    legs = bool(rng.random() < 0.5)
    support = rng.uniform(0.08, 0.2) if legs else rng.uniform(0.05, 0.1)
    front_thickness, gap, handle_out = rng.uniform(0.015, 0.025), 0.004, rng.uniform(0.02, 0.03)
    hw, hd = width / 2, depth / 2
    body_front = hd - front_thickness

    parts = [_box((-hw, support, -hd), (hw, height, body_front + _JOIN))]
    if legs:
        leg = rng.uniform(0.03, 0.05)
        for x, z in _four_corners(hw - leg / 2 - 0.02, hd - leg / 2 - 0.03):
            parts.append(_box((x - leg / 2, 0.0, z - leg / 2), (x + leg / 2, support + _JOIN, z + leg / 2)))
    else:
        recess = rng.uniform(0.03, 0.05)
        parts.append(_box((-hw + 0.02, 0.0, -hd + 0.02), (hw - 0.02, support + _JOIN, body_front - recess)))

    rows = _cabinet_fronts(rng, style, width)
    door_rows = sum(kind == "door" for kind, _ in rows)
    # drawers share the front evenly, or keep a fixed height above or below the doors
    drawer_height = rng.uniform(0.15, 0.22) if door_rows else (height - support) / len(rows)
    door_height = (height - support - drawer_height * (len(rows) - door_rows)) / max(door_rows, 1)
    y_top = height
    for kind, columns in rows:
        row_height = drawer_height if kind == "drawer" else door_height
        column_width = width / columns
        for c in range(columns):
            x0, x1 = -hw + c * column_width + gap, -hw + (c + 1) * column_width - gap
            y0, y1 = y_top - row_height + gap, y_top - gap
            parts.append(_box((x0, y0, body_front - _JOIN), (x1, y1, hd)))
            if kind == "drawer":
                xc, yc, half = (x0 + x1) / 2, (y0 + y1) / 2, min(0.07, (x1 - x0) / 4)
                parts.append(_box((xc - half, yc - 0.008, hd - _JOIN), (xc + half, yc + 0.008, hd + handle_out)))
            else:
                # a door's handle sits at its edge nearer the centre line, at most at hand height
                xh = x1 - 0.04 if (x0 + x1) / 2 < 0 else x0 + 0.04
                yc = min((y0 + y1) / 2, 1.05)
                parts.append(_box((xh - 0.008, yc - 0.07, hd - _JOIN), (xh + 0.008, yc + 0.07, hd + handle_out)))
        y_top -= row_height

    params: Params = {"width": width, "height": height, "depth": depth, "support_height": support}
    layout = "+".join(
        f"{kind}s_{sum(1 for _ in group)}x{columns}" for (kind, columns), group in itertools.groupby(rows)
    )
    return _union(parts), "none", f"{style}/{'legs' if legs else 'plinth'}/{layout}", params


def _bin(rng: np.random.Generator) -> Built:
    """Waste bin: round (tag `inf`) or box-shaped (square `4`, oblong `2`), straight or widening
    towards the top; open ones are hollow, lidded ones are solid under a lid with a round knob."""
    round_section = bool(rng.random() < 0.5)
    height = rng.uniform(0.25, 0.7)
    square = round_section or bool(rng.random() < 0.5)
    half_x = rng.uniform(0.1, 0.2) if square else rng.uniform(0.15, 0.2)
    half_z = half_x if square else half_x * rng.uniform(0.62, 0.78)
    flare = rng.uniform(1.1, 1.2) if rng.random() < 0.5 else 1.0
    lid = bool(rng.random() < 0.4)
    bottom, top = (half_x, half_z), (half_x * flare, half_z * flare)
    lid_height = rng.uniform(0.015, 0.03) if lid else 0.0
    body_top = height - lid_height

    body = _frustum(round_section, 0.0, body_top, bottom, top)
    if lid:
        rim = (top[0] + 0.008, top[1] + 0.008)
        lid_part = _frustum(round_section, body_top - _JOIN, height, rim, rim)
        knob = _post(0.0, 0.0, height - _JOIN, height + 0.025, 0.02)
        mesh = _union([body, lid_part, knob])
    else:
        wall, floor = rng.uniform(0.004, 0.012), rng.uniform(0.01, 0.025)
        # the cavity walls run parallel to the outer walls and poke out of the top
        slope = ((top[0] - bottom[0]) / body_top, (top[1] - bottom[1]) / body_top)
        overshoot = body_top + 0.05
        cavity = _frustum(
            round_section,
            floor,
            overshoot,
            (bottom[0] + slope[0] * floor - wall, bottom[1] + slope[1] * floor - wall),
            (bottom[0] + slope[0] * overshoot - wall, bottom[1] + slope[1] * overshoot - wall),
        )
        mesh = _difference(body, cavity)

    sym = "inf" if round_section else ("4" if square else "2")
    params: Params = {"width": 2 * top[0], "depth": 2 * top[1], "height": height, "flare": flare, "lid": lid}
    shape = "round" if round_section else ("square" if square else "oblong")
    variant = f"{shape}/{'tapered' if flare > 1 else 'straight'}/{'lid' if lid else 'open'}"
    return mesh, sym, variant, params


def _display(rng: np.random.Generator) -> Built:
    """Monitor or television: flat panel whose screen (a shallow recess inside a thin bezel) faces
    +Z, a housing at the back, on a stand (plate and neck, or two feet) or wall-style (panel only)."""
    style = str(rng.choice(["stand_plate", "stand_feet", "wall"]))
    width = rng.uniform(0.5, 1.3)
    aspect = float(rng.choice([16 / 9, 16 / 10]))
    panel_height, panel_thickness = width / aspect, rng.uniform(0.012, 0.03)
    bezel, housing_depth = rng.uniform(0.005, 0.02), rng.uniform(0.025, 0.05)
    lift = 0.0 if style == "wall" else rng.uniform(0.05, 0.15)
    hw, front = width / 2, panel_thickness / 2
    y0, y1 = lift, lift + panel_height
    yc = (y0 + y1) / 2

    panel = _box((-hw, y0, -front), (hw, y1, front))
    screen = _box((-hw + bezel, y0 + bezel, front - 0.002), (hw - bezel, y1 - bezel, front + 0.01))
    housing_half = (hw * rng.uniform(0.5, 0.8), panel_height * rng.uniform(0.25, 0.4))
    back = -front - housing_depth
    parts = [
        _difference(panel, screen),
        _box((-housing_half[0], yc - housing_half[1], back), (housing_half[0], yc + housing_half[1], -front + _JOIN)),
    ]
    plate = 0.02
    base_depth = float(np.clip(width * rng.uniform(0.22, 0.32), 0.15, 0.3))
    if style == "stand_plate":
        neck_half, neck_depth = rng.uniform(0.025, 0.05), 0.03
        base_half = max(neck_half + 0.05, width * rng.uniform(0.15, 0.3))
        parts.append(_box((-neck_half, plate - _JOIN, back - neck_depth), (neck_half, yc, back + _JOIN)))
        parts.append(_box((-base_half, 0.0, back - neck_depth), (base_half, plate, back - neck_depth + base_depth)))
    elif style == "stand_feet":
        for x in _both_sides(0.35 * width):
            parts.append(_box((x - 0.02, 0.0, -base_depth * 0.4), (x + 0.02, plate, base_depth * 0.6)))
            parts.append(_box((x - 0.015, plate - _JOIN, -0.01), (x + 0.015, y0 + 0.03, 0.0)))

    params: Params = {"width": width, "panel_height": panel_height, "aspect": aspect, "bezel": bezel}
    return _union(parts), "none", style, params


def _bathtub(rng: np.random.Generator) -> Built:
    """Bathtub, long axis along X, hollow basin (outer shell minus cavity), optionally on four feet.
    `rectangular`: box shell with a tap deck and spout at the +X end (tag `none`); `rounded`: oval
    shell widening towards the rim around an ellipsoidal basin, centred (tag `2`)."""
    rounded = bool(rng.random() < 0.5)
    feet = bool(rng.random() < 0.4)
    length, width = rng.uniform(1.5, 1.85), rng.uniform(0.7, 0.85)
    # a tub on feet stands higher so that its basin stays over 0.3 m deep
    height = rng.uniform(0.5, 0.6) if feet else rng.uniform(0.45, 0.6)
    rim, floor = rng.uniform(0.06, 0.1), rng.uniform(0.04, 0.07)
    foot = rng.uniform(0.06, 0.1) if feet else 0.0
    hl, hw = length / 2, width / 2
    basin_bottom = foot + floor

    if rounded:
        shell = _frustum(True, foot, height, (0.9 * hl, 0.9 * hw), (hl, hw))
        # the basin's half-width at any height stays inside the shell's (checked for these ranges)
        cavity = _ellipsoid((0.0, height, 0.0), (hl - rim, height - basin_bottom, hw - rim))
        parts = [_difference(shell, cavity)]
        feet_at = _four_corners(0.6 * hl, 0.55 * hw)
    else:
        deck = rng.uniform(0.12, 0.2)
        shell = _box((-hl, foot, -hw), (hl, height, hw))
        x0, x1 = -hl + rim, hl - deck
        top_half, bottom_half = ((x1 - x0) / 2, hw - rim), ((x1 - x0) / 2 - 0.1, hw - rim - 0.06)
        cavity = _frustum(False, basin_bottom, height + 0.05, bottom_half, top_half)
        cavity.apply_translation(((x0 + x1) / 2, 0.0, 0.0))
        spout_x = hl - deck / 2
        parts = [
            _difference(shell, cavity),
            _post(spout_x, 0.0, height - _JOIN, height + 0.08, 0.018),
            _rod((spout_x, height + 0.065, 0.0), (spout_x - deck / 2 - 0.04, height + 0.065, 0.0), 0.012),
        ]
        feet_at = _four_corners(hl - 0.12, hw - 0.1)
    if feet:
        for x, z in feet_at:
            foot_part = _frustum(True, 0.0, foot + 0.03, (0.025, 0.025), (0.04, 0.04), _THIN_SECTIONS)
            parts.append(foot_part.apply_translation((x, 0.0, z)))

    params: Params = {"length": length, "width": width, "height": height, "rim": rim, "feet": feet}
    variant = f"{'rounded' if rounded else 'rectangular'}/{'feet' if feet else 'floor'}"
    return _union(parts), "2" if rounded else "none", variant, params


# The `wide` style: builders for more part layouts per class, same frame and tag conventions.


def _front(
    x0: float, x1: float, y0: float, y1: float, z_body: float, z_face: float, kind: str, handle_out: float
) -> list[trimesh.Trimesh]:
    """A door or drawer front filling the cell [x0, x1] x [y0, y1] less a 4 mm gap, from the case
    front z_body to z_face, with a bar handle standing `handle_out` out of the face (metres):
    drawers centred and horizontal, doors vertical at the edge nearer x = 0, at most at hand height."""
    gap = 0.004
    x0, x1, y0, y1 = x0 + gap, x1 - gap, y0 + gap, y1 - gap
    panel = _box((x0, y0, z_body - _JOIN), (x1, y1, z_face))
    if kind == "drawer":
        xc, yc, half = (x0 + x1) / 2, (y0 + y1) / 2, min(0.07, (x1 - x0) / 4)
        return [panel, _box((xc - half, yc - 0.008, z_face - _JOIN), (xc + half, yc + 0.008, z_face + handle_out))]
    xh = x1 - 0.04 if (x0 + x1) / 2 < 0 else x0 + 0.04
    half = min(0.07, (y1 - y0) / 4)
    yc = min((y0 + y1) / 2, max(1.05, y0 + 2 * half))
    return [panel, _box((xh - 0.008, yc - half, z_face - _JOIN), (xh + 0.008, yc + half, z_face + handle_out))]


# One row of a case front: (share of the case height, kind of each cell from -X to +X), kinds
# "door", "drawer" or "open" (a compartment).
CaseRow = tuple[float, tuple[str, ...]]


@dataclass(frozen=True)
class _CaseFront:
    """How a case is finished, metres: `board` between and around open compartments, `back` board
    behind them (0: open through to -Z), door and drawer fronts `thickness` deep with handles standing
    `handle_out` out of them."""

    board: float
    back: float
    thickness: float = 0.0
    handle_out: float = 0.0


def _case(
    x: tuple[float, float], y: tuple[float, float], z: tuple[float, float], rows: Sequence[CaseRow], finish: _CaseFront
) -> list[trimesh.Trimesh]:
    """Cabinet case over x, y, z ranges (lo, hi), front at z[1], whose front is split into `rows` from
    the top down: door and drawer cells get fronts (the case body stops their thickness behind z[1]),
    open cells are compartments cut into the body."""
    body_front = z[1] - finish.thickness
    # fronts overlap the body; without them the body keeps its exact depth (and symmetry)
    body = _box((x[0], y[0], z[0]), (x[1], y[1], body_front + (_JOIN if finish.thickness else 0.0)))
    shares = np.array([share for share, _ in rows])
    edges = y[1] - np.concatenate([[0.0], np.cumsum(shares / shares.sum())]) * (y[1] - y[0])
    cavity_back = z[0] + finish.back if finish.back > 0 else z[0] - 0.05
    cavities, parts = [], []
    for row, ((_, cells), top, bottom) in enumerate(zip(rows, edges[:-1], edges[1:], strict=True)):
        columns = np.linspace(x[0], x[1], len(cells) + 1)
        for column, kind in enumerate(cells):
            x0, x1 = columns[column], columns[column + 1]
            if kind != "open":
                parts += _front(x0, x1, bottom, top, body_front, z[1], kind, finish.handle_out)
                continue
            # outer boards are whole, boards between compartments are shared
            board = finish.board
            lo = (
                x0 + (board if column == 0 else board / 2),
                bottom + (board if row == len(rows) - 1 else board / 2),
                cavity_back,
            )
            hi = (
                x1 - (board if column == len(cells) - 1 else board / 2),
                top - (board if row == 0 else board / 2),
                z[1] + 0.05,
            )
            cavities.append(_box(lo, hi))
    if cavities:
        body = _difference(body, _union(cavities))
    return [body, *parts]


def _case_stand(
    rng: np.random.Generator, hw: float, hd: float, front: float, legs: bool
) -> tuple[float, list[trimesh.Trimesh]]:
    """What a case of half width hw and half depth hd stands on: four legs (8-20 cm) or a plinth
    (3-8 cm) recessed behind the case front at z = `front`; returns (its height, its parts), metres."""
    if legs:
        height, leg = rng.uniform(0.08, 0.2), rng.uniform(0.03, 0.05)
        shape = str(rng.choice(["square", "round", "tapered"]))
        corners = _four_corners(hw - leg / 2 - 0.02, hd - leg / 2 - 0.03)
        return height, [_leg(x, z, 0.0, height + _JOIN, leg, shape) for x, z in corners]
    height, recess = rng.uniform(0.03, 0.08), rng.uniform(0.03, 0.05)
    return height, [_box((-hw + 0.02, 0.0, -hd + 0.02), (hw - 0.02, height + _JOIN, front - recess))]


def _frame_back(
    rng: np.random.Generator, style: str, inner: float, y0: float, y1: float, z0: float, z1: float
) -> list[trimesh.Trimesh]:
    """Back of a frame chair between its uprights: x in [-inner, inner], from the seat top y0 to the
    back top y1, z in [z0, z1] (metres); `panel`, `slats`, `spindles`, `ladder` or `top_rail`."""
    height = y1 - y0
    if style == "panel":
        return [_box((-inner, y0 + rng.uniform(0.0, 0.35) * height, z0), (inner, y1, z1))]
    if style == "top_rail":
        return [_box((-inner, y1 - rng.uniform(0.08, 0.16), z0), (inner, y1, z1))]
    if style in ("slats", "ladder"):
        count = int(rng.integers(2, 4)) if style == "slats" else int(rng.integers(3, 6))
        rail = rng.uniform(0.04, 0.07) if style == "slats" else rng.uniform(0.025, 0.04)
        low = y0 + (0.4 if style == "slats" else 0.15) * height
        return [_box((-inner, y, z0), (inner, y + rail, z1)) for y in np.linspace(low, y1 - rail, count)]
    rail, bottom = rng.uniform(0.04, 0.07), y0 + rng.uniform(0.05, 0.12)
    radius = min(rng.uniform(0.006, 0.01), (z1 - z0) / 2)
    parts = [_box((-inner, y1 - rail, z0), (inner, y1, z1)), _box((-inner, bottom, z0), (inner, bottom + rail, z1))]
    for x in np.linspace(-inner, inner, int(rng.integers(3, 8)) + 2)[1:-1]:
        parts.append(_post(x, (z0 + z1) / 2, bottom + rail - _JOIN, y1 - rail + _JOIN, radius))
    return parts


def _frame_chair(rng: np.random.Generator) -> Built:
    """Frame chair, back at -Z: a thin seat on four thin legs (square, round or tapered), width,
    depth and back height drawn independently, optional H or box stretchers, a back of one of five
    styles between uprights over the rear legs, optional armrests on front posts."""
    width, depth = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6)
    seat_top, seat_thickness = rng.uniform(0.4, 0.5), rng.uniform(0.015, 0.06)
    back_height, leg = rng.uniform(0.27, 0.6), rng.uniform(0.02, 0.045)
    leg_shape = str(rng.choice(["square", "round", "tapered"]))
    back_style = str(rng.choice(["panel", "slats", "spindles", "ladder", "top_rail"]))
    stretchers = str(rng.choice(["none", "h", "box"]))
    arms = bool(rng.random() < 0.35)
    hw, hd = width / 2, depth / 2
    seat_bottom, back_top = seat_top - seat_thickness, seat_top + back_height
    leg_x, leg_z = hw - leg / 2, hd - leg / 2

    parts = [_box((-hw, seat_bottom, -hd), (hw, seat_top, hd))]
    parts += [_leg(x, z, 0.0, seat_bottom + _JOIN, leg, leg_shape) for x, z in _four_corners(leg_x, leg_z)]
    for x in _both_sides(leg_x):
        parts.append(_box((x - leg / 2, seat_bottom, -hd), (x + leg / 2, back_top, -hd + leg)))
    parts += _frame_back(rng, back_style, hw - leg + _JOIN, seat_top, back_top, -hd + 0.2 * leg, -hd + 0.8 * leg)
    if stretchers != "none":
        low, bar = rng.uniform(0.1, 0.25), 0.6 * leg
        for x in _both_sides(leg_x):
            parts.append(_box((x - bar / 2, low, -leg_z), (x + bar / 2, low + bar, leg_z)))
        # H: one cross bar at mid depth; box: front and back bars a little higher
        cross_z = [0.0] if stretchers == "h" else [-leg_z, leg_z]
        cross_y = low if stretchers == "h" else low + 0.04
        for z in cross_z:
            parts.append(_box((-leg_x, cross_y, z - bar / 2), (leg_x, cross_y + bar, z + bar / 2)))
    if arms:
        arm_top, arm_width = seat_top + rng.uniform(0.18, 0.26), rng.uniform(0.04, 0.06)
        for sign in (-1, 1):
            x0, x1 = sorted((sign * hw, sign * (hw - arm_width)))
            parts.append(_box((x0, arm_top - 0.025, -hd), (x1, arm_top, hd - 0.02)))
            parts.append(_box((x0, seat_top - _JOIN, hd - 0.06), (x1, arm_top, hd - 0.03)))

    params: Params = {"width": width, "depth": depth, "seat_height": seat_top, "back_height": back_height}
    variant = f"frame/{back_style}/{leg_shape}_legs/{stretchers}_stretchers/{'arms' if arms else 'no_arms'}"
    return _union(parts), "none", variant, params


def _arm(style: str, x0: float, x1: float, y0: float, top: float, z0: float, z1: float) -> list[trimesh.Trimesh]:
    """One upholstered arm over x in [x0, x1], z in [z0, z1] (front at z1), from y0 up to `top`,
    metres: `sloped` has its upper front edge cut, `rolled` a round top along Z, others are boxes."""
    if style == "sloped":
        cut = min(0.12, (z1 - z0) / 3, (top - y0) / 3)
        return [_prism([(y0, z0), (y0, z1), (top - cut, z1), (top, z1 - cut), (top, z0)], 0, x0, x1)]
    if style == "rolled":
        radius, xc = (x1 - x0) / 2, (x0 + x1) / 2
        return [
            _box((x0, y0, z0), (x1, top - radius, z1)),
            _rod((xc, top - radius, z0), (xc, top - radius, z1), radius),
        ]
    return [_box((x0, y0, z0), (x1, top, z1))]


def _lean_limit(back_thickness: float, cushion_height: float, wanted: float) -> float:
    """Lean angle (radians) of a back cushion of `cushion_height` that keeps its top 4 cm inside a
    back of `back_thickness` (metres), at most `wanted`."""
    return min(wanted, float(np.arcsin(np.clip((back_thickness - 0.04) / cushion_height, 0.0, 1.0))))


def _lounge_chair(rng: np.random.Generator) -> Built:
    """Upholstered lounge armchair, back at -Z: a body on short legs or the floor, a seat cushion, a
    back cushion leaning back, square, sloped or rolled arms (or none); proportions drawn independently."""
    width, depth = rng.uniform(0.62, 0.85), rng.uniform(0.68, 0.85)
    seat_top, cushion = rng.uniform(0.38, 0.46), rng.uniform(0.08, 0.14)
    height, back_thickness = rng.uniform(0.72, 1.05), rng.uniform(0.1, 0.2)
    arm_style = str(rng.choice(["square", "sloped", "rolled", "none"]))
    arm_width = 0.0 if arm_style == "none" else rng.uniform(0.08, 0.16)
    arm_top = seat_top + rng.uniform(0.12, 0.22)
    legs = bool(rng.random() < 0.6)
    support = rng.uniform(0.06, 0.16) if legs else 0.0
    hw, hd = width / 2, depth / 2
    inner, base_top, back_front = hw - arm_width, seat_top - cushion, -hd + back_thickness

    parts = [_box((-hw, support, -hd), (hw, base_top, hd)), _box((-hw, support, -hd), (hw, height, back_front))]
    parts.append(_soft_box((-inner, base_top - _JOIN, back_front - _JOIN), (inner, seat_top, hd)))
    back_cushion_top = seat_top + 0.75 * (height - seat_top)
    lean = _lean_limit(back_thickness, back_cushion_top - seat_top, rng.uniform(0.1, 0.25))
    back_cushion = _soft_box(
        (-inner, seat_top - 0.03, back_front - 0.02), (inner, back_cushion_top, back_front + rng.uniform(0.08, 0.14))
    )
    parts += _leaned([back_cushion], lean, (0.0, seat_top, back_front))
    if arm_width:
        for sign in (-1, 1):
            x0, x1 = sorted((sign * hw, sign * inner))
            parts += _arm(arm_style, x0, x1, support, arm_top, -hd, hd)
    if legs:
        leg, shape = rng.uniform(0.03, 0.05), str(rng.choice(["square", "round", "tapered"]))
        for x, z in _four_corners(hw - leg / 2 - 0.02, hd - leg / 2 - 0.02):
            parts.append(_leg(x, z, 0.0, support + _JOIN, leg, shape))

    params: Params = {"width": width, "depth": depth, "seat_height": seat_top, "height": height}
    return _union(parts), "none", f"lounge/{arm_style}_arms/{'legs' if legs else 'floor'}", params


def _swivel_chair(rng: np.random.Generator) -> Built:
    """Office swivel chair, back at -Z: five-spoke star base on casters or glides, gas column, a
    mechanism under a seat cushion, a back cushion on a spine (optionally with a headrest), optional
    T-armrests; the five spokes have no 90/180 deg symmetry, like the rest of the chair."""
    star_radius, casters = rng.uniform(0.28, 0.34), bool(rng.random() < 0.7)
    width, depth = rng.uniform(0.44, 0.56), rng.uniform(0.42, 0.52)
    seat_top, seat_thickness = rng.uniform(0.42, 0.52), rng.uniform(0.06, 0.1)
    back_bottom = seat_top + rng.uniform(0.04, 0.12)
    headrest, arms = bool(rng.random() < 0.35), bool(rng.random() < 0.6)
    headrest_height = rng.uniform(0.1, 0.14) if headrest else 0.0
    # the whole chair stays under 1.17 m
    back_top = min(back_bottom + rng.uniform(0.38, 0.58), 1.17 - (headrest_height + 0.04 if headrest else 0.0))
    hw, hd = width / 2, depth / 2
    seat_bottom = seat_top - seat_thickness
    foot = 0.025
    spoke_y = (2 * foot - 0.01, 2 * foot + 0.03) if casters else (0.02, 0.06)

    parts = [_post(0.0, 0.0, spoke_y[0], seat_bottom - 0.05, rng.uniform(0.022, 0.032))]
    for k in range(5):
        turn = rotation_matrix(2 * np.pi * k / 5, (0, 1, 0))
        spoke = _box((0.0, spoke_y[0], -0.02), (star_radius, spoke_y[1], 0.02))
        if casters:
            wheel = _ellipsoid((star_radius - foot, foot, 0.0), (foot, foot, foot), subdivisions=1)
        else:
            wheel = _post(star_radius - foot, 0.0, 0.0, spoke_y[0] + _JOIN, 0.018)
        parts += [spoke.apply_transform(turn), wheel.apply_transform(turn)]
    parts.append(_box((-0.1, seat_bottom - 0.06, -0.12), (0.1, seat_bottom + _JOIN, 0.12)))
    parts.append(_soft_box((-hw, seat_bottom, -hd), (hw, seat_top, hd), 0.02))
    # spine: from under the seat to the back of the back cushion
    parts.append(_box((-0.03, seat_bottom - 0.05, -hd - 0.05), (0.03, seat_bottom - 0.01, -0.1)))
    parts.append(_box((-0.03, seat_bottom - 0.05, -hd - 0.05), (0.03, back_bottom + 0.1, -hd - 0.02)))
    back_half = hw * rng.uniform(0.85, 1.02)
    parts.append(_soft_box((-back_half, back_bottom, -hd - 0.07), (back_half, back_top, -hd), 0.025))
    if headrest:
        head_y = back_top + 0.04
        parts.append(_box((-0.02, back_top - 0.05, -hd - 0.05), (0.02, head_y + 0.03, -hd - 0.02)))
        parts.append(_soft_box((-0.14, head_y, -hd - 0.07), (0.14, head_y + headrest_height, -hd), 0.02))
    if arms:
        arm_top = seat_top + rng.uniform(0.18, 0.25)
        for sign in (-1, 1):
            x = sign * (hw + 0.025)
            x0, x1 = sorted((sign * (hw - 0.05), sign * (hw + 0.04)))
            parts.append(_box((x0, seat_bottom - 0.03, -0.03), (x1, seat_bottom + 0.01, 0.0)))
            parts.append(_box((x - 0.015, seat_bottom - 0.03, -0.03), (x + 0.015, arm_top, 0.0)))
            parts.append(_soft_box((x - 0.035, arm_top - 0.025, -0.13), (x + 0.035, arm_top, 0.11), 0.01))

    params: Params = {"width": width, "depth": depth, "seat_height": seat_top, "back_top": back_top}
    variant = (
        f"swivel/{'arms' if arms else 'no_arms'}/{'headrest' if headrest else 'no_headrest'}/"
        f"{'casters' if casters else 'glides'}"
    )
    return _union(parts), "none", variant, params


def _bar_stool(rng: np.random.Generator) -> Built:
    """Bar or counter stool, seat 0.65-0.8 m high: round or square seat on four legs splaying out on
    the diagonals, tied by a foot ring, or on a column over a round foot plate with or without a
    foot ring on four spokes; optional low back at -Z. Backless stools are symmetric: tag `inf`
    when everything is round (column, no ring, round seat), else `4`."""
    seat_top, seat_thickness = rng.uniform(0.65, 0.8), rng.uniform(0.03, 0.07)
    round_seat = bool(rng.random() < 0.6)
    seat_half = rng.uniform(0.2, 0.22)
    base = str(rng.choice(["legs", "column_ring", "column"]))
    back = bool(rng.random() < 0.35)
    seat_bottom = seat_top - seat_thickness
    ring_y = rng.uniform(0.22, 0.32)

    if round_seat:
        parts = [_post(0.0, 0.0, seat_bottom, seat_top, seat_half, _ROUND_SECTIONS)]
    else:
        parts = [_box((-seat_half, seat_bottom, -seat_half), (seat_half, seat_top, seat_half))]
    if base == "legs":
        radius, top_at = rng.uniform(0.012, 0.02), rng.uniform(0.6, 0.75) * seat_half
        foot_at = top_at + rng.uniform(0.02, 0.08)
        for (x0, z0), (x1, z1) in zip(
            _four_corners(foot_at / np.sqrt(2), foot_at / np.sqrt(2)),
            _four_corners(top_at / np.sqrt(2), top_at / np.sqrt(2)),
            strict=True,
        ):
            parts.append(_rod((x0, 0.0, z0), (x1, seat_bottom + _JOIN, z1), radius))
        # the ring runs through the leg axes at its height
        ring_at = foot_at + (top_at - foot_at) * ring_y / seat_bottom
        parts.append(_ring(ring_y, ring_y + 0.015, ring_at - 0.01, ring_at + 0.01))
    else:
        plate, column = rng.uniform(0.015, 0.03), rng.uniform(0.025, 0.035)
        parts.append(_post(0.0, 0.0, 0.0, plate, rng.uniform(0.19, 0.23), _ROUND_SECTIONS))
        parts.append(_post(0.0, 0.0, plate - _JOIN, seat_bottom + _JOIN, column, _ROUND_SECTIONS))
        if base == "column_ring":
            ring_at = rng.uniform(0.14, 0.17)
            parts.append(_ring(ring_y, ring_y + 0.015, ring_at - 0.01, ring_at + 0.01))
            for k in range(4):
                angle = np.pi / 2 * k
                tip = (ring_at * np.cos(angle), ring_y + 0.0075, ring_at * np.sin(angle))
                parts.append(_rod((0.0, ring_y + 0.0075, 0.0), tip, 0.007))
    if back:
        back_top, upright = seat_top + rng.uniform(0.2, 0.3), 0.13
        for x in _both_sides(upright):
            # uprights stand on the seat's rear edge, round or square
            z = -np.sqrt(seat_half**2 - upright**2) + 0.012 if round_seat else -seat_half + 0.012
            parts.append(_box((x - 0.012, seat_top - _JOIN, z - 0.01), (x + 0.012, back_top, z + 0.01)))
        board_z = (-np.sqrt(seat_half**2 - upright**2) if round_seat else -seat_half) + 0.012
        parts.append(
            _box(
                (-upright - 0.04, back_top - rng.uniform(0.07, 0.12), board_z - 0.012),
                (upright + 0.04, back_top, board_z + 0.012),
            )
        )

    if back:
        sym = "none"
    else:
        sym = "inf" if (round_seat and base == "column") else "4"
    params: Params = {"seat_height": seat_top, "seat_width": 2 * seat_half, "back": back}
    variant = f"bar_stool/{'round' if round_seat else 'square'}_seat/{base}/{'back' if back else 'no_back'}"
    return _union(parts), sym, variant, params


def _cantilever_chair(rng: np.random.Generator) -> Built:
    """Cantilever chair, back at -Z: at each side (+-X) a bent tube running along the floor from the rear
    to the front, up to the seat, back under it and up behind the back; the seat is a panel or a
    cushion, the back a panel or two slats."""
    width, depth = rng.uniform(0.42, 0.52), rng.uniform(0.44, 0.56)
    seat_top, seat_thickness = rng.uniform(0.42, 0.48), rng.uniform(0.02, 0.06)
    back_top, tube = seat_top + rng.uniform(0.3, 0.45), rng.uniform(0.009, 0.014)
    cushion = bool(rng.random() < 0.5)
    slats = bool(rng.random() < 0.5)
    hw, hd = width / 2, depth / 2
    seat_bottom = seat_top - seat_thickness
    rail_y, front_z, back_z = seat_bottom - tube + _JOIN, hd - 0.03, -hd + tube

    parts = []
    for x in _both_sides(hw - tube):
        path = [
            (x, tube, -hd + 0.06),
            (x, tube, front_z),
            (x, rail_y, front_z),
            (x, rail_y, back_z),
            (x, back_top, back_z),
        ]
        parts += _tube(path, tube)
    seat = (-hw, seat_bottom, -hd), (hw, seat_top, hd)
    parts.append(_soft_box(*seat, 0.02) if cushion else _box(*seat))
    back_low = seat_top + rng.uniform(0.06, 0.12)
    if slats:
        slat = (back_top - back_low) * 0.35
        for y in (back_low, back_top - slat):
            parts.append(_box((-hw, y, -hd), (hw, y + slat, -hd + 2 * tube)))
    else:
        parts.append(_box((-hw, back_low, -hd), (hw, back_top, -hd + 2 * tube)))

    params: Params = {"width": width, "depth": depth, "seat_height": seat_top, "back_top": back_top}
    variant = f"cantilever/{'cushion' if cushion else 'panel'}_seat/{'slats' if slats else 'panel'}_back"
    return _union(parts), "none", variant, params


def _wood_arm(
    x0: float, x1: float, y0: float, base_top: float, top: float, z0: float, z1: float
) -> list[trimesh.Trimesh]:
    """One open wooden arm over x in [x0, x1], z in [z0, z1] (front at z1): a side board up to the
    seat base top, two posts and an arm board at `top`; metres."""
    return [
        _box((x0, y0, z0), (x1, base_top, z1)),
        _box((x0, y0, z0), (x1, top, z0 + 0.05)),
        _box((x0, y0, z1 - 0.07), (x1, top, z1 - 0.03)),
        _box((x0, top - 0.03, z0), (x1, top, z1)),
    ]


def _cushion_sofa(rng: np.random.Generator) -> Built:
    """Straight sofa, back at -Z, with loose cushions: one bench seat cushion or one per seat, a back
    cushion per seat leaning back; square, sloped, rolled, tuxedo (as high as the back), wooden or
    no arms; on tall thin legs, bun feet or a plinth. Width, depth and back height drawn independently."""
    seats = int(rng.integers(2, 5))
    width = rng.uniform(*{2: (1.3, 1.9), 3: (1.8, 2.5), 4: (2.3, 2.85)}[seats])
    depth, seat_top = rng.uniform(0.78, 1.02), rng.uniform(0.4, 0.47)
    height, back_thickness = rng.uniform(0.68, 0.98), rng.uniform(0.12, 0.24)
    cushion, bench = rng.uniform(0.1, 0.17), bool(rng.random() < 0.4)
    arm_style = str(rng.choice(["square", "sloped", "rolled", "tuxedo", "wood", "none"]))
    if arm_style == "none":
        arm_width = 0.0
    else:
        arm_width = rng.uniform(0.05, 0.09) if arm_style == "wood" else rng.uniform(0.1, 0.24)
    arm_top = height if arm_style == "tuxedo" else rng.uniform(seat_top + 0.12, min(seat_top + 0.25, height - 0.05))
    base = str(rng.choice(["tall_legs", "bun_feet", "plinth"]))
    support = 0.0 if base == "plinth" else rng.uniform(0.12, 0.18) if base == "tall_legs" else rng.uniform(0.04, 0.08)
    hw, hd = width / 2, depth / 2
    inner, base_top, back_front = hw - arm_width, seat_top - cushion, -hd + back_thickness

    parts = [_box((-hw, support, -hd), (hw, base_top, hd)), _box((-hw, support, -hd), (hw, height, back_front))]
    seat_lo, seat_hi = (-inner, base_top - _JOIN, back_front - _JOIN), (inner, seat_top, hd)
    parts += _cushions(seat_lo, seat_hi, 1 if bench else seats)
    back_cushion_top = seat_top + (height - seat_top) * rng.uniform(0.7, 0.9)
    lean = _lean_limit(back_thickness, back_cushion_top - seat_top, rng.uniform(0.08, 0.25))
    back_lo = (-inner, seat_top - 0.03, back_front - 0.02)
    back_hi = (inner, back_cushion_top, back_front + rng.uniform(0.1, 0.16))
    parts += _leaned(_cushions(back_lo, back_hi, seats), lean, (0.0, seat_top, back_front))
    for sign in (-1, 1):
        x0, x1 = sorted((sign * hw, sign * inner))
        if arm_style == "wood":
            parts += _wood_arm(x0, x1, support, base_top, arm_top, -hd, hd)
        elif arm_style != "none":
            parts += _arm("square" if arm_style == "tuxedo" else arm_style, x0, x1, support, arm_top, -hd, hd)
    if support:
        size = rng.uniform(0.025, 0.04) if base == "tall_legs" else rng.uniform(0.06, 0.09)
        shape = str(rng.choice(["round", "tapered"])) if base == "tall_legs" else "round"
        # sofas of three seats and more have a middle pair of legs
        xs = [-hw + 0.06, 0.0, hw - 0.06] if seats >= 3 else [-hw + 0.06, hw - 0.06]
        for x, z in itertools.product(xs, (-hd + 0.06, hd - 0.06)):
            parts.append(_leg(x, z, 0.0, support + _JOIN, size, shape))

    params: Params = {"seats": seats, "width": width, "depth": depth, "seat_height": seat_top, "height": height}
    variant = f"{seats}_seats/{'bench' if bench else 'split'}_cushion/{arm_style}_arms/{base}"
    return _union(parts), "none", variant, params


def _corner_sofa(rng: np.random.Generator) -> Built:
    """Corner sofa: a back along -Z over the whole width and a second back along one side (+X or -X)
    over a wing reaching forward to +Z; seat and back cushions along both, an arm at each open end
    (or none); on legs or a plinth. Built with the wing at +X, then mirrored for the -X side."""
    width, depth = rng.uniform(2.0, 2.8), rng.uniform(1.45, 1.8)
    seat_depth = rng.uniform(0.82, min(0.98, depth - 0.5))
    seat_top, cushion = rng.uniform(0.4, 0.46), rng.uniform(0.1, 0.15)
    height, back_thickness = rng.uniform(0.72, 0.95), rng.uniform(0.14, 0.24)
    arms = bool(rng.random() < 0.7)
    arm_width, arm_top = (rng.uniform(0.1, 0.2) if arms else 0.0), rng.uniform(0.55, 0.65)
    legs = bool(rng.random() < 0.6)
    support = rng.uniform(0.04, 0.12) if legs else 0.0
    side = int(rng.choice([-1, 1]))
    hw, hd = width / 2, depth / 2
    base_top, main_front, wing_x = seat_top - cushion, -hd + seat_depth, hw - seat_depth
    back_front, wing_back = -hd + back_thickness, hw - back_thickness
    wing_end = hd - arm_width

    parts = [
        _box((-hw, support, -hd), (hw, base_top, main_front)),
        _box((wing_x, support, -hd), (hw, base_top, hd)),
        _box((-hw, support, -hd), (hw, height, back_front)),
        _box((wing_back, support, -hd), (hw, height, wing_end)),
    ]
    if arms:
        parts.append(_box((-hw, support, -hd), (-hw + arm_width, arm_top, main_front)))
        parts.append(_box((wing_x, support, wing_end), (hw, arm_top, hd)))
    main_cushions = max(2, round((wing_x + hw - arm_width) / 0.75))
    parts += _cushions((-hw + arm_width, base_top - _JOIN, back_front), (wing_x, seat_top, main_front), main_cushions)
    parts.append(_soft_box((wing_x + 0.005, base_top - _JOIN, back_front), (wing_back, seat_top, main_front - 0.005)))
    wing_cushions = max(1, round((wing_end - main_front) / 0.7))
    parts += _cushions((wing_x, base_top - _JOIN, main_front), (wing_back, seat_top, wing_end), wing_cushions, axis=2)
    back_cushion_top, pillow = height - rng.uniform(0.04, 0.1), rng.uniform(0.1, 0.16)
    back_y = (seat_top - 0.03, back_cushion_top)
    parts += _cushions(
        (-hw + arm_width, back_y[0], back_front - 0.02), (wing_back, back_y[1], back_front + pillow), main_cushions
    )
    parts += _cushions(
        (wing_back - pillow, back_y[0], back_front), (wing_back + 0.02, back_y[1], wing_end), wing_cushions, axis=2
    )
    if support:
        # a leg 6 cm inside each corner of the L outline, the inner corner included
        inset = 0.06
        for x, z in (
            (-hw + inset, -hd + inset),
            (-hw + inset, main_front - inset),
            (hw - inset, -hd + inset),
            (hw - inset, hd - inset),
            (wing_x + inset, hd - inset),
            (wing_x - inset, main_front - inset),
        ):
            parts.append(_box((x - 0.025, 0.0, z - 0.025), (x + 0.025, support + _JOIN, z + 0.025)))

    mesh = _union(parts)
    if side < 0:
        mesh = _mirrored_x(mesh)
    params: Params = {
        "width": width,
        "depth": depth,
        "seat_depth": seat_depth,
        "seat_height": seat_top,
        "height": height,
    }
    variant = f"corner_{'right' if side > 0 else 'left'}/{'arms' if arms else 'no_arms'}/{'legs' if legs else 'plinth'}"
    return mesh, "none", variant, params


def _desk(rng: np.random.Generator) -> Built:
    """Writing desk, user side at +Z: a rectangular top over a drawer pedestal at one end (+X or -X,
    drawer fronts and handles facing +Z), two legs or a side panel at the other end, an optional
    modesty panel at the back (-Z)."""
    length, depth, height = rng.uniform(1.0, 1.8), rng.uniform(0.5, 0.8), rng.uniform(0.72, 0.78)
    thickness, side = rng.uniform(0.02, 0.04), int(rng.choice([-1, 1]))
    drawers, pedestal_width = int(rng.integers(2, 5)), rng.uniform(0.36, 0.46)
    other_end = str(rng.choice(["legs", "panel"]))
    modesty = bool(rng.random() < 0.6)
    hl, hd = length / 2, depth / 2
    under = height - thickness

    parts = [_box((-hl, under, -hd), (hl, height, hd))]
    pedestal_x = sorted((side * hl, side * (hl - pedestal_width)))
    finish = _CaseFront(
        board=0.018, back=0.0, thickness=rng.uniform(0.015, 0.022), handle_out=rng.uniform(0.018, 0.025)
    )
    parts += _case(pedestal_x, (0.0, under + _JOIN), (-hd + 0.03, hd - 0.03), [(1.0, ("drawer",))] * drawers, finish)
    end_x = -side * (hl - 0.05)
    if other_end == "legs":
        leg, shape = rng.uniform(0.04, 0.06), str(rng.choice(["square", "round"]))
        parts += [_leg(end_x, z, 0.0, under + _JOIN, leg, shape) for z in _both_sides(hd - 0.05)]
    else:
        panel = rng.uniform(0.025, 0.05)
        x0, x1 = sorted((-side * (hl - 0.02), -side * (hl - 0.02 - panel)))
        parts.append(_box((x0, 0.0, -hd + 0.02), (x1, under + _JOIN, hd - 0.02)))
    if modesty:
        x0, x1 = sorted((-side * (hl - 0.03), side * (hl - pedestal_width + _JOIN)))
        parts.append(_box((x0, under - rng.uniform(0.25, 0.4), -hd + 0.04), (x1, under + _JOIN, -hd + 0.06)))

    params: Params = {"length": length, "width": depth, "height": height, "drawers": drawers}
    variant = f"desk/pedestal_{'right' if side > 0 else 'left'}/{other_end}/{'modesty' if modesty else 'open_back'}"
    return _union(parts), "none", variant, params


def _splay(corner: tuple[float, float], by: float) -> tuple[float, float]:
    """Point (x, z) moved `by` metres further from the Y axis, along its own direction."""
    x, z = corner
    scale = 1 + by / float(np.hypot(x, z))
    return x * scale, z * scale


def _side_table(rng: np.random.Generator) -> Built:
    """Side / end table 0.45-0.65 m high: a square, round or small oblong top on four straight or
    splayed thin legs with an optional lower shelf, or a round top on three splayed legs (tag `none`:
    three legs have no 90/180 deg symmetry)."""
    top = str(rng.choice(["square", "round", "oblong"]))
    base = "tripod" if top == "round" and rng.random() < 0.4 else str(rng.choice(["straight", "splayed"]))
    height, thickness = rng.uniform(0.45, 0.65), rng.uniform(0.018, 0.04)
    if top == "oblong":
        length = rng.uniform(0.62, 0.8)
        width = max(0.46, length / rng.uniform(1.3, 1.6))
    else:
        length = width = rng.uniform(0.46, 0.6)
    shelf = base != "tripod" and bool(rng.random() < 0.5)
    leg, inset, splay = rng.uniform(0.025, 0.04), rng.uniform(0.03, 0.06), rng.uniform(0.02, 0.05)
    leg_shape = str(rng.choice(["square", "round", "tapered"]))
    hl, hw = length / 2, width / 2
    under = height - thickness

    if top == "round":
        parts = [_post(0.0, 0.0, under, height, hl, _ROUND_SECTIONS)]
        reach = hl - inset - leg
        corners = _four_corners(reach / np.sqrt(2), reach / np.sqrt(2))
    else:
        parts = [_box((-hl, under, -hw), (hl, height, hw))]
        corners = _four_corners(hl - inset - leg / 2, hw - inset - leg / 2)
    if base == "tripod":
        angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
        corners = [(0.6 * hl * np.cos(a), 0.6 * hl * np.sin(a)) for a in angles]
    for corner in corners:
        if base == "straight":
            parts.append(_leg(*corner, 0.0, under + _JOIN, leg, leg_shape))
        else:
            x, z = _splay(corner, splay)
            parts.append(_rod((x, 0.0, z), (corner[0], under + _JOIN, corner[1]), leg / 2))
    if shelf:
        shelf_y = rng.uniform(0.1, 0.22)
        # the shelf reaches the leg axes at its height
        out = 0.0 if base == "straight" else splay * (1 - shelf_y / under)
        sx, sz = _splay(corners[-1], out) if out else corners[-1]
        if top == "round":
            parts.append(_post(0.0, 0.0, shelf_y, shelf_y + 0.02, float(np.hypot(sx, sz)), _ROUND_SECTIONS))
        else:
            parts.append(_box((-abs(sx), shelf_y, -abs(sz)), (abs(sx), shelf_y + 0.02, abs(sz))))

    sym = "none" if base == "tripod" else ("2" if top == "oblong" else "4")
    params: Params = {"length": length, "width": width, "height": height}
    return _union(parts), sym, f"side/{top}/{base}_legs/{'shelf' if shelf else 'no_shelf'}", params


def _splayed_table(rng: np.random.Generator) -> Built:
    """Dining or coffee table on four splayed round legs or on hairpin legs (two thin rods from the
    top meeting at the floor), with a rectangular, oval, square or round top; tag `2` for the
    oblong tops, `4` for the others."""
    dining = bool(rng.random() < 0.6)
    top = str(rng.choice(["rectangular", "oval", "square", "round"]))
    hairpin = bool(rng.random() < 0.4)
    height = rng.uniform(0.70, 0.78) if dining else rng.uniform(0.35, 0.5)
    length, width = _table_top_size(rng, "rectangular" if top == "oval" else top, dining)
    thickness, inset, splay = rng.uniform(0.02, 0.045), rng.uniform(0.06, 0.15), rng.uniform(0.03, 0.08)
    hl, hw = length / 2, width / 2
    under = height - thickness

    if top in ("round", "oval"):
        parts = [_frustum(True, under, height, (hl, hw), (hl, hw))]
        # on the diagonals of the ellipse's bounding box, inside the ellipse
        corners = _four_corners((hl - inset) / np.sqrt(2), (hw - inset) / np.sqrt(2))
    else:
        parts = [_box((-hl, under, -hw), (hl, height, hw))]
        corners = _four_corners(hl - inset, hw - inset)
    radius = rng.uniform(0.015, 0.025) if dining else rng.uniform(0.012, 0.02)
    for x, z in corners:
        foot = _splay((x, z), splay)
        if hairpin:
            # two rods from the top, one along each edge through the corner
            arm = min(0.12, abs(x), abs(z)) * 0.8
            rods = [(x - np.sign(x) * arm, z), (x, z - np.sign(z) * arm)]
            parts += [_rod((foot[0], 0.0, foot[1]), (rx, under + _JOIN, rz), 0.007) for rx, rz in rods]
        else:
            parts.append(_rod((foot[0], 0.0, foot[1]), (x, under + _JOIN, z), radius))

    sym = "2" if top in ("rectangular", "oval") else "4"
    params: Params = {"length": length, "width": width, "height": height}
    variant = f"{top}/{'hairpin' if hairpin else 'splayed'}_legs/{'dining' if dining else 'coffee'}"
    return _union(parts), sym, variant, params


def _panel_table(rng: np.random.Generator) -> Built:
    """Dining or coffee table with a rectangular top on two solid end panels (flush with the top's
    ends, waterfall, or set in), joined by a low shelf, a stretcher or nothing; tag `2`."""
    dining = bool(rng.random() < 0.5)
    height = rng.uniform(0.70, 0.78) if dining else rng.uniform(0.35, 0.5)
    length, width = _table_top_size(rng, "rectangular", dining)
    thickness, panel = rng.uniform(0.025, 0.05), rng.uniform(0.03, 0.07)
    waterfall = bool(rng.random() < 0.5)
    inset = 0.0 if waterfall else rng.uniform(0.08, 0.2)
    panel_half = width / 2 if waterfall else width / 2 * rng.uniform(0.6, 0.9)
    link = str(rng.choice(["shelf", "stretcher", "none"]))
    hl, hw = length / 2, width / 2
    under = height - thickness

    parts = [_box((-hl, under, -hw), (hl, height, hw))]
    end = hl - inset
    for sign in (-1, 1):
        x0, x1 = sorted((sign * end, sign * (end - panel)))
        parts.append(_box((x0, 0.0, -panel_half), (x1, under + _JOIN, panel_half)))
    if link == "shelf":
        shelf_y = rng.uniform(0.06, 0.2)
        parts.append(
            _box((-end + _JOIN, shelf_y, -0.85 * panel_half), (end - _JOIN, shelf_y + 0.025, 0.85 * panel_half))
        )
    elif link == "stretcher":
        bar_y = 0.3 * under
        parts.append(_box((-end + _JOIN, bar_y, -0.025), (end - _JOIN, bar_y + 0.05, 0.025)))

    params: Params = {"length": length, "width": width, "height": height}
    variant = f"rectangular/{'waterfall' if waterfall else 'panel_ends'}/{link}/{'dining' if dining else 'coffee'}"
    return _union(parts), "2", variant, params


def _cross_base_table(rng: np.random.Generator) -> Built:
    """Dining or coffee table with a round or square top on a central column over four feet in a
    cross (along X and Z) or an X (along the diagonals); tag `4`."""
    dining = bool(rng.random() < 0.6)
    top = str(rng.choice(["round", "square"]))
    diagonal = bool(rng.random() < 0.5)
    height = rng.uniform(0.70, 0.78) if dining else rng.uniform(0.35, 0.5)
    length, _ = _table_top_size(rng, top, dining)
    thickness, column = rng.uniform(0.02, 0.05), rng.uniform(0.035, 0.065)
    foot_length = min(0.9 * length / 2, rng.uniform(0.25, 0.4) if dining else rng.uniform(0.2, 0.3))
    foot_height, foot_width = rng.uniform(0.03, 0.06), rng.uniform(0.04, 0.07)
    half = length / 2
    under = height - thickness

    if top == "round":
        parts = [_post(0.0, 0.0, under, height, half, _ROUND_SECTIONS)]
    else:
        parts = [_box((-half, under, -half), (half, height, half))]
    parts.append(_post(0.0, 0.0, foot_height - _JOIN, under + _JOIN, column, _ROUND_SECTIONS))
    for k in range(4):
        foot = _box((0.0, 0.0, -foot_width / 2), (foot_length, foot_height, foot_width / 2))
        parts.append(foot.apply_transform(rotation_matrix(np.pi / 2 * k + (np.pi / 4 if diagonal else 0.0), (0, 1, 0))))

    params: Params = {"length": length, "width": length, "height": height}
    variant = f"{top}/{'x' if diagonal else 'cross'}_base/{'dining' if dining else 'coffee'}"
    return _union(parts), "4", variant, params


# Mattress width ranges (metres) of the bed sizes.
_BED_SIZES = {"single": (0.9, 1.0), "double": (1.35, 1.6), "king": (1.6, 1.8)}


def _bed_base(rng: np.random.Generator, style: str, hw: float, hl: float, frame_top: float) -> list[trimesh.Trimesh]:
    """What a mattress lies on, x in [-hw, hw], z in [-hl, hl], top at frame_top (metres): a frame on
    legs (a middle pair under wide beds), a box base, a thin platform over a recessed plinth, or a
    box base with two drawers on each side (+-X)."""
    if style == "legs":
        leg, shape = rng.uniform(0.04, 0.07), str(rng.choice(["square", "round", "tapered"]))
        foot = rng.uniform(0.1, frame_top - 0.08)
        xs = (-hw + 0.05, 0.0, hw - 0.05) if hw > 0.7 else (-hw + 0.05, hw - 0.05)
        legs = [_leg(x, z, 0.0, foot + _JOIN, leg, shape) for x, z in itertools.product(xs, (-hl + 0.05, hl - 0.05))]
        return [_box((-hw, foot, -hl), (hw, frame_top, hl)), *legs]
    if style == "platform":
        slab, plinth_inset = rng.uniform(0.05, 0.08), rng.uniform(0.1, 0.25)
        plinth = _box(
            (-hw + plinth_inset, 0.0, -hl + 0.05), (hw - plinth_inset, frame_top - slab + _JOIN, hl - plinth_inset)
        )
        return [_box((-hw, frame_top - slab, -hl), (hw, frame_top, hl)), plinth]
    if style == "box":
        return [_box((-hw, 0.0, -hl), (hw, frame_top, hl))]
    # drawers: fronts flush with the sides, their handles standing 2 cm out
    parts = [_box((-hw + 0.04, 0.0, -hl), (hw - 0.04, frame_top, hl))]
    z_edges = np.linspace(-hl + 0.3, hl - 0.2, 3)
    for sign in (-1, 1):
        x0, x1 = sorted((sign * (hw - 0.04 - _JOIN), sign * hw))
        h0, h1 = sorted((sign * (hw - _JOIN), sign * (hw + 0.02)))
        for z0, z1 in itertools.pairwise(z_edges):
            parts.append(_box((x0, 0.04, z0 + 0.004), (x1, frame_top - 0.03, z1 - 0.004)))
            zc, yc = (z0 + z1) / 2, (0.04 + frame_top - 0.03) / 2
            parts.append(_box((h0, yc - 0.008, zc - 0.07), (h1, yc + 0.008, zc + 0.07)))
    return parts


def _headboard(
    rng: np.random.Generator,
    style: str,
    hw: float,
    z: tuple[float, float],
    frame_top: float,
    mattress_top: float,
    top: float,
) -> list[trimesh.Trimesh]:
    """Headboard over x in [-hw, hw], z range `z` (at the head end, -Z), up to `top`, metres: a
    `panel` from the floor, `slats` between two posts and two rails, a `padded` board resting on the
    base, or padded with `wings` reaching forward at both sides."""
    if style == "panel":
        return [_box((-hw, 0.0, z[0]), (hw, top, z[1]))]
    if style == "slats":
        post, rail = 0.06, rng.uniform(0.06, 0.1)
        parts = [_box((x - post / 2, 0.0, z[0]), (x + post / 2, top, z[1])) for x in _both_sides(hw - post / 2)]
        parts.append(_box((-hw, top - rail, z[0]), (hw, top, z[1])))
        parts.append(_box((-hw, frame_top - 0.1, z[0]), (hw, mattress_top, z[1])))
        count = max(3, round(2 * hw / rng.uniform(0.12, 0.2)))
        for x in np.linspace(-hw + post, hw - post, count + 2)[1:-1]:
            parts.append(
                _box((x - 0.02, mattress_top - _JOIN, z[0] + 0.01), (x + 0.02, top - rail + _JOIN, z[1] - 0.01))
            )
        return parts
    parts = [_soft_box((-hw, frame_top - 0.12, z[0]), (hw, top, z[1]))]
    if style == "wings":
        wing, reach, wing_top = rng.uniform(0.06, 0.1), rng.uniform(0.2, 0.3), top - rng.uniform(0.05, 0.2)
        for sign in (-1, 1):
            x0, x1 = sorted((sign * hw, sign * (hw - wing)))
            parts.append(_soft_box((x0, mattress_top - 0.05, z[0]), (x1, wing_top, z[1] + reach)))
    return parts


def _footboard(
    rng: np.random.Generator, style: str, hw: float, z: tuple[float, float], frame_top: float, top: float
) -> list[trimesh.Trimesh]:
    """Footboard over x in [-hw, hw], z range `z` (at the foot end, +Z), up to `top`, metres: a
    `panel`, `posts` with a top rail and a rail joining the base, or nothing (`none`)."""
    if style == "panel":
        return [_box((-hw, 0.0, z[0]), (hw, top, z[1]))]
    if style == "posts":
        post = rng.uniform(0.05, 0.08)
        parts = [_box((x - post / 2, 0.0, z[0]), (x + post / 2, top + 0.05, z[1])) for x in _both_sides(hw - post / 2)]
        parts.append(_box((-hw, top - 0.08, z[0] + 0.005), (hw, top, z[1] - 0.005)))
        parts.append(_box((-hw, frame_top - 0.08, z[0] + 0.005), (hw, frame_top, z[1] - 0.005)))
        return parts
    return []


def _styled_bed(rng: np.random.Generator) -> Built:
    """Bed, headboard at -Z (the foot end faces +Z): single, double or king mattress (bevelled) on
    legs, a box base, a low platform wider than the mattress or a drawer base; panel, slatted,
    padded or winged headboard; no footboard, a panel or posts with rails; pillows at the head."""
    size = str(rng.choice(list(_BED_SIZES)))
    mattress_width, mattress_length = rng.uniform(*_BED_SIZES[size]), rng.uniform(1.9, 2.03)
    mattress_thickness = rng.uniform(0.15, 0.3)
    base = str(rng.choice(["legs", "box", "platform", "drawers"]))
    headboard = str(rng.choice(["panel", "slats", "padded", "wings"]))
    footboard = str(rng.choice(["none", "panel", "posts"]))
    platform = base == "platform"
    margin = rng.uniform(0.05, 0.12) if platform else rng.uniform(0.02, 0.05)
    frame_top = rng.uniform(0.15, 0.3) if platform else rng.uniform(0.25, 0.4)
    mattress_top = frame_top + mattress_thickness
    headboard_top = rng.uniform(max(0.8, mattress_top + 0.3), 1.28)
    board = rng.uniform(0.08, 0.14) if headboard in ("padded", "wings") else rng.uniform(0.03, 0.06)
    # keep the bed under 2.35 m long: the frame reaches at most 5 cm past the mattress ends
    hw, hl = mattress_width / 2 + margin, mattress_length / 2 + min(margin, 0.05)
    mw, ml = mattress_width / 2, mattress_length / 2

    parts = _bed_base(rng, base, hw, hl, frame_top)
    parts += _headboard(rng, headboard, hw, (-hl - board, -hl + _JOIN), frame_top, mattress_top, headboard_top)
    foot_top = mattress_top + rng.uniform(-0.05, 0.2)
    parts += _footboard(rng, footboard, hw, (hl - _JOIN, hl + 0.04), frame_top, foot_top)
    parts.append(_soft_box((-mw, frame_top - _JOIN, -ml), (mw, mattress_top, ml), rng.uniform(0.02, 0.05)))
    pillow_width = rng.uniform(0.5, 0.65)
    centres = (0.0,) if size == "single" else (-mw / 2, mw / 2)
    w = min(pillow_width, (2 * mw if size == "single" else mw) - 0.08)
    for x in centres:
        parts.append(
            _soft_box((x - w / 2, mattress_top - _JOIN, -ml + 0.05), (x + w / 2, mattress_top + 0.12, -ml + 0.4))
        )

    params: Params = {
        "mattress_width": mattress_width,
        "mattress_length": mattress_length,
        "mattress_height": mattress_top,
        "headboard_height": headboard_top,
    }
    return _union(parts), "none", f"{size}/{base}/{headboard}_headboard/{footboard}_footboard", params


def _cube_shelf(rng: np.random.Generator) -> Built:
    """Cube organiser open at +Z: a grid of equal compartments (2-5 columns, 2-6 rows) with a back
    board at -Z (tag `none`) or open at the back too (tag `2`), on the floor or on four short legs."""
    cell_width, cell_height = rng.uniform(0.28, 0.38), rng.uniform(0.28, 0.38)
    board, depth = rng.uniform(0.015, 0.03), rng.uniform(0.28, 0.4)
    columns, rows = int(rng.integers(2, 6)), int(rng.integers(2, 7))
    back, legs = bool(rng.random() < 0.5), bool(rng.random() < 0.4)
    support = rng.uniform(0.05, 0.15) if legs else 0.0
    # at most 1.75 m wide and 2.2 m high, at least 0.75 m high
    columns = min(columns, int((1.75 - board) // (cell_width + board)))
    rows = min(rows, int((2.2 - support - board) // (cell_height + board)))
    while support + rows * (cell_height + board) + board < 0.75:
        rows += 1
    width, height = columns * (cell_width + board) + board, support + rows * (cell_height + board) + board
    hw, hd = width / 2, depth / 2

    finish = _CaseFront(board=board, back=board if back else 0.0)
    parts = _case((-hw, hw), (support, height), (-hd, hd), [(1.0, ("open",) * columns)] * rows, finish)
    if legs:
        leg = rng.uniform(0.03, 0.05)
        parts += [_leg(x, z, 0.0, support + _JOIN, leg, "square") for x, z in _four_corners(hw - leg, hd - leg)]

    params: Params = {"width": width, "height": height, "depth": depth, "levels": rows, "closed_back": back}
    variant = f"cubes/{columns}x{rows}/{'back' if back else 'open_back'}/{'legs' if legs else 'floor'}"
    return _union(parts), "none" if back else "2", variant, params


def _frame_shelf(rng: np.random.Generator) -> Built:
    """Open shelving unit: four corner posts (round or square) carrying 3-6 shelves, no sides or
    back; with cross bracing at the back (tag `none`) or without (front and back alike, tag `2`)."""
    width, height, depth = rng.uniform(0.6, 1.2), rng.uniform(0.8, 2.0), rng.uniform(0.3, 0.45)
    post, round_posts = rng.uniform(0.02, 0.035), bool(rng.random() < 0.5)
    shelf, bottom = rng.uniform(0.015, 0.03), rng.uniform(0.05, 0.15)
    # shelves at least 22 cm apart
    levels = min(int(rng.integers(3, 7)), 1 + int((height - shelf - bottom) / 0.22))
    braced = bool(rng.random() < 0.4)
    hw, hd = width / 2, depth / 2

    parts = [
        _leg(x, z, 0.0, height, post, "round" if round_posts else "square")
        for x, z in _four_corners(hw - post / 2, hd - post / 2)
    ]
    for y in np.linspace(bottom, height - shelf, levels):
        parts.append(_box((-hw, y, -hd), (hw, y + shelf, hd)))
    if braced:
        z, reach = -hd + post / 2, hw - post / 2
        parts.append(_rod((-reach, bottom, z), (reach, height - shelf, z), 0.005))
        parts.append(_rod((reach, bottom, z), (-reach, height - shelf, z), 0.005))

    params: Params = {"width": width, "height": height, "depth": depth, "levels": levels, "closed_back": False}
    variant = f"frame/{'round' if round_posts else 'square'}_posts/{levels}_levels/{'braced' if braced else 'open'}"
    return _union(parts), "none" if braced else "2", variant, params


def _cupboard_bookcase(rng: np.random.Generator) -> Built:
    """Bookcase open at +Z over a closed cupboard (doors or two rows of drawers facing +Z) on a
    plinth, back boards at -Z; the open part is as deep as the cupboard or a shallower case set on
    the cupboard's back (stepped)."""
    width, height, depth = rng.uniform(0.6, 1.2), rng.uniform(1.4, 2.2), rng.uniform(0.32, 0.45)
    cupboard, stepped = rng.uniform(0.6, 0.9), bool(rng.random() < 0.4)
    upper_depth = rng.uniform(0.22, 0.3) if stepped else depth
    lower = str(rng.choice(["doors", "drawers"]))
    board = rng.uniform(0.016, 0.028)
    finish = _CaseFront(
        board=board, back=0.01, thickness=rng.uniform(0.015, 0.022), handle_out=rng.uniform(0.018, 0.03)
    )
    levels = max(2, round((height - cupboard) / rng.uniform(0.28, 0.4)))
    columns, upper_columns = 2 if width > 0.75 else 1, 2 if width > 0.9 else 1
    hw, hd = width / 2, depth / 2

    plinth, parts = _case_stand(rng, hw, hd, hd - finish.thickness, legs=False)
    cells = ("door" if lower == "doors" else "drawer",) * columns
    parts += _case((-hw, hw), (plinth, cupboard), (-hd, hd), [(1.0, cells)] * (1 if lower == "doors" else 2), finish)
    upper_rows = [(1.0, ("open",) * upper_columns)] * levels
    parts += _case((-hw, hw), (cupboard - _JOIN, height), (-hd, -hd + upper_depth), upper_rows, finish)

    params: Params = {"width": width, "height": height, "depth": depth, "levels": levels, "closed_back": True}
    variant = f"cupboard/{lower}/{'stepped' if stepped else 'flush'}"
    return _union(parts), "none", variant, params


def _staggered_shelf(rng: np.random.Generator) -> Built:
    """Bookshelf open at +Z with two or three columns whose shelves are offset by half a pitch from
    one column to the next, over a solid plinth; with a back board (tag `none`) or open at the back,
    where three columns (a mirror-symmetric pattern) are front-back alike (`2`) and two are not."""
    columns = int(rng.integers(2, 4))
    width, height = columns * rng.uniform(0.35, 0.55), rng.uniform(0.9, 2.0)
    depth, board = rng.uniform(0.25, 0.4), rng.uniform(0.016, 0.03)
    plinth, pitch = rng.uniform(0.04, 0.1), rng.uniform(0.3, 0.42)
    back = bool(rng.random() < 0.5)
    hw, hd = width / 2, depth / 2
    y_lo, y_hi = plinth, height - board
    column_width = (width - (columns + 1) * board) / columns
    z_back = -hd + board if back else -hd - 0.05

    cavities = []
    for column in range(columns):
        x0 = -hw + board + column * (column_width + board)
        offset = 0.5 * (column % 2)
        shelves = [s for s in y_lo + (np.arange(1, 12) - offset) * pitch if s < y_hi - 0.12 - board / 2]
        tops = [s - board / 2 for s in shelves] + [y_hi]
        bottoms = [y_lo] + [s + board / 2 for s in shelves]
        for y0, y1 in zip(bottoms, tops, strict=True):
            cavities.append(_box((x0, y0, z_back), (x0 + column_width, y1, hd + 0.05)))
    mesh = _difference(_box((-hw, 0.0, -hd), (hw, height, hd)), _union(cavities))

    sym = "2" if (not back and columns == 3) else "none"
    params: Params = {"width": width, "height": height, "depth": depth, "closed_back": back}
    return mesh, sym, f"staggered/{columns}_columns/{'back' if back else 'open_back'}", params


def _ladder_shelf(rng: np.random.Generator) -> Built:
    """Ladder shelf against a wall at -Z: two side frames (a vertical rail at the back, a rail
    slanting from the floor at the front to the top at the back, a cap joining them) carrying 4-6
    shelves that get shallower upwards; open at the front and the sides."""
    width, height = rng.uniform(0.5, 0.9), rng.uniform(1.2, 2.0)
    depth, top_depth = rng.uniform(0.32, 0.45), rng.uniform(0.15, 0.22)
    rail_x, rail_z = rng.uniform(0.025, 0.045), rng.uniform(0.03, 0.05)
    levels, shelf = int(rng.integers(4, 7)), rng.uniform(0.015, 0.025)
    hw, hd = width / 2, depth / 2
    z_top = -hd + top_depth

    parts = []
    for x0, x1 in ((-hw, -hw + rail_x), (hw - rail_x, hw)):
        parts.append(_box((x0, 0.0, -hd), (x1, height, -hd + rail_z)))
        parts.append(_prism([(0.0, hd - rail_z), (0.0, hd), (height, z_top), (height, z_top - rail_z)], 0, x0, x1))
        parts.append(_box((x0, height - rail_z, -hd), (x1, height, z_top)))
    for y in np.linspace(0.12, height - 0.15, levels):
        # the shelf ends inside the slanted rail at its own top
        front = hd + (z_top - hd) * (y + shelf) / height - rail_z / 2
        parts.append(_box((-hw + rail_x - _JOIN, y, -hd), (hw - rail_x + _JOIN, y + shelf, front)))

    params: Params = {"width": width, "height": height, "depth": depth, "levels": levels, "closed_back": False}
    return _union(parts), "none", f"ladder/{levels}_levels", params


def _cabinet_finish(rng: np.random.Generator) -> _CaseFront:
    """Boards, back, front thickness and handles of a cabinet, metres."""
    return _CaseFront(
        board=rng.uniform(0.016, 0.026),
        back=0.01,
        thickness=rng.uniform(0.015, 0.025),
        handle_out=rng.uniform(0.02, 0.03),
    )


def _nightstand(rng: np.random.Generator) -> Built:
    """Nightstand, fronts at +Z: a small case (0.4-0.6 m) on legs or a plinth with a drawer over an
    open niche, a niche over a drawer, a drawer over a door, or two or three drawers."""
    width, height, depth = rng.uniform(0.4, 0.6), rng.uniform(0.45, 0.7), rng.uniform(0.32, 0.45)
    layout = str(rng.choice(["drawer_niche", "niche_drawer", "drawer_door", "two_drawers", "three_drawers"]))
    legs = bool(rng.random() < 0.5)
    finish = _cabinet_finish(rng)
    hw, hd = width / 2, depth / 2
    share = rng.uniform(0.3, 0.45)
    rows: list[CaseRow] = {
        "drawer_niche": [(share, ("drawer",)), (1 - share, ("open",))],
        "niche_drawer": [(share, ("open",)), (1 - share, ("drawer",))],
        "drawer_door": [(share, ("drawer",)), (1 - share, ("door",))],
        "two_drawers": [(1.0, ("drawer",))] * 2,
        "three_drawers": [(1.0, ("drawer",))] * 3,
    }[layout]
    support, parts = _case_stand(rng, hw, hd, hd - finish.thickness, legs)
    parts += _case((-hw, hw), (support, height), (-hd, hd), rows, finish)

    params: Params = {"width": width, "height": height, "depth": depth, "support_height": support}
    return _union(parts), "none", f"nightstand/{layout}/{'legs' if legs else 'plinth'}", params


def _media_cabinet(rng: np.random.Generator) -> Built:
    """Low media cabinet (TV stand), fronts at +Z: long and low, on legs or a plinth, with an open
    centre between doors, an open row over or under doors, open compartments only, or an open centre
    between drawers."""
    width, height, depth = rng.uniform(1.2, 2.0), rng.uniform(0.45, 0.62), rng.uniform(0.35, 0.5)
    layout = str(rng.choice(["open_centre", "open_top", "open_bottom", "all_open", "drawers_open"]))
    legs = bool(rng.random() < 0.5)
    finish = _cabinet_finish(rng)
    columns = 3 if width > 1.5 else 2
    hw, hd = width / 2, depth / 2
    share = rng.uniform(0.3, 0.45)
    rows: list[CaseRow] = {
        "open_centre": [(1.0, ("door", "open", "door"))],
        "open_top": [(share, ("open",)), (1 - share, ("door",) * columns)],
        "open_bottom": [(1 - share, ("door",) * columns), (share, ("open",))],
        "all_open": [(1.0, ("open",) * columns)],
        "drawers_open": [(1.0, ("drawer", "open", "drawer"))],
    }[layout]
    support, parts = _case_stand(rng, hw, hd, hd - finish.thickness, legs)
    parts += _case((-hw, hw), (support, height), (-hd, hd), rows, finish)

    params: Params = {"width": width, "height": height, "depth": depth, "support_height": support}
    return _union(parts), "none", f"media/{layout}/{'legs' if legs else 'plinth'}", params


def _hutch(rng: np.random.Generator) -> Built:
    """Tall hutch / dresser, fronts at +Z: a lower cupboard (doors, or drawers over doors) on a plinth
    or legs, open shelves above, as deep as the cupboard or set back on its top (stepped)."""
    width, height, depth = rng.uniform(0.8, 1.4), rng.uniform(1.7, 2.2), rng.uniform(0.4, 0.55)
    lower_height, stepped = rng.uniform(0.75, 0.95), bool(rng.random() < 0.6)
    upper_depth = rng.uniform(0.25, 0.35) if stepped else depth
    lower = str(rng.choice(["doors", "drawers_doors"]))
    legs = bool(rng.random() < 0.3)
    finish = _cabinet_finish(rng)
    columns = 2 if width < 1.1 else 3
    shelves = int(rng.integers(2, 5))
    hw, hd = width / 2, depth / 2

    doors: CaseRow = (1.0, ("door",) * columns)
    rows = [doors] if lower == "doors" else [(0.3, ("drawer",) * columns), doors]
    support, parts = _case_stand(rng, hw, hd, hd - finish.thickness, legs)
    parts += _case((-hw, hw), (support, lower_height), (-hd, hd), rows, finish)
    upper = [(1.0, ("open",) * (columns - 1))] * shelves
    parts += _case((-hw, hw), (lower_height - _JOIN, height), (-hd, -hd + upper_depth), upper, finish)

    params: Params = {"width": width, "height": height, "depth": depth, "support_height": support}
    variant = f"hutch/{'stepped' if stepped else 'flush'}/{lower}/{'legs' if legs else 'plinth'}"
    return _union(parts), "none", variant, params


def _mixed_cabinet(rng: np.random.Generator) -> Built:
    """Cabinet with open compartments, fronts at +Z: a grid of 2-4 columns and 1-3 rows, tall rows of
    doors and short rows of drawers, some cells left open (at least one open and one closed)."""
    width, height, depth = rng.uniform(0.8, 2.0), rng.uniform(0.6, 1.5), rng.uniform(0.35, 0.5)
    columns, row_count = int(np.clip(round(width / 0.45), 2, 4)), int(rng.integers(1, 4))
    legs = bool(rng.random() < 0.5)
    finish = _cabinet_finish(rng)
    hw, hd = width / 2, depth / 2

    short = rng.random(row_count) < 0.4
    is_open = rng.random((row_count, columns)) < 0.4
    cells = np.where(is_open, "open", np.where(short[:, None], "drawer", "door"))
    if is_open.all():
        cells[0, 0] = "drawer" if short[0] else "door"
    elif not is_open.any():
        cells[-1, int(rng.integers(columns))] = "open"
    rows = [(0.35 if s else 1.0, tuple(str(c) for c in row)) for s, row in zip(short, cells, strict=True)]
    support, parts = _case_stand(rng, hw, hd, hd - finish.thickness, legs)
    parts += _case((-hw, hw), (support, height), (-hd, hd), rows, finish)

    params: Params = {"width": width, "height": height, "depth": depth, "support_height": support}
    return _union(parts), "none", f"mixed/{columns}x{row_count}/{'legs' if legs else 'plinth'}", params


def _filing_cabinet(rng: np.random.Generator) -> Built:
    """Filing / pedestal cabinet, fronts at +Z: narrow and deep, 2-4 tall drawers, on four casters
    or a plinth."""
    width, depth, drawers = rng.uniform(0.38, 0.5), rng.uniform(0.45, 0.62), int(rng.integers(2, 5))
    casters = bool(rng.random() < 0.4)
    finish = _cabinet_finish(rng)
    hw, hd = width / 2, depth / 2
    if casters:
        wheel = rng.uniform(0.02, 0.03)
        support = 2 * wheel
        parts = [_ellipsoid((x, wheel, z), (wheel, wheel, wheel), 1) for x, z in _four_corners(hw - 0.05, hd - 0.06)]
    else:
        support, parts = _case_stand(rng, hw, hd, hd - finish.thickness, legs=False)
    height = support + drawers * rng.uniform(0.25, 0.33)
    parts += _case(
        (-hw, hw), (support - (_JOIN if casters else 0.0), height), (-hd, hd), [(1.0, ("drawer",))] * drawers, finish
    )

    params: Params = {"width": width, "height": height, "depth": depth, "support_height": support}
    return _union(parts), "none", f"filing/{drawers}_drawers/{'casters' if casters else 'plinth'}", params


def _bin_cavity(
    round_section: bool,
    bottom: tuple[float, float],
    top: tuple[float, float],
    body_top: float,
    wall: float,
    floor: float,
) -> trimesh.Trimesh:
    """Cavity of an open bin whose outer wall runs from half sizes `bottom` at y = 0 to `top` at
    body_top: walls `wall` thick parallel to the outer ones, a floor `floor` thick, poking 5 cm out
    of the top; metres."""
    slope = ((top[0] - bottom[0]) / body_top, (top[1] - bottom[1]) / body_top)
    overshoot = body_top + 0.05
    return _frustum(
        round_section,
        floor,
        overshoot,
        (bottom[0] + slope[0] * floor - wall, bottom[1] + slope[1] * floor - wall),
        (bottom[0] + slope[0] * overshoot - wall, bottom[1] + slope[1] * overshoot - wall),
    )


def _bin_section(rng: np.random.Generator) -> tuple[str, float, float]:
    """Section of a bin: (`round`, `square` or `oblong`, half width x, half depth z), metres; oblong
    sections are 1.3-1.6 times wider than deep."""
    shape = str(rng.choice(["round", "square", "oblong"]))
    if shape == "oblong":
        half_x = rng.uniform(0.15, 0.19)
        return shape, half_x, half_x * rng.uniform(0.62, 0.75)
    half = rng.uniform(0.1, 0.19)
    return shape, half, half


def _pedal_bin(rng: np.random.Generator) -> Built:
    """Pedal bin: a round or box body (straight or widening upwards) under a flat or domed lid with a
    hinge block at -Z, a foot pedal at +Z; solid like the classic lidded bins."""
    round_section = bool(rng.random() < 0.5)
    height, half_x = rng.uniform(0.3, 0.75), rng.uniform(0.11, 0.18)
    half_z = half_x if round_section else half_x * rng.uniform(0.7, 1.0)
    flare, domed = rng.uniform(1.0, 1.1), bool(rng.random() < 0.5)
    lid_height = rng.uniform(0.04, 0.08) if domed else rng.uniform(0.015, 0.03)
    body_top = height - lid_height
    top = (half_x * flare, half_z * flare)
    rim = (top[0] + 0.006, top[1] + 0.006)

    parts = [
        _frustum(round_section, 0.0, body_top, (half_x, half_z), top),
        _frustum(round_section, body_top - _JOIN, height, rim, (0.7 * rim[0], 0.7 * rim[1]) if domed else rim),
        _box((-0.05, body_top - 0.03, -top[1] - 0.02), (0.05, body_top + 0.01, -top[1] + 0.02)),
        _box((-0.06, 0.015, half_z - 0.02), (0.06, 0.04, half_z + 0.06)),
    ]
    params: Params = {"width": 2 * rim[0], "depth": 2 * rim[1], "height": height, "lid": True}
    variant = f"pedal/{'round' if round_section else 'box'}/{'domed' if domed else 'flat'}_lid"
    return _union(parts), "none", variant, params


def _swing_bin(rng: np.random.Generator) -> Built:
    """Swing-top bin: a tall round or box body under a hood narrowing upwards whose front (+Z) is
    flattened into a swing flap; solid."""
    round_section = bool(rng.random() < 0.5)
    body_top, hood = rng.uniform(0.4, 0.65), rng.uniform(0.12, 0.2)
    half_x = rng.uniform(0.12, 0.19)
    half_z = half_x if round_section else half_x * rng.uniform(0.75, 1.0)
    narrow = rng.uniform(0.6, 0.8)
    height = body_top + hood

    body = _frustum(round_section, 0.0, body_top, (half_x, half_z), (half_x, half_z))
    cap = _frustum(round_section, body_top - _JOIN, height, (half_x, half_z), (narrow * half_x, narrow * half_z))
    # the flap: the hood's front cut flat 1.5 cm behind its top outline
    flap_z = narrow * half_z - 0.015
    flap = _box((-half_x, body_top + 0.02, flap_z), (half_x, height - 0.03, half_z + 0.05))
    params: Params = {"width": 2 * half_x, "depth": 2 * half_z, "height": height, "lid": True}
    return _union([body, _difference(cap, flap)]), "none", f"swing/{'round' if round_section else 'box'}", params


def _handled_bin(rng: np.random.Generator) -> Built:
    """Open bin of round, square or oblong section, straight, widening or narrowing upwards, with two
    grip lugs standing out at +-X under the top and an optional rim band; hollow like the classic open
    bins; tag `2`: the lugs stand 3 cm or more out, so a 90 deg turn does not map them."""
    shape, half_x, half_z = _bin_section(rng)
    round_section = shape == "round"
    height = rng.uniform(0.25, 0.7)
    taper = str(rng.choice(["narrowing", "straight", "tapered"]))
    if taper == "straight":
        flare = 1.0
    else:
        flare = rng.uniform(0.85, 0.95) if taper == "narrowing" else rng.uniform(1.1, 1.2)
    rim = bool(rng.random() < 0.5)
    lug_out, lug_height, lug_half = rng.uniform(0.03, 0.045), rng.uniform(0.025, 0.04), rng.uniform(0.04, 0.06)
    wall, floor = rng.uniform(0.005, 0.012), rng.uniform(0.01, 0.025)
    bottom, top = (half_x, half_z), (half_x * flare, half_z * flare)

    parts = [_frustum(round_section, 0.0, height, bottom, top)]
    if rim:
        band = (top[0] + 0.008, top[1] + 0.008)
        parts.append(_frustum(round_section, height - 0.025, height, band, band))
    lug_y = height - 0.04 - lug_height
    wall_x = half_x + (top[0] - half_x) * (lug_y + lug_height) / height
    for sign in (-1, 1):
        x0, x1 = sorted((sign * (wall_x - 0.01), sign * (wall_x + lug_out)))
        parts.append(_box((x0, lug_y, -lug_half), (x1, lug_y + lug_height, lug_half)))
    mesh = _difference(_union(parts), _bin_cavity(round_section, bottom, top, height, wall, floor))

    params: Params = {
        "width": 2 * max(half_x, top[0]),
        "depth": 2 * max(half_z, top[1]),
        "height": height,
        "lid": False,
    }
    return mesh, "2", f"handled/{shape}/{taper}/{'rim' if rim else 'plain'}", params


def _divided_bin(rng: np.random.Generator) -> Built:
    """Recycling bin: an open straight bin of round, square or oblong section split into two
    compartments by a wall in the plane x = 0, up to or a little under the rim; tag `2`."""
    shape, half_x, half_z = _bin_section(rng)
    round_section = shape == "round"
    height, wall, floor = rng.uniform(0.3, 0.75), rng.uniform(0.006, 0.012), rng.uniform(0.01, 0.025)
    section = (half_x, half_z)

    body = _difference(
        _frustum(round_section, 0.0, height, section, section),
        _bin_cavity(round_section, section, section, height, wall, floor),
    )
    divider_top = height - rng.uniform(0.0, 0.05)
    # the divider's ends stop inside the walls
    divider = _box((-wall / 2, floor - _JOIN, -half_z + wall / 2), (wall / 2, divider_top, half_z - wall / 2))
    params: Params = {"width": 2 * half_x, "depth": 2 * half_z, "height": height, "lid": False}
    return _union([body, divider]), "2", f"divided/{shape}", params


def _screen(hw: float, y0: float, y1: float, thickness: float, bezel: float, chin: float = 0.0) -> trimesh.Trimesh:
    """Flat panel x in [-hw, hw], y in [y0, y1], z in [-thickness/2, thickness/2] whose screen (a 2 mm
    deep recess inside a bezel, `chin` taller at the bottom) faces +Z; metres."""
    front = thickness / 2
    panel = _box((-hw, y0, -front), (hw, y1, front))
    return _difference(
        panel, _box((-hw + bezel, y0 + bezel + chin, front - 0.002), (hw - bezel, y1 - bezel, front + 0.01))
    )


def _monitor(rng: np.random.Generator) -> Built:
    """Desktop monitor, screen at +Z: a thin panel (16:9, 16:10 or 21:9) with a rear housing, tilted
    back by up to 8 deg, on a neck over a round, rectangular or V-shaped foot."""
    aspect = float(rng.choice([16 / 9, 16 / 10, 21 / 9]))
    width = rng.uniform(0.75, 0.9) if aspect > 2 else rng.uniform(0.45, 0.72)
    thickness, bezel = rng.uniform(0.01, 0.02), rng.uniform(0.003, 0.012)
    housing_depth, lift = rng.uniform(0.015, 0.04), rng.uniform(0.06, 0.14)
    tilt, foot = rng.uniform(0.0, np.radians(8)), str(rng.choice(["round", "rectangular", "v"]))
    neck_half, neck_depth, plate = rng.uniform(0.02, 0.04), rng.uniform(0.02, 0.035), rng.uniform(0.01, 0.02)
    hw, panel_height = width / 2, width / aspect
    yc, back = lift + panel_height / 2, -thickness / 2 - housing_depth
    housing_half = (hw * rng.uniform(0.4, 0.7), panel_height * rng.uniform(0.3, 0.4))

    head = [
        _screen(hw, lift, lift + panel_height, thickness, bezel),
        _box(
            (-housing_half[0], yc - housing_half[1], back),
            (housing_half[0], yc + housing_half[1], -thickness / 2 + _JOIN),
        ),
    ]
    parts = _leaned(head, tilt, (0.0, yc, back))
    # the neck reaches 2 cm into the housing and 4 cm over the tilt axis, so it holds the tilted head
    neck_back = back - neck_depth
    parts.append(_box((-neck_half, plate - _JOIN, neck_back), (neck_half, yc + 0.04, back + 0.02)))
    if foot == "round":
        radius = rng.uniform(0.09, 0.13)
        parts.append(_post(0.0, neck_back + 0.5 * radius, 0.0, plate, radius, _ROUND_SECTIONS))
    elif foot == "rectangular":
        half = rng.uniform(0.1, 0.16)
        parts.append(_box((-half, 0.0, neck_back - 0.02), (half, plate, neck_back - 0.02 + rng.uniform(0.16, 0.22))))
    else:
        spread, reach = rng.uniform(0.12, 0.18), rng.uniform(0.12, 0.18)
        parts.append(_box((-neck_half - 0.02, 0.0, neck_back - 0.02), (neck_half + 0.02, plate, back + 0.03)))
        for sign in (-1, 1):
            start, end = np.array([0.0, back - neck_depth / 2]), np.array([sign * spread, back + reach])
            normal = np.array([-(end - start)[1], (end - start)[0]]) * 0.015 / np.linalg.norm(end - start)
            parts.append(_prism([start + normal, start - normal, end - normal, end + normal], 1, 0.0, plate))

    params: Params = {"width": width, "panel_height": panel_height, "aspect": aspect, "bezel": bezel}
    return _union(parts), "none", f"monitor/{foot}_foot/{'ultrawide' if aspect > 2 else 'standard'}", params


def _all_in_one(rng: np.random.Generator) -> Built:
    """All-in-one computer, screen at +Z: a panel with a chin under the screen and a shallow rear
    housing, on a plate slanting back down to a flat foot, or on a neck over a rectangular foot."""
    width, chin = rng.uniform(0.5, 0.7), rng.uniform(0.04, 0.09)
    thickness, bezel = rng.uniform(0.012, 0.03), rng.uniform(0.005, 0.015)
    lift, slanted = rng.uniform(0.08, 0.13), bool(rng.random() < 0.5)
    housing_depth = rng.uniform(0.01, 0.025)
    hw = width / 2
    panel_top = lift + chin + width * 9 / 16
    back = -thickness / 2
    housing_back = back - housing_depth
    attach = lift + 0.5 * (panel_top - lift)

    parts = [
        _screen(hw, lift, panel_top, thickness, bezel, chin),
        _box((-0.6 * hw, lift + 0.03, housing_back), (0.6 * hw, panel_top - 0.05, back + _JOIN)),
    ]
    if slanted:
        foot_z = housing_back - rng.uniform(0.12, 0.18)
        profile = [
            (0.0, foot_z - 0.01),
            (0.0, foot_z + 0.01),
            (attach, housing_back + 0.004),
            (attach, housing_back - 0.012),
        ]
        parts.append(_prism(profile, 0, -0.08, 0.08))
        parts.append(_box((-0.1, 0.0, foot_z - 0.05), (0.1, 0.008, back + 0.06)))
    else:
        parts.append(_box((-0.03, 0.01 - _JOIN, housing_back - 0.03), (0.03, attach, housing_back + 0.004)))
        parts.append(_box((-0.12, 0.0, housing_back - 0.1), (0.12, 0.012, 0.08)))

    params: Params = {"width": width, "panel_height": panel_top - lift, "aspect": 16 / 9, "bezel": bezel}
    return _union(parts), "none", f"all_in_one/{'slanted' if slanted else 'neck'}_stand", params


def _crt(rng: np.random.Generator) -> Built:
    """Cathode-ray tube monitor or television, screen at +Z: a 4:3 front frame with a recessed screen
    and a body tapering towards the back (-Z), on the bottom of its case or on a low swivel foot."""
    width, depth = rng.uniform(0.36, 0.55), rng.uniform(0.28, 0.34)
    face_height = width * rng.uniform(0.78, 0.85)
    frame_depth, taper = rng.uniform(0.03, 0.06), rng.uniform(0.55, 0.75)
    border = rng.uniform(0.025, 0.045)
    foot = bool(rng.random() < 0.5)
    lift = rng.uniform(0.02, 0.04) if foot else 0.0
    hw, front = width / 2, depth / 2
    y0, y1 = lift, lift + face_height
    yc = (y0 + y1) / 2

    frame = _box((-hw, y0, front - frame_depth), (hw, y1, front))
    screen = _box((-hw + border, y0 + border, front - 0.004), (hw - border, y1 - border, front + 0.01))
    tube_front = front - frame_depth + _JOIN
    half_back = (taper * hw, taper * face_height / 2)
    corners = [(sx * 0.95 * hw, sy, tube_front) for sx in (-1, 1) for sy in (y0, y1 - 0.02)]
    corners += [(sx * half_back[0], yc + sy * half_back[1], -front) for sx in (-1, 1) for sy in (-1, 1)]
    parts = [_difference(frame, screen), _hull(corners)]
    if foot:
        parts.append(_box((-0.12, 0.0, front - frame_depth - 0.12), (0.12, lift + _JOIN, front - 0.02)))

    params: Params = {"width": width, "panel_height": face_height, "aspect": 4 / 3, "bezel": border}
    return _union(parts), "none", f"crt/{'swivel_foot' if foot else 'flat'}", params


def _tv(rng: np.random.Generator) -> Built:
    """Flat television, screen at +Z: a wide thin 16:9 panel with a shallow rear housing on a centre
    pedestal (neck and broad foot), on a low bench foot held by two posts, or on a pedestal with a
    soundbar lying on its foot in front of the panel."""
    width, thickness = rng.uniform(0.8, 1.45), rng.uniform(0.01, 0.03)
    bezel, housing_depth = rng.uniform(0.004, 0.015), rng.uniform(0.02, 0.05)
    stand = str(rng.choice(["pedestal", "bench", "soundbar"]))
    lift = rng.uniform(0.1, 0.14) if stand == "soundbar" else rng.uniform(0.05, 0.12)
    plate = rng.uniform(0.015, 0.025)
    hw, panel_height = width / 2, width * 9 / 16
    yc, back = lift + panel_height / 2, -thickness / 2 - housing_depth
    housing_half = (hw * rng.uniform(0.55, 0.8), panel_height * rng.uniform(0.3, 0.4))

    parts = [
        _screen(hw, lift, lift + panel_height, thickness, bezel),
        _box(
            (-housing_half[0], yc - housing_half[1], back),
            (housing_half[0], yc + housing_half[1], -thickness / 2 + _JOIN),
        ),
    ]
    foot_front = rng.uniform(0.1, 0.16)
    if stand == "bench":
        half = width * rng.uniform(0.3, 0.42)
        parts.append(_box((-half, 0.0, -0.08), (half, plate, 0.1)))
        for x in _both_sides(0.5 * hw):
            parts.append(
                _box(
                    (x - 0.015, plate - _JOIN, -thickness / 2 - 0.01), (x + 0.015, lift + 0.06, -thickness / 2 + _JOIN)
                )
            )
    else:
        neck_half = rng.uniform(0.03, 0.06)
        parts.append(_box((-neck_half, plate - _JOIN, back - 0.03), (neck_half, yc, back + 0.01)))
        half = rng.uniform(0.15, 0.25)
        parts.append(_box((-half, 0.0, back - 0.08), (half, plate, foot_front)))
        if stand == "soundbar":
            bar = width * rng.uniform(0.3, 0.4)
            top = plate + rng.uniform(0.05, 0.07)
            parts.append(
                _box((-bar, plate - _JOIN, thickness / 2 + 0.02), (bar, top, min(foot_front, thickness / 2 + 0.1)))
            )

    params: Params = {"width": width, "panel_height": panel_height, "aspect": 16 / 9, "bezel": bezel}
    return _union(parts), "none", f"tv/{stand}", params


def _rim_cut(low: float, high: float, hl: float, hw: float, start: float, double: bool) -> trimesh.Trimesh:
    """What to cut off an oval tub shell (long axis X, half length hl, half width hw) so that its rim
    is at height `low` up to x = start and rises in a straight line to `high` at the +X end (and,
    when `double`, mirrored at the -X end); metres. The cut is the convex region above that rim line."""
    slope, far = (high - low) / (hl - start), hl + 0.1
    raised = (far, high + slope * (far - hl))
    left = [(-far, raised[1]), (-start, low)] if double else [(-far, low)]
    profile = [*left, (start, low), raised, (far, high + 1.0), (-far, high + 1.0)]
    return _prism(profile, 2, -hw - 0.1, hw + 0.1)


def _freestanding_bathtub(rng: np.random.Generator) -> Built:
    """Freestanding oval bathtub, long axis along X: an oval shell widening towards the rim around an
    ellipsoidal basin, with a level rim (tag `2`), one raised end at +X (slipper, `none`) or both
    ends raised (double slipper, `2`); on the floor, on an oval plinth or on four feet."""
    rim_style = str(rng.choice(["level", "slipper", "double_slipper"]))
    base = str(rng.choice(["floor", "plinth", "feet"]))
    length, width = rng.uniform(1.5, 1.85), rng.uniform(0.7, 0.88)
    low = rng.uniform(0.5, 0.58)
    high = low if rim_style == "level" else low + rng.uniform(0.07, 0.11)
    rim, floor = rng.uniform(0.06, 0.09), rng.uniform(0.04, 0.07)
    lift = 0.0 if base == "floor" else rng.uniform(0.06, 0.1)
    hl, hw = length / 2, width / 2

    shell = _frustum(True, lift, high, (0.92 * hl, 0.92 * hw), (hl, hw))
    # centred at the highest rim so that the basin widens all the way up (checked for these ranges)
    cuts = [_ellipsoid((0.0, high, 0.0), (hl - rim, high - lift - floor, hw - rim))]
    if rim_style != "level":
        cuts.append(_rim_cut(low, high, hl, hw, rng.uniform(0.0, 0.35) * hl, rim_style == "double_slipper"))
    parts = [_difference(shell, _union(cuts))]
    if base == "plinth":
        parts.append(_frustum(True, 0.0, lift + _JOIN, (0.6 * hl, 0.6 * hw), (0.7 * hl, 0.7 * hw)))
    elif base == "feet":
        for x, z in _four_corners(0.6 * hl, 0.55 * hw):
            foot = _frustum(True, 0.0, lift + 0.03, (0.025, 0.025), (0.04, 0.04), _THIN_SECTIONS)
            parts.append(foot.apply_translation((x, 0.0, z)))

    params: Params = {"length": length, "width": width, "height": high, "rim": rim, "feet": base == "feet"}
    return _union(parts), "none" if rim_style == "slipper" else "2", f"freestanding/{rim_style}/{base}", params


def _built_in_bathtub(rng: np.random.Generator) -> Built:
    """Built-in bathtub, long axis along X: a box shell around a centred oval (ellipsoidal) or
    rectangular (tapered box) basin, optionally with a tap spout on the +X rim and a toe-kick recess
    along the bottom of the front (+Z); tag `2` without spout and toe kick, else `none`."""
    length, width, height = rng.uniform(1.5, 1.8), rng.uniform(0.7, 0.82), rng.uniform(0.48, 0.6)
    rim, floor = rng.uniform(0.07, 0.12), rng.uniform(0.04, 0.07)
    oval, taps, kick = bool(rng.random() < 0.5), bool(rng.random() < 0.5), bool(rng.random() < 0.4)
    hl, hw = length / 2, width / 2

    shell = _box((-hl, 0.0, -hw), (hl, height, hw))
    if oval:
        cuts = [_ellipsoid((0.0, height, 0.0), (hl - rim, height - floor, hw - rim))]
    else:
        cuts = [_frustum(False, floor, height + 0.05, (hl - rim - 0.1, hw - rim - 0.06), (hl - rim, hw - rim))]
    if kick:
        cuts.append(_box((-hl - 0.1, -0.1, hw - rng.uniform(0.05, 0.08)), (hl + 0.1, rng.uniform(0.06, 0.1), hw + 0.1)))
    parts = [_difference(shell, _union(cuts))]
    if taps:
        spout_x = hl - rim / 2
        parts.append(_post(spout_x, 0.0, height - _JOIN, height + 0.08, 0.015))
        parts.append(_rod((spout_x, height + 0.065, 0.0), (spout_x - rim / 2 - 0.05, height + 0.065, 0.0), 0.011))

    params: Params = {"length": length, "width": width, "height": height, "rim": rim, "feet": False}
    basin = "oval" if oval else "rectangular"
    variant = f"built_in/{basin}_basin/{'taps' if taps else 'no_taps'}/{'toe_kick' if kick else 'plain'}"
    return _union(parts), "none" if (taps or kick) else "2", variant, params


_BUILDERS: dict[str, Builder] = {
    "bathtub": _bathtub,
    "bed": _bed,
    "bin": _bin,
    "bookshelf": _bookshelf,
    "cabinet": _cabinet,
    "chair": _chair,
    "display": _display,
    "sofa": _sofa,
    "table": _table,
}


# `wide`: each model first draws one of its class's builders, the classic one among them.
_WIDE_BUILDERS: dict[str, tuple[Builder, ...]] = {
    "bathtub": (_bathtub, _freestanding_bathtub, _built_in_bathtub),
    "bed": (_bed, _styled_bed),
    "bin": (_bin, _pedal_bin, _swing_bin, _handled_bin, _divided_bin),
    "bookshelf": (_bookshelf, _cube_shelf, _frame_shelf, _cupboard_bookcase, _staggered_shelf, _ladder_shelf),
    "cabinet": (_cabinet, _nightstand, _media_cabinet, _hutch, _mixed_cabinet, _filing_cabinet),
    "chair": (_chair, _frame_chair, _lounge_chair, _swivel_chair, _bar_stool, _cantilever_chair),
    "display": (_display, _monitor, _all_in_one, _crt, _tv),
    "sofa": (_sofa, _cushion_sofa, _corner_sofa),
    "table": (_table, _desk, _side_table, _splayed_table, _panel_table, _cross_base_table),
}


def _check_style(style: str) -> None:
    """Raise ValueError unless `style` is one of PROCEDURAL_STYLES."""
    if style not in PROCEDURAL_STYLES:
        raise ValueError(f"unknown procedural style {style!r}; expected one of {', '.join(PROCEDURAL_STYLES)}")


def _builder(category: str, rng: np.random.Generator, style: str) -> Builder:
    """The class builder that draws the next model of `category` in `style` (a checked style);
    `classic` draws nothing from `rng` here, so its models stay those of the single classic builder."""
    if style == "classic":
        return _BUILDERS[category]
    options = _WIDE_BUILDERS[category]
    return options[int(rng.integers(len(options)))]


def generate(category: str, rng: np.random.Generator, style: str = "classic") -> ProceduralCad:
    """Draw one model of `category` (one of CATEGORIES or a known alias such as "trashbin") with
    structural variant and continuous parameters taken from `rng`; the mesh is in the CAD frame of
    the module docstring. `style` is one of PROCEDURAL_STYLES.

    Raises UnknownCategoryError (a ValueError naming the valid classes) for an unknown category,
    ValueError for an unknown style, RuntimeError if a boolean ever yields an unclosed mesh.
    """
    _check_style(style)
    category = canonical_category(category)
    mesh, sym, variant, params = _builder(category, rng, style)(rng)
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    if not (mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0):
        raise RuntimeError(f"procedural {category} ({variant}, {params}) is not a closed outward-facing mesh")
    params = {key: value if isinstance(value, bool | int | str) else float(value) for key, value in params.items()}
    return ProceduralCad(mesh=mesh, category=category, sym=sym, variant=variant, params=params)


def build_library(out_dir: Path, per_class: int = 8, seed: int = 0, style: str = "classic") -> Path:
    """Write `per_class` models of every category in `style` (one of PROCEDURAL_STYLES) as
    `<out_dir>/<category>/<category>_<k>.ply` (k zero-padded to 3 digits) and their index
    `<out_dir>/cads.json` (`{"proc_<category>_<k>": {"path": relative path, "category": str, "sym": str}}`).

    Deterministic: the same seed gives byte-identical files; each category draws from its own
    stream, so its models do not change when other categories change. Returns the cads.json path.
    """
    if per_class < 1:
        raise ValueError(f"build_library: per_class must be at least 1, got {per_class}")
    _check_style(style)
    out_dir = Path(out_dir)
    index: dict[str, dict[str, str]] = {}
    for category_index, category in enumerate(CATEGORIES):
        rng = np.random.default_rng([seed, category_index])
        (out_dir / category).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            cad = generate(category, rng, style)
            relative = f"{category}/{category}_{k:03d}.ply"
            cad.mesh.export(out_dir / relative, file_type="ply")
            index[f"proc_{category}_{k:03d}"] = {"path": relative, "category": category, "sym": cad.sym}
    cads_json = out_dir / "cads.json"
    cads_json.write_text(json.dumps(index, indent=2) + "\n")
    return cads_json
