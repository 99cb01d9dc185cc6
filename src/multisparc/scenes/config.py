"""Parameters of synthetic scene sampling (YAML-friendly: plain numbers, pairs as [low, high] lists)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from multisparc.categories import canonical_category
from multisparc.config_checks import require_fractions, require_ints, require_non_negative, require_positive

# Fields holding a (low, high) range; YAML gives them as lists, stored as tuples.
_RANGES = ("camera_height", "pitch_deg", "objects", "object_distance", "room_size", "ceiling_height")


@dataclass(frozen=True)
class SceneConfig:
    """How synthetic scenes are drawn. Lengths in metres, angles in degrees, image sizes in pixels.

    Camera: `width` x `height` image; fx = fy = `focal` * (1 + U(-focal_jitter, focal_jitter));
    principal point at the image centre ((W - 1) / 2, (H - 1) / 2) + U(-principal_jitter, +) pixels;
    height above the floor U(camera_height); pitch down U(pitch_deg); roll N(0, roll_std_deg).

    Objects: their number U{objects[0], ..., objects[1]}; classes uniform over `categories` (None: every
    class the CAD index has), then models uniform within the class; per-axis scales within the class's
    size range with at most `max_anisotropy` between the largest and smallest relative stretch. Each
    stands on the floor where the centre of its bounding box projects into the image, at a horizontal
    distance within `object_distance` from the camera (footprint centres are drawn under random points
    of the image widened by `view_margin` of its width on each side and extended down by its height);
    footprints keep `footprint_margin` apart and `camera_clearance` from the camera. `placement_tries`
    positions are tried per object before another model is drawn for it.

    Layouts: a share `layout_share` of the scenes is arranged as real rooms are (`scenes.layouts`): a
    group of related objects (chairs around a table, a sofa facing a display, a row of equal models, a
    bed with bedside cabinets, objects backed against a wall) placed as a whole, the rest of the
    `objects` count placed independently as above. 0 draws exactly the scenes of independent placement.

    Room: a rectangle of sides U(room_size), grown where needed to hold the camera and every footprint
    `wall_margin` from the walls; ceiling at U(ceiling_height) (above the camera and the objects).

    Visibility: `visibility_points` surface samples per object are projected and checked by sparse ray
    casting, the first `visibility_fraction_points` of them for the visible fraction, all of them for the
    truncation and the visible part's box (of which only the samples near its edges are cast); an
    object is detected when its visible fraction is at least `min_visible_fraction` and at most
    `max_truncation` of it lies outside the image. A scene with fewer than `min_detections`
    detected objects is rejected and drawn again, at most `max_attempts` times.
    """

    width: int = 480
    height: int = 360
    focal: float = 435.0
    focal_jitter: float = 0.03
    principal_jitter: float = 4.0
    camera_height: tuple[float, float] = (1.0, 2.0)
    pitch_deg: tuple[float, float] = (0.0, 40.0)
    roll_std_deg: float = 2.0
    objects: tuple[int, int] = (1, 4)
    categories: tuple[str, ...] | None = None
    max_anisotropy: float = 1.25
    object_distance: tuple[float, float] = (1.0, 6.0)
    view_margin: float = 0.25
    footprint_margin: float = 0.05
    camera_clearance: float = 0.4
    placement_tries: int = 40
    layout_share: float = 0.0
    room_size: tuple[float, float] = (4.0, 8.0)
    wall_margin: float = 0.1
    ceiling_height: tuple[float, float] = (2.4, 3.2)
    visibility_points: int = 4000
    visibility_fraction_points: int = 500
    min_visible_fraction: float = 0.3
    max_truncation: float = 0.6
    min_detections: int = 1
    max_attempts: int = 50
    shadows: bool = True

    def __post_init__(self) -> None:
        for name in _RANGES:
            value = getattr(self, name)
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise ValueError(f"SceneConfig.{name} must be a [low, high] pair, got {value!r}")
            low, high = value
            if not (math.isfinite(low) and math.isfinite(high)) or low > high:
                raise ValueError(f"SceneConfig.{name} must be finite with low <= high, got {value!r}")
            object.__setattr__(self, name, (low, high))
        if self.categories is not None:
            object.__setattr__(self, "categories", tuple(canonical_category(c) for c in self.categories))
            if not self.categories:
                raise ValueError("SceneConfig.categories must name at least one class (or be None for all)")
        prefix = "SceneConfig."
        integers = ("width", "height", "placement_tries", "visibility_points", "visibility_fraction_points")
        require_ints(self, (*integers, "max_attempts", "min_detections"), 1, prefix)
        require_positive(self, ("focal", "max_anisotropy"), prefix)
        non_negative = ("focal_jitter", "principal_jitter", "roll_std_deg", "view_margin", "footprint_margin")
        require_non_negative(self, non_negative, prefix)
        if self.max_anisotropy < 1:
            raise ValueError(f"SceneConfig.max_anisotropy must be >= 1, got {self.max_anisotropy!r}")
        if self.objects[0] < 1 or any(int(n) != n for n in self.objects):
            raise ValueError(f"SceneConfig.objects must be whole numbers >= 1, got {self.objects!r}")
        if self.min_detections > self.objects[0]:
            raise ValueError(
                f"SceneConfig.min_detections ({self.min_detections}) exceeds the fewest objects ({self.objects[0]})"
            )
        if not (0 <= self.pitch_deg[0] and self.pitch_deg[1] < 90):
            raise ValueError(f"SceneConfig.pitch_deg must lie in [0, 90), got {self.pitch_deg!r}")
        if self.camera_height[0] <= 0 or self.object_distance[0] <= 0 or self.room_size[0] <= 0:
            raise ValueError("SceneConfig.camera_height, object_distance and room_size must be positive")
        require_fractions(self, ("layout_share", "min_visible_fraction", "max_truncation"), prefix)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (ranges as lists) for YAML/JSON."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "scene config") -> SceneConfig:
        """Inverse of `to_dict`; missing keys take the defaults. Errors name `source` (e.g. the YAML file)."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping of scene settings, got {type(data).__name__}")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown scene setting(s) {unknown}; expected some of {sorted(known)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: {error}") from error
