"""Scene bundles and dataset converters."""
