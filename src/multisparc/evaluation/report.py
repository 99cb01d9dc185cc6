"""Results tables in the layout of the paper, as Markdown and JSON (accuracies in %).

Table 1 (per scene): one row per method, columns the 9 classes, the class mean, the instance accuracy
and the time per image [ms], under a row "Number of instances" with the ground-truth counts (its class
column holds the number of classes). Table 2 (per image): AP50 and APmean of AP^mesh at each rho, and
the class and instance alignment accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from multisparc.categories import CATEGORIES
from multisparc.evaluation.ap_mesh import MeshApResults
from multisparc.evaluation.per_image import PerImageResults
from multisparc.evaluation.scene_eval import AlignmentResults

#: Column headers of the classes as the paper prints them.
CLASS_HEADERS: dict[str, str] = {"bookshelf": "bkshlf"}
COUNTS_ROW = "Number of instances"


def _percent(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(100.0 * value, 1)


def _cell(value: float | int | None) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


@dataclass
class MethodRow:
    """One method's alignment accuracies (fractions in [0, 1]; classes it has no value for are absent)."""

    name: str
    per_class: dict[str, float]
    class_mean: float
    instance: float
    time_ms: float | None = None


def method_row(name: str, results: AlignmentResults | PerImageResults, time_ms: float | None = None) -> MethodRow:
    """A table row from per-scene or per-image results; `time_ms` per image, when measured."""
    return MethodRow(name, dict(results.per_class), results.class_mean, results.instance, time_ms)


def alignment_table_json(rows: Sequence[MethodRow], counts: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Table 1 as JSON: {"unit": "percent", "classes", "counts" (or None), "rows": [{"method", "per_class",
    "class", "instance", "time_ms"}]}, values rounded to 0.1 and None where missing."""
    return {
        "unit": "percent",
        "classes": list(CATEGORIES),
        "counts": None if counts is None else {name: int(counts.get(name, 0)) for name in CATEGORIES},
        "rows": [
            {
                "method": row.name,
                "per_class": {name: _percent(row.per_class.get(name)) for name in CATEGORIES},
                "class": _percent(row.class_mean),
                "instance": _percent(row.instance),
                "time_ms": None if row.time_ms is None else round(row.time_ms),
            }
            for row in rows
        ],
    }


def alignment_table_markdown(rows: Sequence[MethodRow], counts: Mapping[str, int] | None = None) -> str:
    """Table 1 as a Markdown table (see the module docstring); `counts` are ground-truth objects per class."""
    table = alignment_table_json(rows, counts)
    header = ["Method", *(CLASS_HEADERS.get(name, name) for name in CATEGORIES), "class", "instance", "time [ms]"]
    lines = []
    if counts is not None:
        present = [table["counts"][name] for name in CATEGORIES]
        lines.append([COUNTS_ROW, *map(str, present), str(sum(n > 0 for n in present)), str(sum(present)), "-"])
    for row in table["rows"]:
        lines.append(
            [
                row["method"],
                *(_cell(row["per_class"][name]) for name in CATEGORIES),
                _cell(row["class"]),
                _cell(row["instance"]),
                _cell(row["time_ms"]),
            ]
        )
    return _markdown(header, lines)


@dataclass
class PerImageRow:
    """One method's per-image results: ap50[rho], ap_mean[rho] and accuracies, fractions in [0, 1]:
    class_mean and instance under the paper's rule, strict_instance and strict_recall under the strict
    one-to-one rule (`evaluation.per_image.strict_per_image`; NaN when not computed)."""

    name: str
    ap50: dict[float, float] = field(default_factory=dict)
    ap_mean: dict[float, float] = field(default_factory=dict)
    class_mean: float = float("nan")
    instance: float = float("nan")
    strict_instance: float = float("nan")
    strict_recall: float = float("nan")


def per_image_row(name: str, accuracy: PerImageResults, ap: MeshApResults) -> PerImageRow:
    """A Table 2 row from per-image accuracy and AP^mesh results."""
    return PerImageRow(
        name=name,
        ap50={rho: ap.mean_ap50(rho) for rho in ap.rhos},
        ap_mean={rho: ap.mean_ap_mean(rho) for rho in ap.rhos},
        class_mean=accuracy.class_mean,
        instance=accuracy.instance,
    )


def per_image_table_json(rows: Sequence[PerImageRow]) -> dict[str, Any]:
    """Table 2 as JSON: {"unit": "percent", "rows": [{"method", "ap50" {rho: %}, "ap_mean" {rho: %},
    "class", "instance"}]}."""
    return {
        "unit": "percent",
        "rows": [
            {
                "method": row.name,
                "ap50": {str(rho): _percent(value) for rho, value in row.ap50.items()},
                "ap_mean": {str(rho): _percent(value) for rho, value in row.ap_mean.items()},
                "class": _percent(row.class_mean),
                "instance": _percent(row.instance),
                "strict_instance": _percent(row.strict_instance),
                "strict_recall": _percent(row.strict_recall),
            }
            for row in rows
        ],
    }


def per_image_table_markdown(rows: Sequence[PerImageRow]) -> str:
    """Table 2 as a Markdown table: AP50 and APmean for every rho of the rows, then class and instance,
    then the strict rule's instance accuracy and recall when any row has them."""
    rhos = sorted({rho for row in rows for rho in (*row.ap50, *row.ap_mean)})
    strict = any(math.isfinite(row.strict_instance) for row in rows)
    header = ["Method"]
    for rho in rhos:
        header += [f"AP50 (rho {rho})", f"APmean (rho {rho})"]
    header += ["class", "instance"] + (["strict instance", "strict recall"] if strict else [])
    lines = []
    for row in rows:
        cells = [row.name]
        for rho in rhos:
            cells += [_cell(_percent(row.ap50.get(rho))), _cell(_percent(row.ap_mean.get(rho)))]
        cells += [_cell(_percent(row.class_mean)), _cell(_percent(row.instance))]
        if strict:
            cells += [_cell(_percent(row.strict_instance)), _cell(_percent(row.strict_recall))]
        lines.append(cells)
    return _markdown(header, lines)
