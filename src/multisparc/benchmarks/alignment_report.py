"""Reports of the alignment benchmark: results.md, results.json and calibration plots of scored methods.

Tables (accuracies in %, `multisparc.evaluation.report`): Table 1 layout per scene under the preset (per
class, class mean, instance, time per image in ms, with the ground-truth counts), and the Table 2 layout
per image (AP^mesh AP50 / APmean per rho, class and instance accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from multisparc.benchmarks.alignment import MethodScores, finite
from multisparc.benchmarks.report import command_line, machine_description
from multisparc.datasets.bundle import atomic_write_bytes, write_json
from multisparc.evaluation import (
    MethodRow,
    PerImageRow,
    alignment_table_json,
    alignment_table_markdown,
    per_image_table_json,
    per_image_table_markdown,
    plot_calibration,
    reliability_diagram,
)

CALIBRATION_DIR = "calibration"
#: The method the others are compared with in the summary line, and those it is compared against.
OURS = "multisparc"
BASELINES = ("icp", "icp-back-faces", "initial", "single", "2d-score")


def table1_rows(scores: Sequence[MethodScores]) -> list[MethodRow]:
    """Table 1 rows (per scene) of the methods, in order."""
    return [
        MethodRow(s.name, dict(s.per_scene.per_class), s.per_scene.class_mean, s.per_scene.instance, s.time_ms)
        for s in scores
    ]


def table2_rows(scores: Sequence[MethodScores]) -> list[PerImageRow]:
    """Table 2 rows (per image, AP^mesh when computed) of the methods, in order."""
    rows = []
    for s in scores:
        row = PerImageRow(
            s.name,
            class_mean=s.per_image.class_mean,
            instance=s.per_image.instance,
            strict_instance=s.strict.instance,
            strict_recall=s.strict.recall,
        )
        if s.ap_mesh is not None and s.ap_mesh.n_positives:
            row.ap50 = {rho: s.ap_mesh.mean_ap50(rho) for rho in s.ap_mesh.rhos}
            row.ap_mean = {rho: s.ap_mesh.mean_ap_mean(rho) for rho in s.ap_mesh.rhos}
        rows.append(row)
    return rows


def ground_truth_counts(scores: Sequence[MethodScores]) -> dict[str, int]:
    """Ground-truth objects per class of the per-scene evaluation (the first method's counted scenes)."""
    return dict(scores[0].per_scene.total) if scores else {}


def write_calibration_plots(out_dir: Path, scores: Sequence[MethodScores]) -> dict[str, dict[str, Any]]:
    """One PNG per method, `out_dir/calibration/<method>.png` (accuracy of the top-scored predictions and the
    reliability diagram, `plot_calibration`). Returns per method its file (relative to out_dir) and the
    expected calibration error of each score; methods without evaluated predictions are left out."""
    written: dict[str, dict[str, Any]] = {}
    for s in scores:
        data = s.calibration_data()
        if data is None or not data[1]:
            continue
        correct, curves = data
        relative = Path(CALIBRATION_DIR) / f"{s.name}.png"
        plot_calibration(out_dir / relative, correct, curves, title=f"{s.name}: accuracy against score")
        written[s.name] = {
            "plot": relative.as_posix(),
            "n_predictions": len(correct),
            "ece": {label: reliability_diagram(values, correct).ece for label, values in curves.items()},
        }
    return written


def comparison_lines(scores: Sequence[MethodScores]) -> list[str]:
    """One sentence per baseline present: our instance and class-mean accuracy against it, per scene."""
    by_name = {s.name: s for s in scores}
    ours = by_name.get(OURS)
    if ours is None:
        return []
    lines = []
    for name in BASELINES:
        other = by_name.get(name)
        if other is None:
            continue
        gap = 100.0 * (ours.per_scene.instance - other.per_scene.instance)
        verdict = "ahead of" if gap > 0 else "behind" if gap < 0 else "level with"
        lines.append(
            f"- {OURS} is {verdict} {name} by {abs(gap):.1f} points of instance accuracy "
            f"({100.0 * ours.per_scene.instance:.1f} % against {100.0 * other.per_scene.instance:.1f} %; "
            f"class mean {100.0 * ours.per_scene.class_mean:.1f} % against {100.0 * other.per_scene.class_mean:.1f} %)."
        )
    return lines


def results_body(
    scores: Sequence[MethodScores], scenes_label: str, n_scenes: int, calibration: dict[str, dict[str, Any]]
) -> str:
    """The Markdown tables and notes shared by results.md and a BENCHMARKS.md section."""
    preset = scores[0].per_scene.preset.name
    ranked_2d = [s.name for s in scores if s.ranking_score == "detection_score"]
    lines = [
        f"{n_scenes} scene bundles ({scenes_label}); accuracy = translation <= 20 cm, rotation <= 20 deg, "
        f"scale <= 20 %. Time per image: alignment without file I/O.",
        "",
        f"Per scene, `{preset}` preset (the layout of the paper's Table 1), in %:",
        "",
        alignment_table_markdown(table1_rows(scores), ground_truth_counts(scores)).rstrip(),
        "",
        "Per image, in %: the paper's Sec. 4 protocol (each prediction judged against the visible object of its "
        "class whose box overlaps it most, several predictions may share one object, predictions overlapping none "
        "left out; AP^mesh at F-score radius rho), then the strict protocol (one-to-one matching in order of "
        "score, unmatched predictions wrong; recall = aligned visible objects / visible objects):",
        "",
        per_image_table_markdown(table2_rows(scores)).rstrip(),
    ]
    if ranked_2d:
        lines += ["", f"Ranked by the 2D detection score instead of the learned score: {', '.join(ranked_2d)}."]
    comparisons = comparison_lines(scores)
    if comparisons:
        lines += ["", "Per scene, computed from the table above:", "", *comparisons]
    if calibration:
        lines += ["", "Calibration (accuracy against sorted score; expected calibration error):", ""]
        for name, info in calibration.items():
            eces = ", ".join(f"{label} ECE {value:.3f}" for label, value in info["ece"].items())
            lines.append(f"- {name}: `{info['plot']}` ({info['n_predictions']} predictions; {eces})")
    return "\n".join(lines) + "\n"


def write_results(
    out_dir: Path, scores: Sequence[MethodScores], scenes_label: str, n_scenes: int
) -> tuple[Path, Path, str]:
    """Write out_dir/results.md, results.json and the calibration plots; returns both paths and the
    Markdown body (tables and notes, for BENCHMARKS.md)."""
    if not scores:
        raise ValueError("no method to report: give --methods or --predictions")
    out_dir = Path(out_dir)
    calibration = write_calibration_plots(out_dir, scores)
    body = results_body(scores, scenes_label, n_scenes, calibration)
    markdown = f"# Alignment results\n\nCommand: `{command_line()}`  \nMachine: {machine_description()}\n\n{body}"
    md_path = out_dir / "results.md"
    atomic_write_bytes(md_path, markdown.encode())
    json_path = out_dir / "results.json"
    write_json(
        json_path,
        finite(
            {
                "command": command_line(),
                "machine": machine_description(),
                "scenes": scenes_label,
                "n_scenes": n_scenes,
                "preset": scores[0].per_scene.preset.name,
                "table1": alignment_table_json(table1_rows(scores), ground_truth_counts(scores)),
                "table2": per_image_table_json(table2_rows(scores)),
                "calibration": calibration,
                "methods": {s.name: s.to_dict() for s in scores},
            }
        ),
    )
    return md_path, json_path, body
