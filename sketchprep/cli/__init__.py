"""The `sketchprep` command line: parse options, call the library, format the result.

Each module registers one group of commands on `main`. Errors from the library (`SketchprepError`)
become `Error: <where>: <what>` on stderr with exit 1; usage errors exit 2. Data goes to stdout,
progress bars to stderr (only on a terminal, never with --quiet).
"""
from . import data, download, exchange, inspect, model, pipeline  # noqa: F401  (each registers its commands on main)
from .app import main

__all__ = ["main"]
