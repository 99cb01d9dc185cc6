"""CPU ray-casting renderer: full frames and sparse pixel sets of CAD models in a room.

Camera frame OpenCV (x right, y down, z forward), metres; pose `X_cam = t + R @ (s * X_cad)`; depth is
z-depth (0 = nothing hit); normals face the camera; instance ids: objects >= 1, room 0, nothing -1.
One embree structure per CAD model, built once and reused for every scene (`RayCaster`).
"""

from multisparc.render.frame import (
    Frame,
    PixelSamples,
    distinct_pixels,
    image_pixels,
    pixel_directions,
    pixel_rays,
    render_full,
    render_pixels,
)
from multisparc.render.objects import PlacedObject
from multisparc.render.raycast import BACKGROUND_INSTANCE, ROOM_INSTANCE, CadGeometry, Hits, RayCaster
from multisparc.render.room import MAX_WALLS, Plane, Room, intersect_planes
from multisparc.render.shading import DEFAULT_LIGHTING, Lighting, lit_mask, shade
from multisparc.render.texture import PATTERNS, PLAIN, Texture, texture_factor
from multisparc.render.visibility import (
    instance_boxes,
    object_pixel_stats,
    render_object_alone,
    visible_fractions,
)

__all__ = [
    "BACKGROUND_INSTANCE",
    "DEFAULT_LIGHTING",
    "MAX_WALLS",
    "PATTERNS",
    "PLAIN",
    "ROOM_INSTANCE",
    "CadGeometry",
    "Frame",
    "Hits",
    "Lighting",
    "PixelSamples",
    "PlacedObject",
    "Plane",
    "RayCaster",
    "Room",
    "Texture",
    "distinct_pixels",
    "image_pixels",
    "instance_boxes",
    "intersect_planes",
    "lit_mask",
    "object_pixel_stats",
    "pixel_directions",
    "pixel_rays",
    "render_full",
    "render_object_alone",
    "render_pixels",
    "shade",
    "texture_factor",
    "visible_fractions",
]
