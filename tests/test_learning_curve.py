"""The learning-curve report reads the trainer's metrics.jsonl, keeps the last record of a step and plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from multisparc.benchmarks.training import LearningCurve, MetricsError


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def _record(step: int, hours: float, refined: float) -> dict:
    return {
        "step": step,
        "elapsed_s": 3600.0 * hours,
        "val/align_acc_initial": 0.05,
        "val/align_acc_refined": refined,
        "val/align_loss_initial": 0.9,
        "val/align_loss_refined": 0.2,
        "val/cls_acc": 0.7,
    }


def test_resumed_steps_keep_the_last_record_and_sort(tmp_path: Path) -> None:
    # A run killed after step 500's validation and resumed from its step-250 checkpoint logs 500 again.
    path = _write(tmp_path / "metrics.jsonl", [_record(250, 0.1, 0.1), _record(500, 0.2, 0.2),
                                               _record(500, 0.25, 0.3), _record(750, 0.3, 0.4)])
    curve = LearningCurve.read(path)
    assert [r["step"] for r in curve.records] == [250, 500, 750]
    assert curve.records[1]["val/align_acc_refined"] == 0.3
    table = curve.table(rows=2)
    lines = table.splitlines()
    assert len(lines) == 4  # header, rule, first and last record
    assert lines[2].split("|")[1].strip() == "250" and lines[3].split("|")[4].strip() == "40.0"


def test_a_later_phase_continues_the_step_and_time_of_the_earlier(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir(), (tmp_path / "two").mkdir()
    first = _write(tmp_path / "one" / "metrics.jsonl", [_record(250, 0.1, 0.1), _record(500, 0.2, 0.2)])
    second = _write(tmp_path / "two" / "metrics.jsonl", [_record(250, 0.15, 0.3)])
    first, second = LearningCurve.read(first), LearningCurve.read(second)
    chained = second.after(first)
    assert [r["step"] for r in chained.records] == [250, 500, 750]
    assert chained.last["elapsed_s"] == pytest.approx(3600.0 * 0.35)
    assert chained.last["val/align_acc_refined"] == 0.3
    # From the command line: the curve and table of both phases.
    from multisparc import cli

    markdown = tmp_path / "B.md"
    argv = ["bench", "training", "--run", str(tmp_path / "two"), "--after", str(tmp_path / "one"),
            "--plot", str(tmp_path / "curve.png"), "--markdown", str(markdown)]
    assert cli.main(argv) == 0
    text = markdown.read_text()
    assert "750 steps, 0.35 h" in text and f"after `{tmp_path / 'one'}`" in text
    # A second curve in a section of its own leaves the first in place.
    argv = ["bench", "training", "--run", str(tmp_path / "one"), "--plot", str(tmp_path / "one.png"),
            "--markdown", str(markdown), "--section", "training-one", "--title", "Training: phase one"]
    assert cli.main(argv) == 0
    text = markdown.read_text()
    assert "750 steps, 0.35 h" in text and "## Training: phase one" in text and "500 steps" in text


def test_a_metric_added_later_shows_where_recorded(tmp_path: Path) -> None:
    later = {**_record(500, 0.2, 0.2), "val/select_acc": 0.125, "speed/data_share": 0.0625}
    curve = LearningCurve.read(_write(tmp_path / "metrics.jsonl", [_record(250, 0.1, 0.1), later]))
    rows = [line.split("|") for line in curve.table(rows=2).splitlines()[2:]]
    assert [row[-3].strip() for row in rows] == ["-", "12.5"]
    assert [row[-2].strip() for row in rows] == ["-", "6.2"]
    assert curve.plot(tmp_path / "curve.png").is_file()


def test_plot_writes_a_png(tmp_path: Path) -> None:
    curve = LearningCurve.read(_write(tmp_path / "metrics.jsonl", [_record(s, s / 1000, s / 2000) for s in (1, 2, 3)]))
    out = curve.plot(tmp_path / "curve.png")
    with Image.open(out) as image:
        assert image.size[0] > 300 and image.size[1] > 200


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "no such file"), ("", "no validation record"), ("{not json\n", "line 1 is not JSON"),
     ('{"step": 3}\n', "lacks 'step' or 'elapsed_s'")],
)
def test_bad_metrics_files_name_the_file_and_problem(tmp_path: Path, content: str | None, problem: str) -> None:
    path = tmp_path / "metrics.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(MetricsError, match=problem) as info:
        LearningCurve.read(path)
    assert str(path) in str(info.value)
