"""Structured layouts: groups of related objects arranged as in real rooms, placed as a whole.

Independent placement (`placement.place_objects`) gives every object its own random yaw and spot, so
one object tells nothing about another. Real rooms are arranged; these templates draw such groups:

- dining: a table with 2-6 chairs at its sides (fewer where its sides do not hold them), each facing
  the table's centre; one chair model, sometimes a second one at the table's ends;
- lounge: a sofa facing a display a few metres away, and/or a low table in front of it;
- row: 2-4 copies of one chair, cabinet or bookshelf model (one scale) side by side, same yaw;
- bedroom: a bed with one or two bedside cabinets (one model) and/or a bin at its sides, their backs
  in line with the headboard end;
- wall: 1-3 objects of any class side by side with their backs against a wall.

Lounge, row and bedroom groups stand against a wall half of the time, wall groups always: the group
then turns by a multiple of 90 deg (the room's axes are world x and z) and the room's wall passes just
behind its back line (`room.WallLine`).

Frames: world Y up, floor y = 0, metres; yaw in radians about +Y, a model's front (CAD +Z) facing
world (x, z) = (sin yaw, cos yaw). A group is built in its own floor frame (x, z), metres, whose +Z is
the group's front (the sofa's, the bed's foot, the row's fronts), centred on the mean of its members'
footprint centres; it is then turned by a group yaw and moved to an anchor spot on the floor in view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from multisparc.cad import CadIndex
from multisparc.scenes.camera_rig import CameraRig
from multisparc.scenes.config import SceneConfig
from multisparc.scenes.placement import (
    Footprint,
    StandingObject,
    _spots_in_view,
    _yaw_rotation,
    choose_cad,
    footprints_overlap,
    free_spots,
    place_objects,
    sample_scale,
    stand_on_floor,
)
from multisparc.scenes.room import WallLine

# Group yaws and anchor spots tried before the scene attempt gives up.
_GROUP_TRIES = 8
# Share of lounge, row and bedroom groups backed against a wall.
_AGAINST_WALL = 0.5
# Gap between a wall and the backs against it, metres: flush, without touching the wall's plane.
_WALL_GAP = 0.01
# Half size of the rectangle standing for the floor behind a wall, metres: beyond any room.
_BEYOND = 1e3
# Share of dining groups with a second chair model at the table's ends.
_SECOND_CHAIRS = 0.3
# Gaps, metres, added to `footprint_margin`: chair to table side, between chairs on a side,
# between the models of a row, bed to bedside furniture, between objects along a wall.
_CHAIR_GAP = (0.05, 0.2)
_CHAIR_SPACING = 0.1
_ROW_GAP = (0.0, 0.4)
_BEDSIDE_GAP = (0.02, 0.15)
_WALL_SPACING = (0.0, 0.8)
# Lounge distances, metres: sofa front to a low table, sofa front to the display's front.
_COFFEE_GAP = (0.3, 0.6)
_SCREEN_DISTANCE = (1.5, 3.5)
# How far a chair steps back per try when turned into the table, metres, and the most steps.
_CHAIR_STEP = 0.02
_CHAIR_STEPS = 50


@dataclass(frozen=True)
class Model:
    """A CAD model at one scale: scales s (3,) and physical size (3,) (metres) along the CAD axes."""

    cad_id: str
    s: np.ndarray
    size: np.ndarray

    @property
    def half(self) -> np.ndarray:
        """(2,) half width (CAD x) and half depth (CAD z) of its footprint, metres."""
        return self.size[[0, 2]] / 2


@dataclass(frozen=True)
class Member:
    """A model of a group: its footprint centre (2,) in the group's floor frame (x, z) and its yaw
    relative to the group (radians)."""

    model: Model
    centre: np.ndarray
    yaw: float

    def footprint(self) -> Footprint:
        """Its footprint in the group's floor frame."""
        return Footprint(self.centre, _footprint_axes(self.yaw), self.model.half)


@dataclass(frozen=True)
class Group:
    """A template's members, and whether they back onto a wall along the group's back line (the
    smallest z of their footprints, group frame)."""

    members: list[Member]
    against_wall: bool


@dataclass(frozen=True)
class Kit:
    """What templates draw from: the CAD index, the classes in use and the scene settings."""

    index: CadIndex
    categories: Sequence[str]
    config: SceneConfig

    def model(self, category: str, rng: np.random.Generator) -> Model:
        """A model uniformly within `category` with scales from `sample_scale`."""
        ids = self.index.ids_of(category)
        return self.scaled(ids[rng.integers(len(ids))], rng)

    def scaled(self, cad_id: str, rng: np.random.Generator) -> Model:
        """`cad_id` with scales from `sample_scale`."""
        extent = self.index.extent(cad_id)
        s = sample_scale(self.index[cad_id].category, extent, self.config.max_anisotropy, rng)
        return Model(cad_id, s, s * extent)

    def has(self, category: str) -> bool:
        """Whether the scenes may hold `category`."""
        return category in self.categories


@dataclass(frozen=True)
class Template:
    """A kind of group. needs: for each entry, at least one of its classes must be in use. fewest: the
    fewest members it makes. build(kit, budget, rng): a group of at least `fewest`, at most `budget`
    members."""

    name: str
    needs: tuple[tuple[str, ...], ...]
    fewest: int
    build: Callable[[Kit, int, np.random.Generator], Group]

    def fits(self, categories: Sequence[str], count: int) -> bool:
        """Whether it can make a group of at most `count` objects of the `categories`."""
        return self.fewest <= count and all(any(c in categories for c in need) for need in self.needs)


@dataclass(frozen=True)
class Layout:
    """A scene's objects (the group's first, then those placed independently) and the wall the group
    backs onto (None: it stands free)."""

    template: str
    objects: list[StandingObject]
    group_size: int
    wall: WallLine | None


def _footprint_axes(yaw: float) -> np.ndarray:
    """(2, 2) rows: the CAD x and z axes of a model turned by `yaw`, in floor (x, z) (as `stand_on_floor`)."""
    return _yaw_rotation(yaw)[np.ix_([0, 2], [0, 2])].T


def _facing(position: np.ndarray, target: np.ndarray) -> float:
    """The yaw (radians) that turns a model at floor point `position` (2,) to face `target` (2,)."""
    x, z = target - position
    return float(np.arctan2(x, z))


def _dining(kit: Kit, budget: int, rng: np.random.Generator) -> Group:
    """A table at the group's centre, chairs around it facing its centre; one chair model (one scale)
    all round, or another model at the ends."""
    table = kit.model("table", rng)
    chairs = [kit.model("chair", rng)]
    others = [cad_id for cad_id in kit.index.ids_of("chair") if cad_id != chairs[0].cad_id]
    if others and rng.uniform() < _SECOND_CHAIRS:
        chairs.append(kit.scaled(others[rng.integers(len(others))], rng))
    wanted = int(rng.integers(2, min(6, budget - 1) + 1))
    members = [Member(table, np.zeros(2), 0.0)]
    margin = kit.config.footprint_margin
    for normal, offset, at_end in _chair_slots(table.half, chairs[0].size[0], wanted):
        chair = chairs[-1] if at_end else chairs[0]
        member = _chair_at(members[0].footprint(), chair, normal, offset, margin + rng.uniform(*_CHAIR_GAP), margin)
        # Chairs turned towards the centre may meet at the table's corners: such a chair is left out.
        if not any(footprints_overlap(member.footprint(), other.footprint(), margin) for other in members):
            members.append(member)
    return Group(members, against_wall=False)


def _chair_slots(table_half: np.ndarray, chair_width: float, wanted: int) -> list[tuple[np.ndarray, float, bool]]:
    """Up to `wanted` chair places at the sides of a table of half sizes (2,) (x, z, metres, table
    frame): (outward unit normal (2,) of the side, offset along the side (metres), whether it is an
    end). The long sides are filled first (as many chairs as their length holds), then one chair at
    each end, alternately."""
    along = 0 if table_half[0] >= table_half[1] else 1  # the long sides run along this axis
    across = 1 - along
    capacity = max(1, int((2 * table_half[along] + _CHAIR_SPACING) // (chair_width + _CHAIR_SPACING)))
    unit = np.eye(2)
    sides = [
        (unit[across], capacity, False),
        (-unit[across], capacity, False),
        (unit[along], 1, True),
        (-unit[along], 1, True),
    ]
    per_side = [0] * len(sides)
    while sum(per_side) < wanted and any(n < cap for n, (_, cap, _) in zip(per_side, sides, strict=True)):
        for k, (_, cap, _) in enumerate(sides):
            if per_side[k] < cap and sum(per_side) < wanted:
                per_side[k] += 1
    slots = []
    for (normal, _, at_end), n in zip(sides, per_side, strict=True):
        length = 0.0 if at_end else 2 * table_half[along]
        slots += [(normal, (i + 0.5) * length / n - length / 2, at_end) for i in range(n)]
    return slots


def _chair_at(table: Footprint, chair: Model, normal: np.ndarray, offset: float, gap: float, margin: float) -> Member:
    """A chair facing the table's centre from its side of outward `normal` (2,), `offset` metres
    along the side, its footprint `gap` metres out from the side and stepped further out until it
    keeps `margin` from the table (group frame, the table axis-aligned at `table.centre`)."""
    tangent = np.array([-normal[1], normal[0]])
    reach = float(np.abs(normal) @ table.half_size)
    centre = table.centre + normal * (reach + gap + chair.half[1]) + tangent * offset
    for _ in range(_CHAIR_STEPS):
        member = Member(chair, centre, _facing(centre, table.centre))
        if not footprints_overlap(member.footprint(), table, margin):
            break
        centre = centre + normal * _CHAIR_STEP
    return member


def _lounge(kit: Kit, budget: int, rng: np.random.Generator) -> Group:
    """A sofa facing +Z; a low table in front of it and/or a display facing it a few metres away."""
    sofa = kit.model("sofa", rng)
    options = [
        items
        for items in (("display",), ("table",), ("table", "display"))
        if all(kit.has(c) for c in items) and len(items) < budget
    ]
    items = options[rng.integers(len(options))]
    members = [Member(sofa, np.zeros(2), 0.0)]
    front = far = sofa.half[1]  # z of the sofa's front, and of the farthest front so far
    if "table" in items:
        table = kit.model("table", rng)
        z = front + rng.uniform(*_COFFEE_GAP) + table.half[1]
        members.append(Member(table, np.array([0.0, z]), 0.0))
        far = z + table.half[1]
    if "display" in items:
        display = kit.model("display", rng)
        screen = max(front + rng.uniform(*_SCREEN_DISTANCE), far + kit.config.footprint_margin + 0.3)
        members.append(Member(display, np.array([0.0, screen + display.half[1]]), np.pi))
    return Group(members, against_wall=bool(rng.uniform() < _AGAINST_WALL))


_ROW_CLASSES = ("chair", "cabinet", "bookshelf")


def _row(kit: Kit, budget: int, rng: np.random.Generator) -> Group:
    """2-4 copies of one model at one scale along the group's x axis, evenly spaced, facing +Z."""
    classes = [c for c in _ROW_CLASSES if kit.has(c)]
    model = kit.model(classes[rng.integers(len(classes))], rng)
    count = int(rng.integers(2, min(4, budget) + 1))
    pitch = model.size[0] + kit.config.footprint_margin + rng.uniform(*_ROW_GAP)
    members = [Member(model, np.array([(i - (count - 1) / 2) * pitch, 0.0]), 0.0) for i in range(count)]
    return Group(members, against_wall=bool(rng.uniform() < _AGAINST_WALL))


def _bedroom(kit: Kit, budget: int, rng: np.random.Generator) -> Group:
    """A bed facing +Z (headboard at -Z) with bedside cabinets (one model) and/or a bin at its sides,
    their backs in line with the bed's."""
    bed = kit.model("bed", rng)
    choices = [
        (cabinets, bins)
        for cabinets in (0, 1, 2)
        for bins in (0, 1)
        if 1 <= cabinets + bins < budget and (not cabinets or kit.has("cabinet")) and (not bins or kit.has("bin"))
    ]
    cabinets, bins = choices[rng.integers(len(choices))]
    # -1: the bed's left (-X), +1: its right; cabinets first, the bin on a free side if there is one.
    sides = [-1.0, 1.0] if cabinets == 2 else [float(rng.choice([-1.0, 1.0]))] if cabinets else []
    extras = [kit.model("cabinet", rng)] * cabinets if cabinets else []
    if bins:
        free = [side for side in (-1.0, 1.0) if side not in sides]
        sides.append(float(rng.choice(free or [-1.0, 1.0])))
        extras.append(kit.model("bin", rng))
    members = [Member(bed, np.zeros(2), 0.0)]
    reach = {-1.0: bed.half[0], 1.0: bed.half[0]}  # how far from the bed's axis each side is taken
    for side, model in zip(sides, extras, strict=True):
        x = reach[side] + kit.config.footprint_margin + rng.uniform(*_BEDSIDE_GAP) + model.half[0]
        members.append(Member(model, np.array([side * x, model.half[1] - bed.half[1]]), 0.0))
        reach[side] = x + model.half[0]
    return Group(members, against_wall=bool(rng.uniform() < _AGAINST_WALL))


def _wall(kit: Kit, budget: int, rng: np.random.Generator) -> Group:
    """1-3 models of any classes along the group's x axis, facing +Z, their backs on the line z = 0."""
    members = []
    x = 0.0
    for k in range(int(rng.integers(1, min(3, budget) + 1))):
        model = kit.scaled(choose_cad(kit.index, kit.categories, rng), rng)
        if k:
            x += kit.config.footprint_margin + rng.uniform(*_WALL_SPACING)
        members.append(Member(model, np.array([x + model.half[0], model.half[1]]), 0.0))
        x += model.size[0]
    return Group(members, against_wall=True)


TEMPLATES: dict[str, Template] = {
    template.name: template
    for template in (
        Template("dining", (("table",), ("chair",)), 3, _dining),
        Template("lounge", (("sofa",), ("display", "table")), 2, _lounge),
        Template("row", (_ROW_CLASSES,), 2, _row),
        Template("bedroom", (("bed",), ("cabinet", "bin")), 2, _bedroom),
        Template("wall", (), 1, _wall),
    )
}


def choose_template(categories: Sequence[str], count: int, rng: np.random.Generator) -> Template:
    """A template uniformly among those that fit `count` objects of the `categories` (`wall` always does)."""
    fitting = [template for template in TEMPLATES.values() if template.fits(categories, count)]
    return fitting[rng.integers(len(fitting))]


def place_layout(
    template: Template,
    index: CadIndex,
    categories: Sequence[str],
    count: int,
    rig: CameraRig,
    config: SceneConfig,
    rng: np.random.Generator,
) -> Layout | None:
    """`count` objects: a group of `template` (at most `count` members) placed as a whole in the
    camera's view, then the rest placed independently (`place_objects`, kept off the floor behind the
    group's wall); None when they do not fit."""
    group = template.build(Kit(index, categories, config), count, rng)
    placed = _place_group(index, group, rig, config, rng)
    if placed is None:
        return None
    members, wall = placed
    walls = () if wall is None else (_beyond(wall, rig),)
    objects = place_objects(index, categories, count - len(members), rig, config, rng, members, walls)
    return None if objects is None else Layout(template.name, objects, len(members), wall)


def _place_group(
    index: CadIndex, group: Group, rig: CameraRig, config: SceneConfig, rng: np.random.Generator
) -> tuple[list[StandingObject], WallLine | None] | None:
    """The group's members standing in the world: a group yaw (a multiple of 90 deg when it backs
    onto a wall) and the first anchor spot in view at which every member's bounding-box centre shows
    in the image, every footprint keeps clear of the camera and, against a wall, the camera stands on
    the group's front side `wall_margin` off the wall. Tried `_GROUP_TRIES` times, else None."""
    centres = np.stack([member.centre for member in group.members])
    centres -= centres.mean(axis=0)  # the anchor spot is the group's middle
    members = [Member(member.model, centre, member.yaw) for member, centre in zip(group.members, centres, strict=True)]
    back = min(member.footprint().corners()[:, 1].min() for member in members)
    heights = np.array([member.model.size[1] / 2 for member in members])  # box centres above the floor
    camera_zone = Footprint(rig.position[[0, 2]], np.eye(2), np.full(2, config.camera_clearance / 2))
    camera_margin = np.array([config.camera_clearance / 2])
    for _ in range(_GROUP_TRIES):
        yaw = rng.integers(4) * np.pi / 2 if group.against_wall else rng.uniform(-np.pi, np.pi)
        spots = _spots_in_view(rig, config, float(heights.mean()), rng)
        if not len(spots):
            continue
        turn = _footprint_axes(yaw).T  # group (x, z) -> world (x, z)
        world = spots[:, None] + centres @ turn.T  # (M, N, 2) member centres, world (x, z)
        fits = _shown(rig, config, world, heights).all(axis=1)
        for k, member in enumerate(members):
            axes = _footprint_axes(yaw + member.yaw)
            fits &= free_spots(world[:, k], axes, member.model.half, [camera_zone], camera_margin)
        front = turn[:, 1]  # the group's +Z in world (x, z)
        back_points = spots + back * front
        if group.against_wall:
            fits &= (rig.position[[0, 2]] - back_points) @ front >= config.wall_margin
        chosen = fits.nonzero()[0]
        if not len(chosen):
            continue
        spot = chosen[0]
        standing = [_stand(index, member, yaw, world[spot, k]) for k, member in enumerate(members)]
        if not group.against_wall:
            return standing, None
        axis = int(np.argmax(np.abs(front)))
        outward = -round(float(front[axis]))  # the wall is behind the group
        return standing, WallLine(axis, outward, float(back_points[spot, axis] + outward * _WALL_GAP))
    return None


def _shown(rig: CameraRig, config: SceneConfig, centres: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """(M, N) whether boxes centred `heights` (N,) metres above the floor points `centres` (M, N, 2)
    (world x, z) show their centres inside the image."""
    world = np.stack(np.broadcast_arrays(centres[..., 0], heights, centres[..., 1]), axis=-1)
    camera = rig.to_camera(world.reshape(-1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        pixel = (camera @ rig.K.T)[:, :2] / camera[:, 2:]
    inside = (
        (camera[:, 2] > 0)
        & (pixel[:, 0] >= 0)
        & (pixel[:, 0] <= config.width - 1)
        & (pixel[:, 1] >= 0)
        & (pixel[:, 1] <= config.height - 1)
    )
    return inside.reshape(centres.shape[:-1])


def _stand(index: CadIndex, member: Member, group_yaw: float, centre_xz: np.ndarray) -> StandingObject:
    """A member standing with its footprint centre at `centre_xz` (2,) (world x, z), turned by the group's yaw."""
    cad_id = member.model.cad_id
    extent, centre = index.extent(cad_id), index.centre(cad_id)
    bounds = np.stack([centre - extent / 2, centre + extent / 2])
    R, t, footprint = stand_on_floor(bounds, member.model.s, group_yaw + member.yaw, centre_xz)
    entry = index[cad_id]
    return StandingObject(cad_id, entry.category, entry.sym, R, t, member.model.s, footprint)


def _beyond(wall: WallLine, rig: CameraRig) -> Footprint:
    """The floor behind `wall` as one rectangle far larger than any room (world x, z)."""
    centre = rig.position[[0, 2]].copy()
    centre[wall.axis] = wall.position + wall.side * _BEYOND
    return Footprint(centre, np.eye(2), np.full(2, _BEYOND))
