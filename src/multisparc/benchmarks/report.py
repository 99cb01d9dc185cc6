"""Write benchmark results into a Markdown file between per-benchmark markers.

Each benchmark owns one section `<!-- bench:NAME:start -->` ... `<!-- bench:NAME:end -->`; rerunning it
replaces that section only, so every figure in BENCHMARKS.md comes from the command printed with it.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from multisparc.datasets.bundle import atomic_write_bytes


def machine_description() -> str:
    """One line naming the CPU, core count, torch version and thread count (and the GPU if used)."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}{gpu}"
    )


def command_line() -> str:
    """The command that is running, as a user would type it."""
    argv = list(sys.argv)
    argv[0] = Path(argv[0]).name
    return shlex.join(argv)


def section(name: str, title: str, body: str) -> str:
    """A complete Markdown section with provenance: command, machine and date."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<!-- bench:{name}:start -->\n## {title}\n\n"
        f"Command: `{command_line()}`  \nMachine: {machine_description()}  \nDate: {stamp}\n\n"
        f"{body.rstrip()}\n<!-- bench:{name}:end -->\n"
    )


def update_markdown(path: Path, name: str, text: str) -> None:
    """Replace (or append) the section `name` of the Markdown file at `path` with `text`."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    old = (
        path.read_text()
        if path.is_file()
        else "# Benchmarks\n\nEvery figure below is written by the command shown with it.\n"
    )
    if start in old and end in old:
        before, rest = old.split(start, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        new = before + text + ("\n" + after if after else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    atomic_write_bytes(path, new.encode())


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table; floats are printed with 3 significant digits."""

    def cell(value: object) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
