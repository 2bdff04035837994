"""`train`, `sample`, `interpolate`: the torch stage (torch is imported inside the commands only)."""
from __future__ import annotations

import functools
import os
import sys

import click

from .. import limits
from .app import Checked, bounded, command_line, expand_data, handle_errors, main, need_torch, progress_bar
from .drawings import (TEMPERATURE_HELP, check_drawings_output, class_option, own_class, sampling_options,
                       write_drawings)


def _process_start() -> float:
    """When this process started (time.time() scale), so that --max-time counts the imports and the
    data loading the user waited for too; the command's own start where /proc is missing."""
    import time

    now = time.time()
    if command_line() is None:     # called from Python (tests, a notebook): the process is not the command
        return now
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])      # field 22, starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        started = now - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return now
    return started if started <= now else now


def _list_presets(ctx, param, value):
    if not value or ctx.resilient_parsing:
        return
    from sketchrnn.presets import describe_presets

    for name, comment in describe_presets():
        click.echo(f"{name}\n    {comment}")
    ctx.exit()


@main.command(context_settings={"show_default": True})
@click.argument("data", nargs=-1, metavar="DATA.npz...")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder: best.pt, latest.pt, hparams.json, metrics.jsonl (and tensorboard/ when installed).")
@click.option("--preset", default=None, metavar="NAME|FILE.json",
              help="Named hparams (tiny, cpu, small_dataset, reference: see --list-presets) or a JSON file of "
                   "hparams; applied before --set.")
@click.option("--list-presets", is_flag=True, is_eager=True, expose_value=False, callback=_list_presets,
              help="Show the named presets with their measured seconds per step, and exit.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override one hparam (repeatable), typed by its field: --set dec_model=layer_norm.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from latest.pt (its hparams and data).")
@click.option("--init", "init", default=None, metavar="OTHER_RUN", type=click.Path(exists=True),
              help="Start from another run's (or an imported model's) weights: its architecture, box and scale "
                   "factor, a fresh optimiser from step 0, learning_rate 1e-4 warmed up over warmup_steps=50 "
                   "(--set changes them; nothing that changes the architecture). See docs/pretrained.md.")
@click.option("--overwrite", is_flag=True, help="Start over in an --out that already holds a run.")
@click.option("--allow-data-change", is_flag=True,
              help="With --resume: continue although the data files differ from those the run was trained on.")
@click.option("--max-steps", type=bounded(limits.STEPS), default=None, show_default="num_steps",
              help="Stop after this many steps in total (counting the steps of a resumed run).")
@click.option("--max-time", type=Checked("sketchprep.limits:parse_duration"), default=None, metavar="DURATION",
              help="Stop after this much wall-clock time (45m, 1h30m, 20s or seconds), with latest.pt saved.")
@click.option("--patience", type=bounded(limits.PATIENCE), default=0,
              help="Early stopping: stop after this many evaluations without a better valid cost; 0 never stops.")
@click.option("--samples", "n_samples", type=bounded(limits.GRID_SAMPLES), default=16,
              help="Drawings in the grid written to OUT/samples/ at every evaluation; 0 writes none.")
@click.option("--device", type=Checked("sketchprep.limits:check_device"), default="auto",
              help="auto (CUDA when present), cpu, cuda, cuda:N or mps.")
@click.option("--rnn-impl", type=click.Choice(["auto", "fast", "fused", "loop", "compile"]), default="auto",
              help="How the RNNs run (same results up to rounding): auto = PyTorch's fused LSTM kernel where the "
                   "cell allows it (lstm without recurrent dropout), else fast = the whole sequence at once with "
                   "a hand-written backward (lstm, layer_norm), else loop = a Python loop over the cell step; "
                   "compile = that step compiled by torch.compile (faster than loop for hyper on CPU, after up "
                   "to a minute of compiling).")
@click.option("--threads", type=bounded(limits.THREADS), default=1,
              help="CPU threads for torch. One is never much slower than more on a small or shared machine and "
                   "often much faster (docs/training.md); 0 = torch's default (one per core).")
@click.option("--log-every", type=bounded(limits.STEPS), default=20, help="Steps between log lines.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no log lines.")
@handle_errors
def train(data, out_dir, preset, sets, resume, init, overwrite, allow_data_change, max_steps, max_time, patience,
          n_samples, device, rnn_impl, threads, log_every, quiet):
    """Train sketch-rnn on one or more .npz datasets (concatenated per split).

    Start with a preset (seconds per step measured with 1 thread on a shared 2-core machine): tiny (a smoke run in seconds, 0.022 s/step), cpu (a model that learns in about an hour on a CPU, 1.6 s/step on aaron_sheep), small_dataset (layer norm, 14 s/step) or reference (Magenta's defaults, 27 s/step; also what runs without --preset: 10,000,000 steps, so give --max-steps or --max-time).

    Every save_every steps (an hparam) the whole valid split is evaluated: the best model goes to best.pt, the newest to latest.pt, and a grid of samples to OUT/samples/step-NNNNNN.png. Ctrl-C or SIGTERM saves latest.pt and exits 130 / 143; --resume continues exactly where the run stopped. Several processes: torchrun --nproc_per_node=N -m sketchprep train ... See docs/training.md.

    \b
    Examples:
      sketchprep train sample.npz --out runs/smoke --preset tiny
      sketchprep train aaron_sheep.npz --out runs/sheep --preset cpu --max-time 1h
      sketchprep train sheep.npz --out ln --preset small_dataset --max-time 8h
      sketchprep train cat.npz dog.npz --out pets --preset cpu --set z_size=128
      sketchprep train --out runs/sheep --resume --max-steps 20000
      sketchprep train mine.npz --out runs/mine --init runs/cat --max-steps 2000
    """
    need_torch()
    import signal

    import torch

    from sketchrnn.model import HParams
    from sketchrnn.presets import read_preset
    from sketchrnn.train import init_hparams, parse_duration, train as run_train

    data = expand_data(data)
    if threads:
        torch.set_num_threads(threads)
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    if allow_data_change and not resume:
        raise click.UsageError("--allow-data-change goes with --resume")
    if init is not None and resume:
        raise click.UsageError("--init starts a new run from another one and --resume continues this one: give one")
    max_seconds = parse_duration(max_time) if max_time is not None else None
    hps = None
    if init is not None:       # the other run's hparams (architecture and all), then --preset and --set on top
        hps = init_hparams(init)
        if preset:
            hps = HParams.from_dict({**hps.to_dict(), **read_preset(preset)}, source=f"--preset {preset}")
        hps = hps.with_overrides(list(sets))
    elif preset or sets:
        if resume:
            raise click.UsageError("--resume continues with the run's own hparams: drop --preset and --set")
        hps = HParams()
        if preset:
            hps = HParams.from_dict(read_preset(preset), source=f"--preset {preset}")
        hps = hps.with_overrides(list(sets))
    if init is not None:  # --overwrite must not remove the run it starts from
        from ..outputs import check_outside_runs

        check_outside_runs(out_dir, [init], option="--out")
    worker = int(os.environ.get("RANK", "0")) != 0      # under torchrun only rank 0 talks and writes
    if not worker:  # the run folder's lock, held from before --overwrite removes anything until the command ends
        from ..outputs import folder_lock

        click.get_current_context().with_resource(folder_lock(out_dir, "run folder"))
    if overwrite and not worker:
        import contextlib

        for name in ("latest.pt", "best.pt"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(out_dir, name))
    quiet = quiet or worker
    log = None if quiet else functools.partial(click.echo, err=True)
    bar_total = max_steps if max_steps is not None else (hps.num_steps if hps else None)
    with progress_bar(quiet, total=bar_total, unit=" steps", desc="train") as bar:
        if log is not None and not bar.disable:
            log = bar.write

        def show_speed(step, info):
            bar.set_postfix_str(f"{info['seconds']:.2f} s/step", refresh=False)

        result = run_train(data, out_dir, hps, resume=resume, init=init, allow_data_change=allow_data_change,
                           max_steps=max_steps, max_seconds=max_seconds, device=device, rnn_impl=rnn_impl,
                           patience=patience, samples=n_samples, log_every=log_every, log=log, progress=bar.update,
                           on_step=None if bar.disable else show_speed, started=_process_start())
    if worker:
        if result.stopped == "interrupted":
            sys.exit(128 + (result.signal or signal.SIGINT))
        return
    best = f"best valid cost {result.best_valid_cost:.4f} at step {result.best_step}" \
        if result.best_step is not None else "no evaluation yet"
    click.echo(f"{result.out_dir}: {result.step} steps in {result.seconds:.0f} s "
               f"({result.stopped.replace('_', ' ')}); {best}; {result.n_params:,} parameters")
    if result.stopped == "interrupted":
        signum = result.signal or signal.SIGINT
        latest = os.path.join(out_dir, "latest.pt")
        where = (f"{latest} holds step {result.step}; continue with: sketchprep train --out {out_dir} --resume"
                 if os.path.exists(latest) else "no checkpoint was saved (no step was done)")
        click.echo(f"Interrupted by {signal.Signals(signum).name}: {where}", err=True)
        sys.exit(128 + signum)


@main.command(context_settings={"show_default": True})
@click.argument("run_path", metavar="RUN", type=click.Path(exists=True))
@click.option("-o", "--output", required=True, help="samples.svg / .png (a grid) or .npz (the drawings, in 'test').")
@click.option("-n", "count", type=bounded(limits.DRAWINGS), default=16, help="Number of drawings.")
@click.option("--temperature", "-t", type=bounded(limits.TEMPERATURE), default=0.4, help=TEMPERATURE_HELP)
@click.option("--reconstruct", "condition", metavar="[FILE.npz:]SPLIT:INDEX", default=None,
              help="Encode this drawing (FILE defaults to the run's first dataset) and decode it n times; the "
                   "grid starts with the original.")
@class_option("A class-conditional model draws this class (repeatable: -n drawings of each, one row per class, "
              "labelled).  [default: every class of the run]")
@sampling_options()
@handle_errors
def sample(run_path, output, count, temperature, condition, class_names, greedy, sigma_form, seed, sampled_z,
           checkpoint, device, columns):
    """Draw new sketches with a trained model (RUN: a `train --out` folder or a .pt checkpoint).

    z ~ N(0, I) for a conditional model (or the decoder alone for an unconditional one), decoded in
    one batch until every drawing ends. Offsets are in the dataset's pixels (the scale factor is
    stored in the checkpoint). Temperature: the reference code's form, see --temperature. A
    class-conditional model (docs/training.md) draws n of each --class, a row per class.

    \b
    Examples:
      sketchprep sample runs/sheep -o sheep.png -n 25 --temperature 0.3
      sketchprep sample runs/sheep -o recon.svg --reconstruct test:12 -n 8
      sketchprep sample runs/sheep/latest.pt -o sheep.npz -n 1000 --seed 1
      sketchprep sample runs/pets -o pets.png --class cat --class dog -n 8
    """
    need_torch()
    from sketchrnn.sample import (empty_note, load_run, read_labelled_drawing, reconstruct, require_encoder,
                                  row_labels,
                                  sample as run_sample)

    check_drawings_output(output, run=run_path)
    run = load_run(run_path, device, checkpoint)
    if class_names and not run.hps.class_conditional:
        raise click.UsageError("--class: this model does not read the class (it was trained without "
                               "class_conditional=true)")
    indices = [run.class_index(name) for name in class_names]
    if condition and len(indices) > 1:
        raise click.UsageError("--reconstruct takes one --class (default: the drawing's own)")
    labels, classes = None, None
    if condition:
        require_encoder(run, "reconstruct (--reconstruct)")
        original, label, own = read_labelled_drawing(condition, run.data_files[0] if run.data_files else None)
        klass = None
        if run.hps.class_conditional:
            klass = indices[0] if indices else own_class(run, own, condition)
            classes = [run.classes[klass]] * count
        drawings = reconstruct(run, original, count, temperature, greedy, seed, sampled_z, sigma_form, klass)
        if not output.lower().endswith(".npz"):
            drawings, labels = [original] + drawings, [label] + [""] * count
    elif run.hps.class_conditional:
        indices = indices or list(range(len(run.classes)))
        drawings = run_sample(run, count, temperature, greedy, seed, sigma_form, classes=indices)
        classes = [run.classes[k] for k in indices for _ in range(count)]
        labels, columns = row_labels([run.classes[k] for k in indices], count), columns or count
    else:
        drawings = run_sample(run, count, temperature, greedy, seed, sigma_form)
    write_drawings(run, drawings, output, columns, labels,
                    {"temperature": temperature, "greedy": greedy, "seed": seed, "sigma_form": sigma_form,
                     "reconstruct": condition}, classes)
    made = drawings[1:] if condition and labels else drawings     # not the original of --reconstruct
    lengths = [len(d) for d in made]
    rows = (f" in {len(indices)} row{'s' if len(indices) > 1 else ''} ({', '.join(run.classes[k] for k in indices[:8])}"
            f"{' ...' if len(indices) > 8 else ''})" if run.hps.class_conditional and not condition else "")
    click.echo(f"wrote {output}: {len(drawings)} drawings{rows} ({min(lengths)}-{max(lengths)} points"
               + (", the first is the original" if condition and labels else "") + f") from {run.path} "
               f"(step {run.step})" + empty_note(made))


@main.command(context_settings={"show_default": True})
@click.argument("run_path", metavar="RUN", type=click.Path(exists=True))
@click.argument("first", metavar="A")
@click.argument("second", metavar="B")
@click.option("-o", "--output", required=True, help="morph.svg / .png (one row) or .npz.")
@click.option("--steps", type=bounded(limits.INTERPOLATION_STEPS), default=10, help="Drawings from A to B, both ends included.")
@click.option("--temperature", "-t", type=bounded(limits.TEMPERATURE), default=0.1, help=TEMPERATURE_HELP)
@click.option("--lerp", is_flag=True, help="Linear instead of spherical interpolation of the latent codes.")
@click.option("--show-inputs", is_flag=True, help="Put A and B themselves at the ends of the row.")
@class_option("A class-conditional model: A's class, then B's (give it twice; the class embedding morphs with "
              "z).  [default: each drawing's own class]")
@sampling_options()
@handle_errors
def interpolate(run_path, first, second, output, steps, temperature, lerp, show_inputs, class_names, greedy,
                sigma_form, seed, sampled_z, checkpoint, device, columns):
    """Morph one drawing into another: encode A and B, interpolate their latent codes, decode each.

    A and B are [FILE.npz:]SPLIT:INDEX (FILE defaults to the run's first dataset). The codes are the
    encoder's mu (deterministic; --sampled-z draws mu + sigma*eps as the reference notebook does),
    interpolated by slerp (lerp when the codes are parallel) and decoded with the same seed at every
    step, so the row changes with z only. A class-conditional model morphs the class too: its
    embedding goes linearly from A's class to B's beside z, so a sheep can turn into a cat.

    \b
    Examples:
      sketchprep interpolate runs/sheep test:3 test:40 -o morph.svg
      sketchprep interpolate runs/sheep test:3 valid:7 -o m.png --show-inputs
      sketchprep interpolate runs/pets cat.npz:test:3 dog.npz:test:5 -o m.png
    """
    need_torch()
    from sketchrnn.sample import (empty_note, interpolate as run_interpolate, load_run, read_labelled_drawing,
                                  require_encoder)

    if len(class_names) not in (0, 2):
        raise click.UsageError("--class goes twice (A's class, then B's) or not at all (each drawing's own)")
    check_drawings_output(output, (first, second), run=run_path)
    run = load_run(run_path, device, checkpoint)
    if class_names and not run.hps.class_conditional:
        raise click.UsageError("--class: this model does not read the class (it was trained without "
                               "class_conditional=true)")
    require_encoder(run, "interpolate")
    default = run.data_files[0] if run.data_files else None
    (a, label_a, own_a), (b, label_b, own_b) = read_labelled_drawing(first, default), read_labelled_drawing(second,
                                                                                                           default)
    classes = None
    if run.hps.class_conditional:
        classes = (tuple(run.class_index(name) for name in class_names) if class_names
                   else (own_class(run, own_a, first), own_class(run, own_b, second)))
        label_a, label_b = f"{label_a} ({run.classes[classes[0]]})", f"{label_b} ({run.classes[classes[1]]})"
    drawings = run_interpolate(run, a, b, steps, temperature, greedy, seed, "lerp" if lerp else "slerp", sampled_z,
                               sigma_form, classes)
    labels = None
    made = drawings
    if show_inputs and not output.lower().endswith(".npz"):
        drawings = [a] + drawings + [b]
        labels = [label_a] + [""] * steps + [label_b]
    write_drawings(run, drawings, output, columns or len(drawings), labels,
                    {"a": label_a, "b": label_b, "steps": steps, "temperature": temperature, "greedy": greedy,
                     "seed": seed, "interpolation": "lerp" if lerp else "slerp"})
    inputs = " (the two inputs at the ends and " + f"{steps} decoded between)" if labels else ""
    click.echo(f"wrote {output}: {len(drawings)} drawings{inputs} from {label_a} to {label_b} ({run.path}, "
               f"step {run.step})" + empty_note(made))


@main.command(context_settings={"show_default": True})
@click.argument("run_path", metavar="RUN", type=click.Path(exists=True))
@click.option("-o", "--output", default=None, help="Picture to write (.png, .svg or .pdf).  [default: RUN/curves.png]")
@click.option("--title", default=None, help="A title above the curves.")
@handle_errors
def plot(run_path, output, title):
    """Draw a training run's loss curves from its metrics.jsonl (needs matplotlib: the plot extra).

    \b
    Top: reconstruction cost, train (per logged interval) and valid (per
    evaluation), the best valid cost marked. Bottom: KL, train and valid,
    and the annealed KL weight. Works while the run is still training.

    \b
    Examples:
      sketchprep plot runs/sheep
      sketchprep plot runs/sheep -o curves.svg --title "aaron_sheep, cpu preset"
    """
    from ..curves import plot_curves
    from ..outputs import check_output

    default = os.path.join(run_path if os.path.isdir(run_path) else os.path.dirname(run_path), "curves.png")
    if output is None:
        output = default
    elif os.path.realpath(output) != os.path.realpath(default):  # the run's files are the run's; curves.png is ours
        check_output(output, [run_path], runs=[run_path], option="-o")
    result = plot_curves(run_path, output, title)
    best = f"; best valid cost {result.best_cost:.4f} at step {result.best_step}" if result.best_step else ""
    click.echo(f"wrote {output}: {result.train_points} train and {result.valid_points} valid points{best}")


@main.command(context_settings={"show_default": True})
@click.argument("run_path", metavar="RUN", type=click.Path(exists=True))
@click.argument("data", nargs=-1, required=True, metavar="DATA.npz...")
@click.option("--split", "splits", multiple=True, type=click.Choice(["train", "valid", "test"]),
              help="A split to score (repeatable).  [default: every split the files hold]")
@click.option("--batch-size", type=bounded(limits.BATCH), default=None, show_default="the run's batch_size",
              help="Drawings per batch (the run's own reproduces its training evaluations exactly).")
@click.option("--checkpoint", type=click.Choice(["best", "latest"]), default="best",
              help="Which checkpoint of a run folder to score.")
@click.option("--device", type=Checked("sketchprep.limits:check_device"), default="cpu", help="cpu, cuda, cuda:N or auto.")
@click.option("--threads", type=bounded(limits.THREADS), default=1, help="CPU threads for torch; 0 = torch's default.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object keyed by split name.")
@handle_errors
def evaluate(run_path, data, splits, batch_size, checkpoint, device, threads, as_json):
    """Score a run on data sets: the paper's reconstruction loss Lr (and Lkl), and the negative
    log-likelihood per point, which compares models of any size and scale.

    \b
    Per split of the DATA files (concatenated per split; each scaled from its
    own drawing box to the run's):
      lr             the paper's Lr, as train computes its valid and test costs
                     (model units: it depends on the run's scale factor)
      lkl            the KL term of a conditional model (null when decoder-only)
      nll_per_point  nats per point (offsets and pen states), lengths in pixels
                     of a 255 box: the same for the same drawings at any stored
                     size, comparable across runs (an upper bound, the ELBO, for
                     a conditional model)
      n              the drawings counted (longer than max_seq_len: left out)
    Data of several classes (a dataset's class names, or one class per file
    without them) is also scored class by class (by_class in --json).

    RUN: a `train --out` or `import --out` folder, or a .pt file. See docs/pretrained.md.

    \b
    Examples:
      sketchprep evaluate runs/cat cat.npz --split test
      sketchprep evaluate runs/sheep aaron_sheep.npz --json
    """
    need_torch()
    import json

    import torch

    from sketchrnn.evaluation import evaluate_run
    from sketchrnn.sample import load_run

    if threads:
        torch.set_num_threads(threads)
    data = expand_data(data)
    for path in data:
        if not os.path.exists(path):  # a FIFO or a device: the dataset loader refuses it by name
            raise click.UsageError(f"no such data file: {path}")
    run = load_run(run_path, device, checkpoint)
    scores = evaluate_run(run, data, list(splits) or None, batch_size)
    if as_json:
        click.echo(json.dumps({name: {"lr": s.lr, "lkl": s.lkl, "nll_per_point": s.nll_per_point, "n": s.n,
                                      **({"by_class": s.by_class} if s.by_class is not None else {})}
                               for name, s in scores.items()}))
        return
    click.echo(f"{run.path} (step {run.step}; box {run.box:.0f}, scale factor {run.scale_factor:.4g}) on "
               f"{', '.join(data)}:")
    for name, s in scores.items():
        lkl = f"{s.lkl:.4f}" if s.lkl is not None else "-"
        click.echo(f"  {name:5}  lr {s.lr:.4f}  lkl {lkl}  nll_per_point {s.nll_per_point:.4f}  n {s.n}"
                   + (f" ({s.dropped} longer than max_seq_len={run.hps.max_seq_len} left out)" if s.dropped else ""))
        for cls, c in (s.by_class or {}).items():
            lkl = f"{c['lkl']:.4f}" if c["lkl"] is not None else "-"
            click.echo(f"    {cls}: lr {c['lr']:.4f}  lkl {lkl}  nll_per_point {c['nll_per_point']:.4f}  n {c['n']}")
