"""Learning curve of a training run, read from its `metrics.jsonl` (written by the trainer).

Every validation record holds the step, the training time so far (`elapsed_s`, summed over resumed
runs; `LearningCurve.after` chains a run that started from an earlier phase's weights) and the fixed
validation set's metrics: alignment accuracy (20 cm / 20 deg / 20 %) of the initial and the refined
poses, the mean point distance before and after refinement, the classifier's accuracy on classifier
poses and on the refined poses, and (runs since the trainer reports it) the test-time protocol's
accuracy: 4 hypotheses refined, the one of highest score chosen; and (runs since the trainer reports
it) the share of the training time spent waiting for data since the previous record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt

from multisparc.benchmarks.report import markdown_table

CURVES = {
    "val/align_acc_refined": "alignment accuracy, refined",
    "val/align_acc_initial": "alignment accuracy, initial poses",
    "val/cls_acc": "classifier accuracy",
    "val/select_acc": "alignment accuracy, 4 hypotheses, best score chosen",
}


class MetricsError(ValueError):
    """A metrics.jsonl that is missing, empty or malformed; the message names the file."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class LearningCurve:
    """Validation records of one run, in step order (a resumed run's repeated steps keep the last)."""

    path: Path
    records: list[dict[str, float]]

    @classmethod
    def read(cls, path: Path) -> LearningCurve:
        if not path.is_file():
            raise MetricsError(path, "no such file (a training run writes it at every validation)")
        by_step: dict[int, dict[str, float]] = {}
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise MetricsError(path, f"line {number} is not JSON ({err.msg})") from None
            if not isinstance(record, dict) or "step" not in record or "elapsed_s" not in record:
                raise MetricsError(path, f"line {number} lacks 'step' or 'elapsed_s'")
            by_step[int(record["step"])] = record
        if not by_step:
            raise MetricsError(path, "holds no validation record yet")
        return cls(path, [by_step[step] for step in sorted(by_step)])

    def after(self, earlier: LearningCurve) -> LearningCurve:
        """This run as the continuation of `earlier` (a phase that ended where this one started from its
        weights): earlier's records, then these with step and training time counted on from its last."""
        offset_step, offset_s = earlier.last["step"], earlier.last["elapsed_s"]
        shifted = [
            {**record, "step": record["step"] + offset_step, "elapsed_s": record["elapsed_s"] + offset_s}
            for record in self.records
        ]
        return LearningCurve(self.path, earlier.records + shifted)

    @property
    def last(self) -> dict[str, float]:
        return self.records[-1]

    def plot(self, out: Path) -> Path:
        """Accuracies against training hours as a PNG at `out`."""
        hours = [record["elapsed_s"] / 3600.0 for record in self.records]
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        for key, label in CURVES.items():
            # A metric the trainer added later starts part of the way along.
            recorded = [
                (hour, 100.0 * record[key]) for hour, record in zip(hours, self.records, strict=True) if key in record
            ]
            if recorded:
                ax.plot(*zip(*recorded, strict=True), marker="o", markersize=3, label=label)
        ax.set_xlabel("training time [h]")
        ax.set_ylabel("validation accuracy [%]")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        ax.set_title(f"{self.path.parent.name}: step {self.last['step']}")
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out)
        plt.close(fig)
        return out

    def table(self, rows: int = 12) -> str:
        """A Markdown table of (up to) `rows` records spread evenly over the run, the last included."""
        picked = sorted({round(i * (len(self.records) - 1) / max(rows - 1, 1)) for i in range(rows)})
        header = [
            "step",
            "hours",
            "acc initial %",
            "acc refined %",
            "point L1 initial [m]",
            "point L1 refined [m]",
            "classifier acc %",
            "selected acc %",
            "data share of step time %",
        ]
        body = []
        for record in (self.records[i] for i in picked):
            body.append(
                [
                    int(record["step"]),
                    f"{record['elapsed_s'] / 3600.0:.2f}",
                    _percent(record, "val/align_acc_initial"),
                    _percent(record, "val/align_acc_refined"),
                    _metres(record, "val/align_loss_initial"),
                    _metres(record, "val/align_loss_refined"),
                    _percent(record, "val/cls_acc"),
                    _percent(record, "val/select_acc"),
                    _percent(record, "speed/data_share"),
                ]
            )
        return markdown_table(header, body)


def _percent(record: dict[str, float], key: str) -> str:
    return f"{100.0 * record[key]:.1f}" if key in record else "-"


def _metres(record: dict[str, float], key: str) -> str:
    return f"{record[key]:.3f}" if key in record else "-"
