"""Wall-clock time per pipeline stage, accumulated over every time the stage runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class StageTimer:
    """Accumulates seconds and call counts per named stage.

    With `device` a CUDA device, every stage boundary calls `torch.cuda.synchronize` so that queued
    kernels are charged to the stage that launched them rather than to whichever stage waits next.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the body of a `with` block and add it to stage `name`."""
        self._synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.calls[name] = self.calls.get(name, 0) + 1

    @property
    def total(self) -> float:
        """Seconds summed over all stages."""
        return sum(self.seconds.values())

    def to_dict(self) -> dict[str, float]:
        """Seconds per stage (in the order the stages first ran) and their `total`."""
        return {**self.seconds, "total": self.total}
