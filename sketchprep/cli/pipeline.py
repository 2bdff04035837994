"""`pipeline run`: a recipe's steps in order, skipping what has not changed."""
from __future__ import annotations

import os
import shutil
import sys

import click

from .app import handle_errors, main, option_label


@main.group()
def pipeline():
    """Recipes that rebuild a dataset end to end (see `pipeline run --help`)."""


def _step_options() -> dict[str, set[str]]:
    """step -> the option names of the command of that name, as a recipe writes them (`max_len`, `n`)."""
    from ..pipeline import STEPS

    return {step: {o.lstrip("-").replace("-", "_") for p in main.commands[step].params
                   if isinstance(p, click.Option) for o in p.opts + p.secondary_opts}
            for step in STEPS if step in main.commands}


def _check_value(step: str, key: str, value) -> str | None:
    """A recipe value through its option's own type and callback, as the step's command line will give it
    (`render.cell = nan` is refused like `render --cell nan`, before any step runs)."""
    command = main.commands[step]
    flag = key.replace("_", "-")
    param = next((p for p in command.params if isinstance(p, click.Option)
                  and any(o.lstrip("-") == flag for o in p.opts + p.secondary_opts)), None)
    if param is None or param.is_flag or value is True or value is False:
        return None
    texts = [str(v) for v in (value if isinstance(value, list) else [value])]
    ctx = click.Context(command)
    try:
        converted = [param.type.convert(t, param, ctx) for t in texts]
        if param.callback is not None:
            param.callback(ctx, param, tuple(converted) if param.multiple else converted[-1])
    except click.UsageError as e:
        label = option_label(param)
        words = e.message[len(label):] if e.message.startswith(label) else f": {e.message}"
        return f"{step}.{key}{words}"
    return None


@pipeline.command("run")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder.  [default: the recipe's `output` (a folder inside the recipe's own "
                   "folder), else out/<recipe name>]")
@click.option("--input", "inputs", multiple=True, help="Use these inputs instead of the recipe's (repeatable).")
@click.option("--set", "sets", multiple=True, metavar="STEP.OPTION=VALUE",
              help="Override one option of one step, e.g. --set convert.epsilon=1.5 (repeatable).")
@click.option("--force", is_flag=True, help="Run every step, even those whose inputs have not changed.")
@handle_errors
def pipeline_run(recipe, out_dir, inputs, sets, force):
    """Run a recipe's steps (convert, validate, stats, render, train, sample) in order into an output
    folder, skipping steps whose command, inputs and earlier outputs are unchanged since their last
    success; stop at the first failing step; write OUT/report.md. While a step runs, a line shows
    its name, elapsed time and last log line (the train step's loss and s/step). A run replaces only
    what an earlier run of the pipeline made there, and its steps stop when it stops.

    \b
    Examples:
      sketchprep pipeline run pipelines/quickstart.toml
      sketchprep pipeline run pipelines/svg-folder.toml --input drawings/
      sketchprep pipeline run pipelines/quickdraw.toml --set convert.epsilon=1.5
    """
    from ..outputs import sigterm_raises
    from ..pipeline import REPORT_FILE, load_recipe, output_dir, run

    loaded = load_recipe(recipe, sets=list(sets), inputs=list(inputs), options=_step_options(),
                         check_value=_check_value)
    out = str(output_dir(loaded, out_dir))
    live = sys.stderr.isatty()
    started = set()

    def ticking(name, seconds, line):
        if live:   # one line, rewritten in place
            width = shutil.get_terminal_size().columns - 1
            click.echo(f"\r\033[K{f'{name:<9} running  {seconds:6.1f} s  {line}'[:width]}", err=True, nl=False)
        elif name not in started:
            started.add(name)
            click.echo(f"{name:<9} running ...", err=True)

    def show(result):
        click.echo(("\r\033[K" if live else "") + f"{result.name:<9} {result.status:<8} {result.seconds:6.1f} s"
                   + (f"  {result.error}" if result.error else ""), err=True)

    with sigterm_raises():  # SIGTERM is passed on to the running step, which stops cleanly, then exit 143
        run(loaded, out, force=force, on_step=show, on_progress=ticking)
    click.echo(f"report: {os.path.join(out, REPORT_FILE)}")
