"""png: an ImageFolder tree, `OUT/SPLIT/WORD/ID.png`, that torchvision's `ImageFolder(OUT/SPLIT)` reads as
it is (one class per WORD folder).

Each image is the `bitmap` format's: S x S greyscale, white ink on black, drawn as Google drew its
numpy_bitmap set (see `sketchprep.formats.bitmap`). File and folder names are the ids and words where those
are safe names, else cleaned names with a hash (see `common.file_stems`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image

from ..dataset import SketchDataset
from ..outputs import atomic_folder
from .bitmap import Rasterizer, images
from .common import all_splits, dataset_box, drawing_stems, file_stems
from .export import ExportOptions, ExportSummary


def write(ds: SketchDataset, out: str, opts: ExportOptions, progress: Callable[[int], None]) -> ExportSummary:
    parts = all_splits(ds)
    raster = Rasterizer(opts.side)
    box = dataset_box(ds)
    word_dirs = file_stems(parts[0].classes)
    with atomic_folder(out) as tmp:
        for part in parts:
            (tmp / part.name).mkdir()
            for label in np.unique(part.labels):
                (tmp / part.name / word_dirs[label]).mkdir()
            names = drawing_stems(part)
            for start, stop, block in images(part, raster, box, progress):
                for d in range(stop - start):
                    i = start + d
                    Image.fromarray(block[d]).save(tmp / part.name / word_dirs[part.labels[i]] / f"{names[i]}.png")
    return ExportSummary(out, "png", {p.name: p.n for p in parts})
