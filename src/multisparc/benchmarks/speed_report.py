"""The speed benchmark's table, its targets checked against the measurements, and its BENCHMARKS.md text."""

from __future__ import annotations

from dataclasses import dataclass

from multisparc.benchmarks.report import markdown_table, section
from multisparc.benchmarks.speed import N_HYPOTHESES, N_REFINE, SpeedReport

#: Objects per image the time targets are stated for.
TARGET_OBJECTS = 5
#: Targets (seconds per image, joint, TARGET_OBJECTS objects): per config on a 2-core CPU, and on a GPU.
CPU_SECONDS = {"paper": 2.0, "cpu": 0.3}
GPU_SECONDS = {"paper": 0.05}
MAX_SAMPLING_SHARE = 0.15
MIN_GPU_SPEEDUP = 5.0

HEADER = [
    "config",
    "objects",
    "strategy",
    "ms/image",
    "tokens ms",
    "network ms",
    "rest ms",
    "sampling %",
    "network calls",
    "GFLOP/image",
    "network GFLOP/s",
    "% of peak",
    "joint speed-up",
]


@dataclass(frozen=True)
class Target:
    """One target of the benchmark: what is asked, what was measured, and whether it is met (None: the
    run needed was not part of this benchmark)."""

    goal: str
    measured: str
    met: bool | None

    @property
    def verdict(self) -> str:
        return "not measured" if self.met is None else ("met" if self.met else "not met")


def rows(report: SpeedReport) -> list[list[object]]:
    """One table row per run, the speed-up (sequential over joint time) on joint rows."""
    table = []
    for run in report.runs:
        speedup = report.speedup(run.config, run.n_objects) if run.strategy == "joint" else None
        table.append(
            [
                run.config,
                run.n_objects,
                run.strategy,
                f"{1000 * run.seconds:.1f}",
                f"{1000 * run.stages['tokens']:.1f}",
                f"{1000 * run.stages['network']:.1f}",
                f"{1000 * run.stages['rest']:.1f}",
                f"{100 * run.sampling_share:.1f}",
                run.network_calls,
                f"{run.network_flops / 1e9:.3g}",
                f"{run.network_flop_rate / 1e9:.1f}",
                f"{100 * run.network_flop_rate / report.peak_flop_rate:.1f}",
                "" if speedup is None else f"{speedup:.2f}x",
            ]
        )
    return table


def targets(report: SpeedReport) -> list[Target]:
    """The targets for this report's device, each computed from the measurements."""
    gpu = report.device.startswith("cuda")
    where = "GPU" if gpu else f"2-core CPU; measured on {report.cpu_cores} cores, torch threads: {report.threads}"
    found = []
    for base, limit in (GPU_SECONDS if gpu else CPU_SECONDS).items():
        # The target holds for the config at either precision; each measured precision is checked.
        variants = [config for config in (base, f"{base} bf16") if report.run(config, TARGET_OBJECTS, "joint")]
        for config in variants or [base]:
            run = report.run(config, TARGET_OBJECTS, "joint")
            goal = f"{config} config, {TARGET_OBJECTS} objects, joint, full protocol: at most {_time(limit)} ({where})"
            found.append(
                Target(goal, "-", None) if run is None else Target(goal, _time(run.seconds), run.seconds <= limit)
            )
    configs = list(dict.fromkeys(run.config for run in report.runs))
    for config in configs:
        run = report.run(config, TARGET_OBJECTS, "joint")
        goal = f"{config} config, {TARGET_OBJECTS} objects, joint: input sampling at most {MAX_SAMPLING_SHARE:.0%}"
        found.append(
            Target(goal, "-", None)
            if run is None
            else Target(goal, f"{100 * run.sampling_share:.1f} %", run.sampling_share <= MAX_SAMPLING_SHARE)
        )
    if gpu:
        speedup = report.speedup("paper", TARGET_OBJECTS)
        goal = f"paper config, {TARGET_OBJECTS} objects: joint at least {MIN_GPU_SPEEDUP:.0f}x faster than sequential"
        found.append(
            Target(goal, "-", None) if speedup is None else Target(goal, f"{speedup:.2f}x", speedup >= MIN_GPU_SPEEDUP)
        )
    return found


def _time(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def body(report: SpeedReport) -> str:
    """The Markdown text of the section: protocol, runs table, targets table."""
    passes = N_HYPOTHESES * (N_REFINE + 1)
    images = {run.config: run.image for run in report.runs}
    sizes = ", ".join(f"{name} {w} x {h}" for name, (w, h) in images.items())
    repeats = sorted({run.repeats for run in report.runs})
    replicated = [run for run in report.runs if run.replicated and run.strategy == "joint"]
    text = (
        f"Time per image of the full test-time protocol, {N_HYPOTHESES} initialisations x ({N_REFINE} refinements "
        f"+ 1 scoring pass) = {passes} network passes per object, on a synthetic image ({sizes} pixels) with "
        f"the given number of objects; network on `{report.device}`, torch threads: {report.threads}. "
        "Randomly initialised networks of each config (weights do not change the run time). "
        "joint: the hypotheses batched, the objects processed together in chunks of N_mul (Multi-SPARC); "
        "sequential: every (object, initialisation) pair refined alone, one object per forward call (SPARC). "
        f"Median of {'/'.join(map(str, repeats))} repeat(s) after a warm-up; the stage split is that of the "
        "median repeat, from the pipeline's stage timers (tokens: box and pose token sampling and batching; "
        "rest: initialisation, pose updates, selection; sampling %: tokens over the total). FLOPs of the "
        "network counted with FlopCounterMode over every forward call; network GFLOP/s: those FLOPs over the "
        "network stage's time, and % of peak: that rate over the float32 `torch.matmul` peak measured on the "
        f"same device and threads, {report.peak_flop_rate / 1e9:.1f} GFLOP/s. "
        "Joint speed-up: sequential over joint time.\n\n"
    )
    text += markdown_table(HEADER, rows(report))
    if replicated:
        counts = ", ".join(f"{run.config} {run.n_objects} objects: {run.replicated}" for run in replicated)
        text += f"\n\nDetections repeated because the sampler could not place that many objects: {counts}."
    found = targets(report)
    text += "\n\nTargets, checked against the measurements above:\n\n"
    text += markdown_table(["target", "measured", "verdict"], [[t.goal, t.measured, t.verdict] for t in found])
    return text + "\n"


def section_name(report: SpeedReport) -> str:
    """`speed` for CPU runs, `speed-cuda` for GPU runs: each keeps its own section of BENCHMARKS.md."""
    return "speed-cuda" if report.device.startswith("cuda") else "speed"


def speed_section(report: SpeedReport) -> str:
    """The complete speed section of BENCHMARKS.md (`section_name`), with the command, machine and date."""
    where = "GPU" if report.device.startswith("cuda") else "CPU"
    return section(section_name(report), f"Alignment run time: joint against sequential ({where})", body(report))
