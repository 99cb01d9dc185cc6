"""What a detector reports for a synthetic scene: jittered boxes, missed objects and false detections.

Drawn from the scene's noise seed, so the sparse pixel source and the full-frame export agree. At the
`clean` level the detections are exactly the scene's detected objects, in order, with their true boxes
and score 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multisparc.render import ROOM_INSTANCE
from multisparc.scenes.noise import PerceptionNoise, Stream
from multisparc.scenes.scene import SceneObject, SyntheticScene

# Ids of false detections start here (true detections use their object's instance id).
SPURIOUS_ID_OFFSET = 1000
# Smallest width and height of a jittered box, pixels.
MIN_BOX_SIZE = 2.0
# Size of a false detection on the background when no object box gives one, fraction of the image.
_BACKGROUND_BOX_SIZE = 0.2


@dataclass(frozen=True, eq=False)
class SyntheticDetection:
    """One detection of a synthetic scene.

    id: detection id (the object's instance id, or SPURIOUS_ID_OFFSET + k for false ones).
    category, cad: the class and CAD model the detector reports. bbox: (4,) [x1, y1, x2, y2] pixels.
    score: detector confidence. instance_id: the rendered instance its mask follows (an object's id,
    or ROOM_INSTANCE for a false detection on the background). object_index: index of the detected
    object in `scene.objects`, None for a false detection. has_mask: False for a detection that comes as
    a box alone (the noise's `maskless_rate`); its mask is then its box, as for a box-only detector.
    """

    id: int
    category: str
    cad: str
    bbox: np.ndarray
    score: float
    instance_id: int
    object_index: int | None
    has_mask: bool = True

    def mask(self, instance: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        """(N,) bool mask at pixels (N, 2) (col, row) given the (noisy) instance ids (N,) there: the pixels
        of its instance; for a detection of the room only those inside its box; without a mask, its box."""
        x1, y1, x2, y2 = self.bbox
        in_box = (pixels[:, 0] >= x1) & (pixels[:, 0] <= x2) & (pixels[:, 1] >= y1) & (pixels[:, 1] <= y2)
        if not self.has_mask:
            return in_box
        inside = instance == self.instance_id
        if self.instance_id == ROOM_INSTANCE:
            inside &= in_box
        return inside


def jitter_box(box: np.ndarray, fraction: float, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """(4,) box with every side moved by U(-fraction, fraction) of the image width (x) or height (y),
    clipped to the image and at least MIN_BOX_SIZE wide and high."""
    size = np.array([width, height, width, height], dtype=np.float64)
    moved = np.asarray(box, dtype=np.float64) + (rng.uniform(-fraction, fraction, 4) * size if fraction else 0.0)
    moved = np.clip(moved, 0.0, size - 1)
    for low, high, limit in ((0, 2, width - 1), (1, 3, height - 1)):
        if moved[high] - moved[low] < MIN_BOX_SIZE:
            start = np.clip((moved[low] + moved[high] - MIN_BOX_SIZE) / 2, 0.0, limit - MIN_BOX_SIZE)
            moved[low], moved[high] = start, start + MIN_BOX_SIZE
    return moved


def _background_box(source: SceneObject, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A box of the size of `source`'s box (or a fifth of the image) at a random place in the image."""
    if source.box is not None:
        size = source.box[2:] - source.box[:2]
    else:
        size = _BACKGROUND_BOX_SIZE * np.array([width, height], dtype=np.float64)
    corner = rng.uniform(0.0, 1.0, 2) * np.maximum(np.array([width - 1, height - 1]) - size, 0.0)
    return np.concatenate([corner, corner + size])


def _has_mask(maskless_rate: float, rng: np.random.Generator) -> bool:
    """Whether a detection comes with a mask; no draw at a rate of 0, so such levels keep their streams."""
    return not (maskless_rate and rng.uniform() < maskless_rate)


def perceive_detections(
    scene: SyntheticScene, noise: PerceptionNoise, seed: int | None = None
) -> list[SyntheticDetection]:
    """The detector's output for `scene` under `noise`, drawn from `seed` (default: the scene's noise seed).

    True detections first (detected objects in order, each missed with probability `drop_rate` but never
    all of them), then Poisson(`spurious_rate`) false ones: the class and CAD of a random scene object,
    boxed either around another detected object (its mask is that object's) or on the background. Each
    comes without a mask with probability `maskless_rate`.
    """
    p = noise.params
    rng = np.random.default_rng([scene.noise_seed if seed is None else seed, Stream.DETECTIONS])
    width, height = scene.camera.width, scene.camera.height
    detected = [index for index, obj in enumerate(scene.objects) if obj.detected]
    kept = rng.uniform(size=len(detected)) >= p.drop_rate
    if detected and not kept.any():
        kept[int(np.argmax([scene.objects[index].visible_fraction for index in detected]))] = True
    detections = []
    for index in np.asarray(detected, dtype=int)[kept]:
        obj = scene.objects[index]
        detections.append(
            SyntheticDetection(
                id=obj.instance_id,
                category=obj.category,
                cad=obj.cad_id,
                bbox=jitter_box(obj.box, p.box_jitter, width, height, rng),
                score=float(rng.uniform(*p.detection_score)),
                instance_id=obj.instance_id,
                object_index=int(index),
                has_mask=_has_mask(p.maskless_rate, rng),
            )
        )
    spurious = rng.poisson(p.spurious_rate) if p.spurious_rate and scene.objects else 0
    for k in range(spurious):
        source = scene.objects[rng.integers(len(scene.objects))]
        others = [scene.objects[index] for index in detected if scene.objects[index] is not source]
        if others and rng.uniform() < 0.5:
            target = others[rng.integers(len(others))]
            bbox, instance_id = jitter_box(target.box, p.box_jitter, width, height, rng), target.instance_id
        else:
            bbox = jitter_box(_background_box(source, width, height, rng), p.box_jitter, width, height, rng)
            instance_id = ROOM_INSTANCE
        detections.append(
            SyntheticDetection(
                id=SPURIOUS_ID_OFFSET + k,
                category=source.category,
                cad=source.cad_id,
                bbox=bbox,
                score=float(rng.uniform(*p.spurious_score)),
                instance_id=instance_id,
                object_index=None,
                has_mask=_has_mask(p.maskless_rate, rng),
            )
        )
    return detections
