"""Subcommands of the `multisparc` command line."""
