"""The ablation of the test-time stages over several benchmark sets, from `multisparc evaluate` results.

Reads OUT/results.json of each evaluation (one set each, named by the folder OUT) and lays the per-scene
instance accuracy, class mean and time per image of every method side by side: one row per method, one
column group per set. Below the table: how far the full pipeline (`multisparc`) is from each ICP baseline
(`icp`, `icp-back-faces`) on each set where it ran, and how much it loses on the variants of a clean set
(`<library>-depth105`, `<library>-boxes`) against that set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multisparc.benchmarks.report import markdown_table

FULL, BASELINES = "multisparc", ("icp", "icp-back-faces")
VARIANTS = {"depth105": "depth x 1.05", "boxes": "boxes without masks"}


@dataclass(frozen=True)
class SetResults:
    """One evaluation: its name (the output folder's), preset, and per method (instance %, class mean %,
    time ms)."""

    name: str
    preset: str
    methods: dict[str, tuple[float, float, float]]

    @classmethod
    def read(cls, folder: Path) -> SetResults:
        """The results of `multisparc evaluate --out folder`; FileNotFoundError naming results.json."""
        path = Path(folder) / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (run multisparc evaluate --out {folder} first)")
        data: dict[str, Any] = json.loads(path.read_text())
        rows = {row["method"]: (row["instance"], row["class"], row["time_ms"]) for row in data["table1"]["rows"]}
        return cls(Path(folder).resolve().name, data["preset"], rows)


def ablation_table(sets: list[SetResults], targets: dict[str, float] | None = None) -> str:
    """Markdown: the table and the comparisons of the module docstring; targets: set name -> the instance
    accuracy (%) the full pipeline should reach there, each reported as met or missed by how much."""
    methods: list[str] = []
    for results in sets:
        methods += [name for name in results.methods if name not in methods]
    header = ["method"] + [f"{results.name} inst / class / ms" for results in sets]
    rows = []
    for name in methods:
        row: list[object] = [name]
        for results in sets:
            values = results.methods.get(name)
            row.append("-" if values is None else f"{values[0]:.1f} / {values[1]:.1f} / {values[2]:.0f}")
        rows.append(row)
    lines = [markdown_table(header, rows), ""]
    for results in sets:
        full = results.methods.get(FULL)
        for name in BASELINES:
            baseline = results.methods.get(name)
            if full is not None and baseline is not None:
                lines.append(
                    f"- {results.name}: {FULL} {full[0]:.1f} % against {name} {baseline[0]:.1f} % "
                    f"({full[0] - baseline[0]:+.1f} points)."
                )
    by_name = {results.name: results for results in sets}
    for results in sets:
        library, _, variant = results.name.rpartition("-")
        clean = by_name.get(f"{library}-clean")
        if variant in VARIANTS and clean is not None and FULL in results.methods and FULL in clean.methods:
            loss = clean.methods[FULL][0] - results.methods[FULL][0]
            lines.append(
                f"- {results.name} ({VARIANTS[variant]}): {FULL} loses {loss:.1f} points against "
                f"{clean.name} ({results.methods[FULL][0]:.1f} % against {clean.methods[FULL][0]:.1f} %)."
            )
    for name, target in (targets or {}).items():
        if name not in by_name or FULL not in by_name[name].methods:
            raise ValueError(f"a target names {name!r}, but no result of {FULL} on a set of that name is given")
        reached = by_name[name].methods[FULL][0]
        verdict = "met" if reached >= target else f"missed by {target - reached:.1f} points"
        lines.append(f"- target on {name}: {FULL} {reached:.1f} % against {target:g} %: {verdict}.")
    return "\n".join(lines) + "\n"
