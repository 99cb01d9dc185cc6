"""Sizes of the sparse inputs: how many box pixels and CAD points each detection contributes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class InputConfig:
    """Sparse input sizes (paper Sec. 3.2 and 4).

    n_bbox: pixels sampled in each detection's enlarged box (box tokens); n_cad: CAD points per
    detection, each giving one reprojected and one CAD token; box_enlarge: fraction by which the box
    width and height grow before sampling (0.1 = the paper's 10 %).
    """

    n_bbox: int = 2000
    n_cad: int = 500
    box_enlarge: float = 0.1

    def __post_init__(self) -> None:
        for name in ("n_bbox", "n_cad"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"InputConfig.{name} must be a positive integer, got {value!r}")
        if isinstance(self.box_enlarge, bool) or not isinstance(self.box_enlarge, (int, float)):
            raise ValueError(f"InputConfig.box_enlarge must be a number, got {self.box_enlarge!r}")
        if not 0.0 <= self.box_enlarge < float("inf"):
            raise ValueError(f"InputConfig.box_enlarge must be finite and >= 0, got {self.box_enlarge!r}")

    @property
    def n_input(self) -> int:
        """Tokens per detection: n_bbox box tokens, n_cad reprojected tokens and n_cad CAD tokens."""
        return self.n_bbox + 2 * self.n_cad

    @classmethod
    def paper(cls) -> InputConfig:
        """The paper's sizes: N_bbox = 2000, N_CAD = 500, boxes enlarged by 10 %."""
        return cls(n_bbox=2000, n_cad=500, box_enlarge=0.1)

    @classmethod
    def cpu(cls) -> InputConfig:
        """Sparser inputs for CPU training and tests, between the paper's 2000/500 and 200/200 rows."""
        return cls(n_bbox=500, n_cad=100, box_enlarge=0.1)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for YAML/JSON configs and checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputConfig:
        """Inverse of `to_dict`; missing keys take the paper's defaults, unknown keys are an error."""
        if not isinstance(data, dict):
            raise ValueError(f"input config must be a mapping, got {type(data).__name__}")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown input config key(s) {unknown}; expected some of {sorted(known)}")
        return cls(**data)
