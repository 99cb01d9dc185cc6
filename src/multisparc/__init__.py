"""multisparc: joint sparse render-and-compare CAD alignment from a single image.

    import multisparc
    result = multisparc.align("path/to/scene", "path/to/cads.json", "model.pt")
    print(result.to_predictions())
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy, so that `import multisparc` (and `multisparc --help`) does not load torch.
    if name == "align":
        from multisparc.inference import align

        return align
    raise AttributeError(f"module 'multisparc' has no attribute {name!r}")
