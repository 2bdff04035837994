"""`export`, `import`, `complete`: a model in and out of the formats sketch-rnn is used in elsewhere."""
from __future__ import annotations

import click  # noqa: F401

from .app import handle_errors, main  # noqa: F401
