"""Errors of the CAD layer. Every message names the file at fault: `"<path>: <problem>"`."""

from __future__ import annotations

from pathlib import Path


class CadError(ValueError):
    """A CAD file or CAD index that cannot be used.

    Attributes:
        path: the file (or folder) at fault.
        problem: what is wrong with it, in words.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __str__(self) -> str:
        # KeyError subclasses would otherwise print the message quoted as a repr.
        return f"{self.path}: {self.problem}"


class CadFileNotFound(CadError):
    """The mesh file (or ShapeNet model folder) does not exist."""


class CadFormatError(CadError):
    """The file exists but cannot be parsed as a mesh of its format."""


class CadEmptyMesh(CadError):
    """The file parses but holds no triangles."""


class CadInvalidGeometry(CadError):
    """The mesh has non-finite vertices, no surface area or a flat bounding box."""


class CadIndexError(CadError):
    """A CAD index (`cads.json`, a catalogue) is missing, malformed or refers to unknown things."""


class UnknownCadId(CadIndexError, KeyError):
    """A CAD id that the index does not hold (also a KeyError, so mapping idioms work)."""
