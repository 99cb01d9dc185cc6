"""multisparc: joint sparse render-and-compare CAD alignment from a single image."""

__version__ = "0.1.0"
