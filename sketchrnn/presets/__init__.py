"""Named hparam presets, shipped as JSON files beside this module (`train --preset NAME`).

A preset is a JSON object of hparam: value; keys that start with "_" are notes ("_comment" says what
the preset is for and its measured seconds per step). This module reads JSON only (no torch), so
`train --list-presets` works before torch is imported.
"""
from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

from sketchprep.errors import OptionError
from sketchprep.files import SMALL_FILE_BYTES, read_text

PRESET_DIR = Path(__file__).resolve().parent


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def is_preset_path(value: str) -> bool:
    """A file path rather than a preset name: ends in .json, names a folder, or exists."""
    return value.lower().endswith(".json") or os.sep in value or "/" in value or os.path.isfile(value)


def read_preset_file(path: str | os.PathLike, label: str | None = None) -> dict:
    """Every key of a preset file, notes included; errors name `label` (default: the path)."""
    label = label or str(path)
    try:
        values = json.loads(read_text(path, "a preset", SMALL_FILE_BYTES))
    except OSError as e:
        raise OptionError(f"--preset {label}: {e.strerror}") from None
    except ValueError as e:
        raise OptionError(f"--preset {label}: not JSON ({e})") from None
    if not isinstance(values, dict):
        raise OptionError(f"--preset {label}: expected a JSON object of hparam: value")
    return values


def read_preset(name_or_path: str) -> dict:
    """The hparams of a named preset or of a JSON file (notes dropped)."""
    if is_preset_path(name_or_path):
        values = read_preset_file(name_or_path)
    else:
        names = preset_names()
        if name_or_path not in names:
            close = difflib.get_close_matches(name_or_path, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise OptionError(f"--preset {name_or_path!r}: no such preset; {hint}the presets are "
                              f"{', '.join(names)} (or give a .json file)")
        values = read_preset_file(PRESET_DIR / f"{name_or_path}.json", name_or_path)
    return {k: v for k, v in values.items() if not k.startswith("_")}


def describe_presets() -> list[tuple[str, str]]:
    """(name, the preset's "_comment") for every shipped preset."""
    return [(name, str(read_preset_file(PRESET_DIR / f"{name}.json").get("_comment", "")))
            for name in preset_names()]
