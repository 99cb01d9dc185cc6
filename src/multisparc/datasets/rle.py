"""COCO run-length encoded (RLE) masks, as ROCA's `per_frame_preds.json` and Detectron2 write them.

An RLE is `{"size": [H, W], "counts": ...}`: run lengths over the mask flattened in column-major
(Fortran) order, alternating background and foreground and starting with background (a mask whose
first pixel is set starts with a zero run). `counts` is either a list of integers (uncompressed) or
pycocotools' compressed string: every count is written in 5-bit groups, least significant first, as
characters `48 + group` with bit 0x20 meaning "another group follows" and bit 0x10 of the last group
the sign; from the fourth count on, each is stored as the difference to the count two places back.

pycocotools is not a dependency (it needs a compiler on some platforms), so both forms are decoded
here with numpy, following its `maskApi.c` (`rleFrString`, `rleDecode`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class RleError(ValueError):
    """An RLE that is malformed; the message states the problem (callers add the file)."""


def is_rle(value: Any) -> bool:
    """Whether `value` looks like a COCO RLE (a mapping with "size" and "counts")."""
    return isinstance(value, Mapping) and "size" in value and "counts" in value


def counts_from_string(text: str | bytes) -> list[int]:
    """The run lengths of pycocotools' compressed counts string (module docstring)."""
    if isinstance(text, bytes):
        text = text.decode("ascii")
    counts: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(text):
                raise RleError("compressed counts string ends in the middle of a number")
            group = ord(text[position]) - 48
            if not 0 <= group < 64:
                raise RleError(f"compressed counts string holds the invalid character {text[position]!r}")
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            position += 1
            shift += 5
            if not more and group & 0x10:
                value -= 1 << shift  # sign extension of the last 5-bit group
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def counts_to_string(counts: list[int]) -> str:
    """pycocotools' compressed string of run lengths `counts` (inverse of `counts_from_string`)."""
    characters = []
    for index, count in enumerate(counts):
        value = int(count) - (int(counts[index - 2]) if index > 2 else 0)
        more = True
        while more:
            group = value & 0x1F
            value >>= 5
            more = value != -1 if group & 0x10 else value != 0
            characters.append(chr(48 + (group | 0x20 if more else group)))
    return "".join(characters)


def _size(rle: Mapping[str, Any]) -> tuple[int, int]:
    size = rle["size"]
    if not isinstance(size, list | tuple) or len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise RleError(f"RLE size must be [height, width] with positive integers, got {size!r}")
    return int(size[0]), int(size[1])


def decode_rle(rle: Any) -> np.ndarray:
    """The (H, W) bool mask of a COCO RLE (compressed string or list counts); H, W from its "size"."""
    if not is_rle(rle):
        raise RleError("an RLE mask must be an object with size [height, width] and counts")
    height, width = _size(rle)
    raw = rle["counts"]
    if isinstance(raw, str | bytes):
        counts = counts_from_string(raw)
    elif isinstance(raw, list | tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
        counts = [int(v) for v in raw]
    else:
        raise RleError("RLE counts must be a compressed string or a list of integers")
    runs = np.asarray(counts, dtype=np.int64)
    if np.any(runs < 0):
        raise RleError(f"RLE counts must not be negative, got {runs[runs < 0][0]}")
    if int(runs.sum()) != height * width:
        total = int(runs.sum())
        raise RleError(f"RLE counts sum to {total} pixels, but its size {height} x {width} has {height * width}")
    values = np.arange(len(runs)) % 2 == 1  # runs alternate background, foreground, ...
    flat = np.repeat(values, runs)
    return flat.reshape(width, height).T  # column-major: the flat order walks down each column first


def encode_rle(mask: np.ndarray, compressed: bool = True) -> dict[str, Any]:
    """The COCO RLE of an (H, W) mask (non-zero = inside); counts as a compressed string or a list."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise RleError(f"a mask to encode must be 2-D (H, W), got shape {mask.shape}")
    flat = mask.T.reshape(-1) != 0
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(edges).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    size = [int(mask.shape[0]), int(mask.shape[1])]
    return {"size": size, "counts": counts_to_string(counts) if compressed else counts}
