"""Recipes: a small TOML file that rebuilds a dataset end to end, reproducibly.

A recipe names its inputs and has one table per step, in this fixed order (a missing table is a
skipped step): `convert`, `validate`, `stats`, `render`, `train`, `sample`. The keys of a table are
the options of the `sketchprep` command of the same name (`max_len = 250` is `--max-len 250`, `true`
is a flag, a list repeats the option); paths in a recipe are relative to the recipe file.

```toml
description = "what this recipe makes"
[convert]
inputs = ["../sketchprep/data/quickdraw_sample"]
epsilon = 2.0
[validate]
[render]
n = 36
```

`output` (the folder to write into) is relative to the recipe too, and stays inside the recipe's folder
(a recipe cannot write elsewhere; `--out` on the command line can). `run` executes the steps in order
as `sketchprep` subprocesses into an output folder, reporting the running step's elapsed time and
last log line while it works, skips a step
whose command line, inputs and earlier outputs have not changed since its last success (a
fingerprint of paths, sizes and modification times, kept in `<out>/.pipeline-state.json`), stops at
the first failing step with its error, and writes `<out>/report.md`.

What a run may replace: only what the state file says the pipeline made. Each output is claimed in the
state before its step runs; an output that exists and was not made by the pipeline (a user's own
`report.md`, a run in `<out>/run` trained by hand) stops the run before any step, naming it. One run
at a time holds the output folder (`outputs.folder_lock`). Steps die with the pipeline: each is told by
the kernel to stop (SIGTERM) when the pipeline process ends however it ends, and a SIGINT or SIGTERM the
pipeline receives is passed on to the running step, which stops cleanly (train saves latest.pt).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import __version__
from .dataset import atomic_output
from .errors import OptionError, SketchprepError, Terminated
from .files import SMALL_FILE_BYTES, read_bytes, read_text

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

STEPS = ("convert", "validate", "stats", "render", "train", "sample")
STATE_FILE = ".pipeline-state.json"
REPORT_FILE = "report.md"
MADE = "made"  # the state's list of outputs (relative to the output folder) that the pipeline made


class PipelineError(SketchprepError):
    """A recipe that cannot be read or a step that failed."""


@dataclass
class Recipe:
    path: Path
    description: str
    output: str | None
    tables: dict[str, dict]


MAX_RECIPE_BYTES = SMALL_FILE_BYTES  # a recipe is a few lines; anything near this is not one
STEP_OUTPUT_BYTES = 16 * 2**20      # what a step printed (the summary of convert, stats or validate)

# Keys a step table may have that are not options of the command (the pipeline handles them), and
# options the pipeline sets itself (a recipe cannot set them).
RECIPE_KEYS = {"convert": {"inputs": "a list of paths", "by_word": "true or false"},
               "stats": {"plot": "true or false"}}
PIPELINE_SETS = {"render": {"output", "o"}, "sample": {"output", "o"}, "train": {"out", "overwrite"}}


def _type_name(value) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def check_recipe(recipe: "Recipe", options: dict[str, set[str]],
                 check_value: Callable[[str, str, object], str | None] | None = None) -> None:
    """Every table and value of a recipe against what its steps accept, before any step runs.

    options: step -> the option names of the command of that name (`max_len` for `--max-len`, `n` for `-n`).
    check_value(step, key, value): what is wrong with the value as that option (None when nothing): the
    CLI passes the option's own type, so a recipe value is refused with the words of the command line.
    """
    where = str(recipe.path)
    for step, table in recipe.tables.items():
        if step not in options:  # a command this installation lacks: the step itself will say so
            continue
        special = RECIPE_KEYS.get(step, {})
        known = (options[step] - PIPELINE_SETS.get(step, set())) | set(special)
        for key, value in table.items():
            if key not in known:
                raise PipelineError(f"{step}.{key}: unknown option of `sketchprep {step}`. Known: "
                                    f"{', '.join(sorted(known))}", path=where)
            if key == "inputs":
                if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
                    raise PipelineError(f"convert.inputs must be a list of paths (strings), got {value!r:.80}. "
                                        'Write inputs = ["drawings/", "more.ndjson"]', path=where)
            elif key in special and not isinstance(value, bool):
                raise PipelineError(f"{step}.{key} must be {special[key]}, got {_type_name(value)}", path=where)
            elif isinstance(value, dict) or (isinstance(value, list) and
                                             not all(isinstance(v, (str, int, float)) for v in value)):
                raise PipelineError(f"{step}.{key} must be a string, number, true/false or a list of them "
                                    f"(one per repeated option), got {_type_name(value)}", path=where)
            elif check_value is not None and key not in special:
                problem = check_value(step, key, value)
                if problem:
                    raise PipelineError(problem, path=where)


def load_recipe(path: str | os.PathLike, sets: list[str] = (), inputs: list[str] = (),
                options: dict[str, set[str]] | None = None,
                check_value: Callable[[str, str, object], str | None] | None = None) -> Recipe:
    """Read a recipe; `sets` are 'table.key=value' overrides (value parsed as TOML, else a string) and
    `inputs` replaces `convert.inputs` (paths relative to the working directory). With `options` (step ->
    option names of its command) every key and value is checked too (`check_recipe`)."""
    path = Path(path)
    try:
        text = read_bytes(path, "a recipe", MAX_RECIPE_BYTES).decode("utf-8")
        data = tomllib.loads(text)
    except OSError as e:
        raise PipelineError(f"cannot read recipe: {e.strerror}", path=str(path)) from None
    except UnicodeDecodeError as e:
        raise PipelineError(f"not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}). Save the recipe "
                            "as UTF-8", path=str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise PipelineError(f"not valid TOML: {e}", path=str(path)) from None
    except RecursionError:
        raise PipelineError("not valid TOML: nested too deeply", path=str(path)) from None
    unknown = set(data) - set(STEPS) - {"description", "output"}
    if unknown:
        raise PipelineError(f"unknown table(s) {', '.join(sorted(unknown))}; steps are {', '.join(STEPS)}",
                            path=str(path))
    for key in ("description", "output"):
        if key in data and not isinstance(data[key], str):
            raise PipelineError(f"{key} must be a string, got {_type_name(data[key])}", path=str(path))
    if "output" in data:
        _check_recipe_output(data["output"], path)
    for step in STEPS:
        if step in data and not isinstance(data[step], dict):
            raise PipelineError(f"{step} must be a table of options ([{step}] followed by key = value lines), "
                                f"got {_type_name(data[step])}", path=str(path))
    tables = {s: dict(data[s]) for s in STEPS if s in data}
    for item in sets:
        key, sep, value = item.partition("=")
        table, dot, option = key.strip().partition(".")
        if not sep or not dot or table not in STEPS:
            raise OptionError(f"--set {item!r}: expected STEP.OPTION=VALUE with STEP one of {', '.join(STEPS)}")
        tables.setdefault(table, {})[option.strip()] = _parse_value(value.strip())
    if inputs:
        tables.setdefault("convert", {})["inputs"] = [str(Path(p).resolve()) for p in inputs]
    if "convert" not in tables or not tables["convert"].get("inputs"):
        raise PipelineError("the recipe needs [convert] with inputs = [...] (or give --input)", path=str(path))
    recipe = Recipe(path, data.get("description", ""), data.get("output"), tables)
    if options is not None:
        check_recipe(recipe, options, check_value)
    return recipe


def _check_recipe_output(output: str, path: Path) -> None:
    """A recipe's `output` is a folder inside the recipe's own folder: a recipe from elsewhere cannot make
    the pipeline write into a home folder or next to the project (`--out` on the command line can)."""
    norm = os.path.normpath(output) if output else ""
    if not norm or os.path.isabs(norm) or norm.startswith("~") or norm == ".." or norm.startswith(".." + os.sep):
        raise PipelineError(f"output = {output!r} is not a folder inside the recipe's folder; a recipe writes only "
                            f'there (e.g. output = "out"). Give --out DIR to write somewhere else', path=str(path))


def output_dir(recipe: Recipe, out: str | os.PathLike | None = None) -> Path:
    """Where a run writes: `out` (from the command line, relative to the working directory), else the
    recipe's `output` (relative to the recipe, like every path in it), else out/<recipe name>."""
    if out is not None:
        return Path(out)
    if recipe.output:
        return Path(os.path.normpath(recipe.path.parent / recipe.output))
    return Path("out") / recipe.path.stem


def _parse_value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


@dataclass
class Step:
    """One step: the sketchprep command lines it runs, what it reads and what it writes.

    With `each` (a glob), every command runs once per matching file, with `{each}` replaced by the
    file and `{stem}` by its name without extension (one dataset per class after `--by-word`).
    """

    name: str
    commands: list[list[str]]
    inputs: list[Path]
    outputs: list[Path]
    stdout: Path | None = None
    each: str | None = None


def _options(table: dict, skip: tuple[str, ...] = ()) -> list[str]:
    args: list[str] = []
    for key, value in table.items():
        if key in skip:
            continue
        flag = ("-" if len(key) == 1 else "--") + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            for v in value:
                args += [flag, str(v)]
        else:
            args += [flag, str(value)]
    return args


def plan(recipe: Recipe, out: Path) -> list[Step]:
    """The steps of a recipe with their command lines, for an output folder."""
    here = recipe.path.parent
    t = recipe.tables
    conv = dict(t["convert"])
    inputs = [(here / p).resolve() if not os.path.isabs(p) else Path(p) for p in conv.pop("inputs")]
    by_word = conv.pop("by_word", False)
    steps: list[Step] = []
    if by_word:
        datasets_dir = out / "datasets"
        datasets_ref = [str(datasets_dir / "*.npz")]
        convert = ["convert", *map(str, inputs), "--by-word", str(datasets_dir), *_options(conv)]
        steps.append(Step("convert", [convert], inputs, [datasets_dir], out / "convert.txt"))
    else:
        dataset = out / "dataset.npz"
        datasets_ref = [str(dataset)]
        convert = ["convert", *map(str, inputs), str(dataset), *_options(conv)]
        steps.append(Step("convert", [convert], inputs, [dataset], out / "convert.txt"))
    produced = steps[0].outputs
    each = datasets_ref[0] if by_word else None
    one = "{each}" if by_word else datasets_ref[0]
    if "validate" in t:
        cmds = [["validate", one, *_options(t["validate"])]]
        steps.append(Step("validate", cmds, produced, [out / "validate.txt"], out / "validate.txt", each))
    if "stats" in t:
        opts = dict(t["stats"])
        plot = opts.pop("plot", False)
        png = out / ("stats-{stem}.png" if by_word else "stats.png")
        outs = [out / "stats.txt"] + ([png] if plot and not by_word else [])
        cmds = [["stats", one, *_options(opts)] + (["--plot", str(png)] if plot else [])]
        steps.append(Step("stats", cmds, produced, outs, out / "stats.txt", each))
    if "render" in t:
        grid = out / "grids" / "{stem}.png" if by_word else out / "grid.png"
        cmds = [["render", one, "-o", str(grid), *_options(t["render"])]]
        steps.append(Step("render", cmds, produced, [grid.parent if by_word else grid], out / "render.txt", each))
    if "train" in t:
        opts = dict(t["train"])
        if "preset" in opts and str(opts["preset"]).lower().endswith(".json"):   # else a preset's name
            opts["preset"] = str((here / opts["preset"]).resolve())
        run_dir = out / "run"
        # a step that runs again starts over (its inputs or options changed)
        cmds = [["train", *datasets_ref, "--out", str(run_dir), "--overwrite", *_options(opts)]]
        steps.append(Step("train", cmds, produced, [run_dir], out / "train.txt"))
    if "sample" in t:
        if "train" not in t:
            raise PipelineError("[sample] needs a [train] step", path=str(recipe.path))
        samples = out / "samples.png"
        cmds = [["sample", str(out / "run"), "-o", str(samples), *_options(t["sample"])]]
        steps.append(Step("sample", cmds, [out / "run"], [samples], out / "sample.txt"))
    return steps


def _read_state(path: Path) -> dict:
    """The fingerprints of the last successful steps; a damaged or foreign state file only means every step
    runs again."""
    try:
        state = json.loads(read_bytes(path, "pipeline state", SMALL_FILE_BYTES))
    except (OSError, ValueError, RecursionError, SketchprepError):
        return {}
    return state if isinstance(state, dict) else {}


def _read_output(path: Path | None) -> str:
    """What a skipped step printed when it ran (kept in the run folder; "" if gone or not a file any more)."""
    try:
        return read_text(path, "a step's output", STEP_OUTPUT_BYTES) if path else ""
    except (OSError, ValueError, SketchprepError):
        return ""


def _fingerprint(step: Step, out: Path) -> str:
    """Hash of the step's command lines and of the paths, sizes and mtimes of everything it reads."""
    h = hashlib.sha256()
    h.update(__version__.encode())
    for cmd in step.commands:
        h.update(json.dumps(cmd).encode())
    for p in step.inputs:
        for f in _files(p):
            st = f.stat()
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(f for f in path.rglob("*") if f.is_file())
    return [path] if path.exists() else []


@dataclass
class StepResult:
    name: str
    status: str  # "ran", "skipped" or "failed"
    seconds: float = 0.0
    output: str = ""
    error: str = ""
    commands: list[list[str]] = field(default_factory=list)
    pictures: list[Path] = field(default_factory=list)


def run(recipe: Recipe, out: str | os.PathLike, force: bool = False, on_step=None,
        on_progress=None) -> list[StepResult]:
    """Run a recipe's steps in order into `out`; raises PipelineError at the first failing step
    (after writing the report). `on_step(result)` after each step; `on_progress(name, seconds, line)`
    about twice a second while a step runs, with its elapsed time and the last line it logged."""
    from .outputs import folder_lock

    out = Path(out)
    steps = plan(recipe, out)
    with folder_lock(out, "pipeline output folder"):   # one pipeline run at a time writes here
        state_path = out / STATE_FILE
        state = _read_state(state_path)
        made = _made(state, steps, out)
        _check_ours([p for s in steps for p in _step_paths(s, expanded=False)] + [out / REPORT_FILE], made, out)
        results: list[StepResult] = []
        failure = None
        for step in steps:
            fp = _fingerprint(step, out)
            if not force and state.get(step.name) == fp and all(p.exists() for p in step.outputs):
                result = StepResult(step.name, "skipped", commands=step.commands,
                                    output=_read_output(step.stdout))
                result.pictures = _pictures(step)
            else:
                state.pop(step.name, None)
                paths = _step_paths(step, expanded=True)   # per-word names are known once convert has run
                _check_ours(paths, made, out)
                made |= {_rel(p, out) for p in paths}      # claimed before the step runs: a killed step's too
                state[MADE] = sorted(made)
                _write_state(state_path, state)
                for cmd in step.commands:  # commands refuse to write into a missing folder: make the run's own
                    for flag in ("-o", "--plot"):
                        if flag in cmd[:-1]:
                            Path(cmd[cmd.index(flag) + 1]).parent.mkdir(parents=True, exist_ok=True)
                result = _run_step(step, on_progress)
                result.pictures = _pictures(step)
                if result.status == "ran":
                    state[step.name] = _fingerprint(step, out)  # inputs may be outputs of this very run
            results.append(result)
            made.add(REPORT_FILE)
            state[MADE] = sorted(made)
            _write_state(state_path, state)
            if on_step is not None:
                on_step(result)
            if result.status == "failed":
                failure = result
                break
        write_report(recipe, out, results)
    if failure is not None:
        raise PipelineError(f"step {failure.name!r} failed: {failure.error}")
    return results


def _write_state(path: Path, state: dict) -> None:
    with atomic_output(path, "w") as f:
        json.dump(state, f, indent=1)


def _rel(path: Path, out: Path) -> str:
    return os.path.relpath(path, out)


def _step_paths(step: Step, expanded: bool) -> list[Path]:
    """Everything a step writes: its outputs, its log, and (expanded) each command's -o and --plot file."""
    paths = list(step.outputs) + ([step.stdout] if step.stdout else [])
    if expanded:
        for cmd in _command_lines(step):
            paths += [Path(cmd[i + 1]) for i, a in enumerate(cmd[:-1]) if a in ("-o", "--plot")]
    return [p for p in dict.fromkeys(paths) if "{" not in p.name]


def _made(state: dict, steps: list[Step], out: Path) -> set[str]:
    """What the state says this pipeline made. A state written before it kept that list: the outputs of
    the steps it holds a fingerprint of, and the report."""
    made = state.get(MADE)
    if isinstance(made, list) and all(isinstance(m, str) for m in made):
        return set(made)
    legacy = {_rel(p, out) for s in steps if s.name in state for p in _step_paths(s, expanded=False)}
    return legacy | ({REPORT_FILE} if legacy else set())


def _check_ours(paths: list[Path], made: set[str], out: Path) -> None:
    """Refuse to run when a path the pipeline would write exists and is not something it made."""
    for p in paths:
        if not os.path.lexists(p):
            continue
        rel = Path(_rel(p, out))
        if any(str(part) in made for part in [rel, *rel.parents] if str(part) != "."):
            continue
        raise PipelineError(f"{p} exists and this pipeline did not make it (it is not listed in {out / STATE_FILE}), "
                            "so the run would replace it. Move it away, or give another --out")


def _pictures(step: Step) -> list[Path]:
    """What the report shows of a step: its pictures; for train, the grid of its last evaluation."""
    pictures = [p for p in step.outputs if p.suffix == ".png" or p.name == "grids"]
    if step.name == "train":
        pictures += sorted(step.outputs[0].glob("samples/step-*.png"))[-1:]
    return pictures


def _run_step(step: Step, on_progress=None) -> StepResult:
    start = time.perf_counter()
    outputs = []
    for cmd in _command_lines(step):
        if step.each:
            outputs.append(f"== {cmd[1]}\n")
        proc = _run_command(cmd, lambda line: on_progress and on_progress(step.name, time.perf_counter() - start,
                                                                          line))
        outputs.append(proc.stdout)
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
            errors = [ln for ln in lines if ln.startswith("Error")] or lines[-1:] or [f"exit code {proc.returncode}"]
            if step.stdout:
                step.stdout.write_text("".join(outputs))
            error = errors[-1].removeprefix("Error: ")
            return StepResult(step.name, "failed", time.perf_counter() - start, "".join(outputs), error,
                              step.commands)
    text = "".join(outputs)
    if step.stdout:
        with atomic_output(step.stdout, "w") as f:
            f.write(text)
    return StepResult(step.name, "ran", time.perf_counter() - start, text, "", step.commands)


def _run_command(cmd: list[str], tick) -> subprocess.CompletedProcess:
    """`python -m sketchprep CMD`, its output captured; `tick(last stderr line)` every half second.

    The step never outlives the pipeline: the kernel sends it SIGTERM when this process ends, even by
    kill -9 (`outputs.dies_with_us`). It runs in its own session, so a Ctrl-C at the terminal reaches the
    pipeline only, which passes each SIGINT or SIGTERM it gets on to the step exactly once and waits for
    it to stop (train saves latest.pt first; a second signal stops it at once, a third kills it)."""
    from .outputs import dies_with_us

    proc = subprocess.Popen([sys.executable, "-m", "sketchprep", *cmd], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=dies_with_us(signal.SIGTERM))
    err: list[str] = []
    out: list[str] = []
    readers = [threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True),
               threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)]
    for r in readers:
        r.start()
    stopping: BaseException | None = None
    signals = 0
    while True:
        try:
            proc.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            if stopping is None:
                last = next((ln.strip() for ln in reversed(err) if ln.strip()), "")
                tick(last)
        except (KeyboardInterrupt, Exception) as e:   # Ctrl-C or SIGTERM (outputs.sigterm_raises): pass it on
            stopping = stopping or e
            signals += 1
            sig = signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig if signals < 3 else signal.SIGKILL)
    for r in readers:
        r.join()
    if stopping is not None:
        raise stopping
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(out), "".join(err))


def _command_lines(step: Step) -> list[list[str]]:
    """The step's commands with globs expanded, once per file of `each`."""
    def expand(cmd):
        out = []
        for a in cmd:
            matches = sorted(str(p) for p in Path(a).parent.glob(Path(a).name)) if "*" in a else []
            out += matches or [a]
        return out

    if not step.each:
        return [expand(c) for c in step.commands]
    files = sorted(Path(step.each).parent.glob(Path(step.each).name))
    return [[a.replace("{each}", str(f)).replace("{stem}", f.stem) for a in cmd] for f in files
            for cmd in step.commands]


def write_report(recipe: Recipe, out: Path, results: list[StepResult]) -> None:
    """`<out>/report.md`: what each step did, its output, and the pictures it made."""
    lines = [f"# {recipe.path.stem}", ""]
    if recipe.description:
        lines += [recipe.description, ""]
    lines += [f"Recipe `{recipe.path}`, sketchprep {__version__}, {time.strftime('%Y-%m-%d %H:%M:%S')}.", "",
              "| step | status | seconds |", "|---|---|---|"]
    lines += [f"| {r.name} | {r.status} | {r.seconds:.1f} |" for r in results]
    for r in results:
        lines += ["", f"## {r.name} ({r.status})", ""]
        lines += [f"    sketchprep {' '.join(shlex.quote(a) for a in c)}" for c in r.commands]
        if r.output.strip():
            lines += ["", "```", r.output.rstrip(), "```"]
        if r.error:
            lines += ["", f"**Error:** {r.error}"]
        for png in r.pictures:
            if png.is_dir():
                pngs = sorted(png.glob("*.png"))
                lines += ["", f"{len(pngs)} pictures in `{os.path.relpath(png, out)}/`"]
                for p in pngs[:6]:
                    lines += ["", f"![{p.stem}]({os.path.relpath(p, out)})"]
            elif png.exists():
                lines += ["", f"![{png.stem}]({os.path.relpath(png, out)})"]
    with atomic_output(out / REPORT_FILE, "w") as f:
        f.write("\n".join(lines) + "\n")
