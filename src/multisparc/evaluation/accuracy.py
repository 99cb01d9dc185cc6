"""Per-class counts of correct alignments, shared by the per-scene and the per-image results."""

from __future__ import annotations

from dataclasses import dataclass

from multisparc.evaluation.presets import EvalPreset


@dataclass
class ClassCounts:
    """correct / total per class name (what `total` counts is the subclass's); accuracies in [0, 1]."""

    preset: EvalPreset
    correct: dict[str, int]
    total: dict[str, int]

    @property
    def classes(self) -> tuple[str, ...]:
        """The preset's reported classes with a non-zero total, in the preset's order."""
        return tuple(name for name in self.preset.reported_classes if self.total.get(name, 0) > 0)

    @property
    def per_class(self) -> dict[str, float]:
        """Accuracy of each class of `classes`."""
        return {name: self.correct.get(name, 0) / self.total[name] for name in self.classes}
