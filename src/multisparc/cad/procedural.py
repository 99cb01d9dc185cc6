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


# What a class builder returns: (mesh with the floor at y = 0, symmetry tag, variant, params).
Built = tuple[trimesh.Trimesh, str, str, Params]


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


_BUILDERS: dict[str, Callable[[np.random.Generator], Built]] = {
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


def generate(category: str, rng: np.random.Generator) -> ProceduralCad:
    """Draw one model of `category` (one of CATEGORIES or a known alias such as "trashbin") with
    structural variant and continuous parameters taken from `rng`; the mesh is in the CAD frame of
    the module docstring.

    Raises UnknownCategoryError (a ValueError naming the valid classes) for an unknown category,
    RuntimeError if a boolean ever yields an unclosed mesh.
    """
    category = canonical_category(category)
    mesh, sym, variant, params = _BUILDERS[category](rng)
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    if not (mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0):
        raise RuntimeError(f"procedural {category} ({variant}, {params}) is not a closed outward-facing mesh")
    params = {key: value if isinstance(value, bool | int | str) else float(value) for key, value in params.items()}
    return ProceduralCad(mesh=mesh, category=category, sym=sym, variant=variant, params=params)


def build_library(out_dir: Path, per_class: int = 8, seed: int = 0) -> Path:
    """Write `per_class` models of every category as `<out_dir>/<category>/<category>_<k>.ply`
    (k zero-padded to 3 digits) and their index `<out_dir>/cads.json`
    (`{"proc_<category>_<k>": {"path": relative path, "category": str, "sym": str}}`).

    Deterministic: the same seed gives byte-identical files; each category draws from its own
    stream, so its models do not change when other categories change. Returns the cads.json path.
    """
    if per_class < 1:
        raise ValueError(f"build_library: per_class must be at least 1, got {per_class}")
    out_dir = Path(out_dir)
    index: dict[str, dict[str, str]] = {}
    for category_index, category in enumerate(CATEGORIES):
        rng = np.random.default_rng([seed, category_index])
        (out_dir / category).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            cad = generate(category, rng)
            relative = f"{category}/{category}_{k:03d}.ply"
            cad.mesh.export(out_dir / relative, file_type="ply")
            index[f"proc_{category}_{k:03d}"] = {"path": relative, "category": category, "sym": cad.sym}
    cads_json = out_dir / "cads.json"
    cads_json.write_text(json.dumps(index, indent=2) + "\n")
    return cads_json
