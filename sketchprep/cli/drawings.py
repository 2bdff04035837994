"""What the commands that draw with a model share: sampling options, and checking and writing -o."""
from __future__ import annotations

import os

import click

from .. import limits
from .app import Checked, bounded


TEMPERATURE_HELP = ("Sampling temperature tau: pi and the pen state from softmax(logits / tau); sigma x tau "
                     "(the reference code's form; --sigma-form paper: sigma x sqrt(tau), i.e. variance x tau).")


def sampling_options(encodes: bool = True):
    """The options every command that decodes drawings shares (--sampled-z only where it encodes)."""
    options = [
        click.option("--greedy", is_flag=True, help="Most likely component, pen state and offset (no randomness)."),
        click.option("--sigma-form", type=click.Choice(["code", "paper"]), default="code",
                     help="How tau scales the offsets' Gaussians: sigma*tau (code) or sigma*sqrt(tau) (paper)."),
        click.option("--seed", type=bounded(limits.SEED), default=0, help="Seed of every random draw."),
        click.option("--sampled-z", is_flag=True,
                     help="Encode to z = mu + sigma*eps (the reference notebook) instead of mu.") if encodes else None,
        click.option("--checkpoint", type=click.Choice(["best", "latest"]), default="best",
                     help="Which checkpoint of a run folder to use."),
        click.option("--device", type=Checked("sketchprep.limits:check_device"), default="cpu",
                     help="cpu, cuda, cuda:N, mps or auto."),
        click.option("--columns", type=bounded(limits.COLUMNS), default=None, help="Drawings per row of the grid."),
    ]

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn) if option is not None else fn
        return fn

    return decorate


def check_drawings_output(output: str, inputs=(), run=None) -> None:
    """-o of a command that draws with the model of `run`: refused before the model loads when it is one of
    the `inputs`, inside the run folder, a folder, or unwritable."""
    from ..outputs import check_output

    if os.path.splitext(output)[1].lower() not in (".svg", ".png", ".npz"):
        raise click.UsageError(f"-o {output}: the output must end in .svg, .png or .npz")
    check_output(output, inputs, runs=[run] if run is not None else [], option="-o")


def class_option(help_text: str):
    """--class NAME (repeatable) for the commands that draw with a class-conditional model."""
    return click.option("--class", "class_names", multiple=True, metavar="NAME", help=help_text)


def own_class(run, name: str, spec: str) -> int:
    """The index of a stored drawing's own class in a class-conditional run, or a usage error saying so."""
    if name not in run.classes:
        raise click.UsageError(f"{spec} is a drawing of class {name!r}, which the run does not know (its classes: "
                               f"{', '.join(run.classes[:30])}{' ...' if len(run.classes) > 30 else ''}); "
                               f"choose one with --class")
    return run.classes.index(name)


def write_drawings(run, drawings, output, columns, labels, meta, classes=None) -> None:
    """-o: a grid (labels under the cells) or an .npz (the drawings in 'test'; `classes`, one class name per
    drawing, become its test_labels and meta classes)."""
    from ..dataset import save_dataset
    from ..render import save_grid

    ext = os.path.splitext(output)[1].lower()
    if ext == ".npz":
        meta = {"kind": "sketchrnn samples", "run": run.path, "step": run.step, **meta}
        tags = None
        if classes is not None:
            names = list(dict.fromkeys(classes))
            meta["classes"] = names
            tags = {"test": [names.index(c) for c in classes]}
        save_dataset(output, {"train": [], "valid": [], "test": drawings}, labels=tags, meta=meta)
    elif ext in (".svg", ".png"):
        save_grid(drawings, output, columns=columns, labels=labels, borders=True)
    else:
        raise click.UsageError(f"-o {output}: the output must end in .svg, .png or .npz")
