"""`download`: public drawing data sets fetched by name."""
from __future__ import annotations

import click  # noqa: F401

from .app import handle_errors, main  # noqa: F401
