"""Output folders of the batch commands (`align`, `evaluate`, `synth`) and their failed scenes.

A batch checks its output folder before any work, skips a scene whose input is bad (reporting its file
and reason), and finishes the others; a summary lists the failures at the end. A failed scene's earlier
outputs are removed, so that a stale `predictions.json` of an earlier run is never taken for this run's,
and `error.txt` in its folder says why it is empty.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from multisparc.datasets.bundle import BundleError, atomic_write_bytes

log = logging.getLogger(__name__)

#: What a bad input raises: the readers' ValueError subclasses (BundleError, CadError, CheckpointError, ...,
#: each naming its file) and I/O errors. Anything else is a bug and stops the batch with its traceback.
INPUT_ERRORS: tuple[type[Exception], ...] = (ValueError, OSError)
#: The per-scene outputs of `align` and `evaluate`.
SCENE_OUTPUTS: tuple[str, ...] = ("predictions.json", "alignment.json", "overlay.png")
FAILURE_FILE = "error.txt"


@dataclass(frozen=True)
class SceneFailure:
    """A scene that was skipped: its bundle folder and the one-line error (which names the file at fault)."""

    scene: Path
    message: str


def prepare_output_dir(path: Path, option: str = "--out") -> Path:
    """Create the output folder `path` when needed and check that files can be written into it.

    Raises BundleError naming the folder when it is a file, cannot be created or is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BundleError(path, f"is a file; {option} needs a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BundleError(path, f"cannot create the output folder ({err.strerror or err})") from None
    try:
        tempfile.TemporaryFile(dir=path).close()
    except OSError as err:
        raise BundleError(path, f"the output folder is not writable ({err.strerror or err})") from None
    return path


def clear_outputs(folder: Path, names: Iterable[str] = SCENE_OUTPUTS) -> None:
    """Remove a scene's earlier outputs (and failure note) from its output folder, when there."""
    for name in (*names, FAILURE_FILE):
        (folder / name).unlink(missing_ok=True)


def record_failure(failures: list[SceneFailure], scene: Path, error: Exception, folder: Path | None) -> None:
    """Note that `scene` failed with `error`: log it, and in its output `folder` (None: none) replace the
    earlier outputs by `error.txt`, which says why the scene has no results."""
    message = str(error)
    failures.append(SceneFailure(scene, message))
    log.error("%s (scene %s skipped)", message, scene.name)
    if folder is not None:
        clear_outputs(folder)
        atomic_write_bytes(folder / FAILURE_FILE, f"{message}\n".encode())


def failure_summary(command: str, failures: Sequence[SceneFailure], total: int) -> str:
    """The closing report of a batch with failures: how many of `total` scenes, and each error on a line of
    its own (a scene may fail more than once, e.g. under several methods)."""
    failed = len({failure.scene for failure in failures})
    lines = [f"multisparc {command}: {failed} of {total} scene(s) failed and were skipped:"]
    lines += [f"  {failure.message}" for failure in failures]
    return "\n".join(lines)
