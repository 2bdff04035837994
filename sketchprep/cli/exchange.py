"""`export`, `import`, `complete`: a model in and out of the formats sketch-rnn is used in elsewhere."""
from __future__ import annotations

import os

import click

from .. import limits
from .app import bounded, handle_errors, main, need_torch
from .drawings import TEMPERATURE_HELP, check_drawings_output, class_option, sampling_options, write_drawings
from .export_data import DATA_OPTIONS, data_options, export_data, given_options, is_dataset


@main.command("import", context_settings={"show_default": True})
@click.argument("source", metavar="MODEL", type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder to write (latest.pt, hparams.json), as `train --out` leaves it.")
@click.option("--scale-factor", type=bounded(limits.SCALE_FACTOR), default=None, show_default="from --data, else 1.0",
              help="Data units (pixels) per model unit: the normalising scale factor of the data set the "
                   "model was trained on (Magenta's checkpoints do not store it).")
@click.option("--data", "data", multiple=True, metavar="DATA.npz",
              help="The data set(s) the model was trained on: the scale factor is computed from the train "
                   "split as training does, and the run remembers the files (repeatable).")
@click.option("--size", "size", type=bounded(limits.BOX), default=None, metavar="S",
              show_default="the model file's info.box, else from --data, else estimated",
              help="The drawing box of the data the model was trained on: the larger extent of its drawings, in "
                   "data units (255 for drawings made by convert at its default size). Without it, a model with no "
                   "--data gets the median extent of 200 of its own drawings (docs/pretrained.md).")
@click.option("--overwrite", is_flag=True, help="Replace a run already in --out.")
@handle_errors
def import_(source, out_dir, scale_factor, data, size, overwrite):
    """Turn a Magenta sketch-rnn model into a run folder that sample, interpolate, complete, export and
    `train --resume` take.

    \b
    MODEL is one of:
      a Magenta TensorFlow run folder (model_config.json, checkpoint,
        vector-N.index, vector-N.data-00000-of-00001) or one checkpoint of
        it (vector-N or its .index file), read without TensorFlow;
      a sketch-rnn-js / @magenta/sketch model (.json).

    Weights, hparams, the training step and Adam's state are carried over (docs/magenta.md). The run
    also gets its drawing box, the size of the drawings the model knows: complete, evaluate, export
    --html and train --init scale drawings to it (docs/pretrained.md).

    \b
    Examples:
      sketchprep import aaron_sheep/lstm --out runs/sheep --data aaron_sheep.npz
      sketchprep import cat.gen.json --out runs/cat
      sketchprep import sheep.gen.json --out runs/sheep_js --size 255
    """
    need_torch()
    from sketchrnn.magenta import import_model

    if scale_factor is not None and data:
        raise click.UsageError("give --scale-factor or --data, not both")
    import torch

    from ..outputs import check_outside_runs, folder_lock

    check_outside_runs(out_dir, [source], option="--out")
    torch.set_num_threads(1)   # estimating the box samples small batches: more threads only wait on each other
    with folder_lock(out_dir, "run folder"):  # not while `train` or another import writes there
        r = import_model(source, out_dir, scale_factor=scale_factor, data=list(data), overwrite=overwrite,
                         size=size)
    for note in r.notes:
        click.echo(f"warning: {note}", err=True)
    h = r.hps
    arch = (f"{h.enc_model}/{h.dec_model}, enc {h.enc_rnn_size}, dec {h.dec_rnn_size}, z {h.z_size}"
            if h.conditional else f"unconditional {h.dec_model}, dec {h.dec_rnn_size}")
    kind = "Magenta TensorFlow checkpoint" if r.kind == "magenta-tf" else "sketch-rnn-js model"
    scale_from = {"option": "--scale-factor", "data": "from --data", "model": "from the model",
                  "default": "default"}[r.scale_source]
    box_from = {"option": "--size", "model": "from the model file", "data": "from --data",
                "estimated": "estimated from 200 of its drawings; --size S sets it"}[r.box_source]
    click.echo(f"wrote {r.checkpoint}: {kind} {source} ({arch}, M {h.num_mixture}; {r.n_params:,} parameters; "
               f"step {r.step}; Adam state {'kept' if r.optimizer else 'fresh'}; scale factor {r.scale_factor:.6g} "
               f"({scale_from}); box {r.box:.0f} ({box_from}))")


@main.command(context_settings={"show_default": True})
@click.argument("run_path", metavar="RUN|DATA.npz", type=click.Path(exists=True))
@click.option("-o", "--output", default=None, metavar="OUT",
              help="RUN: the sketch-rnn-js model file to write (MODEL.gen.json). DATA.npz: the file or folder "
                   "to write.")
@click.option("--html", "html_dir", default=None, type=click.Path(file_okay=False), metavar="DIR",
              help="Write a drawing page here instead (index.html, app.js, the sampler, model.gen.json).")
@click.option("--name", default=None, show_default="the run folder's name", help="info.name in the file.")
@click.option("--scale", "scale", type=bounded(limits.SCALE_FACTOR), default=None, show_default="the run's scale factor",
              help="info.scale_factor in the file: data units (pixels) per model unit.")
@click.option("--runtime-js", default=None, type=click.Path(dir_okay=False), metavar="magentasketch.js",
              help="With --html: run the page on this @magenta/sketch bundle (copied in) instead of the "
                   "built-in sampler.")
@click.option("--checkpoint", type=click.Choice(["best", "latest"]), default="best",
              help="Which checkpoint of a run folder to export.")
@click.option("--class", "class_name", default=None, metavar="NAME",
              help="Of a class-conditional decoder-only run: write this class's decoder (its class embedding "
                   "folded into the LSTM bias), a plain model the runtimes run. --html writes every class, with "
                   "a menu.")
@data_options
@handle_errors
def export(run_path, output, html_dir, name, scale, runtime_js, checkpoint, class_name, **data):
    """Write a model in the JSON format of sketch-rnn-js, @magenta/sketch and ml5.js (.gen.json), or a
    drawing page that runs it; or write a dataset (DATA.npz) in the layout another model or tool reads.

    \b
    RUN: a `train --out` folder or a .pt checkpoint of an unconditional
    model with an lstm decoder and 20 mixtures, which is what those
    runtimes run: train one with --preset browser. Weights are stored as
    int16 (w = 10 q / 32767): the summary says how many were clipped at
    +-10 and the largest rounding error. See docs/browser.md. A
    class-conditional run (--preset classes) is written one class
    at a time (--class), or as a page with a class menu (--html).

    \b
    DATA.npz (a sketch-rnn dataset) goes to -o OUT with every split, id,
    class and time, as --format (from OUT's name for .parquet):
      parquet  one row per drawing (pandas, DuckDB, datasets)
      ndjson   OUT/SPLIT.ndjson in Google's layout
      svg      OUT/SPLIT/WORD/ID.svg
      stroke5  .npz of padded (N, N_max + 1, 5) float32, as training pads
      points   .npz of absolute (x, y, pen), ragged or --resample N
      bitmap   .npz of (N, S, S) uint8 images as Google's numpy_bitmap
      png      OUT/SPLIT/WORD/ID.png, a torchvision ImageFolder

    \b
    Examples:
      sketchprep export runs/sheep -o sheep.gen.json
      sketchprep export runs/sheep --html sheep_page
      sketchprep export runs/pets --class cat -o cat.gen.json
      python -m http.server -d sheep_page 8000   # then open http://127.0.0.1:8000
      sketchprep export cats.npz -o cats.parquet
      sketchprep export cats.npz -o cats5.npz --format stroke5 --max-len 96
      sketchprep export cats.npz -o cats_png --format png --size 64
    """
    ctx = click.get_current_context()
    if is_dataset(run_path):
        refused = given_options(ctx, ("html_dir", "name", "scale", "runtime_js", "checkpoint", "class_name"))
        if refused:
            raise click.UsageError(f"{', '.join(refused)} {'go' if len(refused) > 1 else 'goes'} with a RUN, not with "
                                   "a dataset (.npz)")
        return export_data(run_path, output, **data)
    refused = given_options(ctx, DATA_OPTIONS)
    if refused:
        raise click.UsageError(f"{', '.join(refused)} {'go' if len(refused) > 1 else 'goes'} with a dataset (DATA.npz), "
                               "not with a RUN")
    need_torch()
    from sketchrnn.magenta_js import check_page_folder, export_js_model, write_page
    from sketchrnn.sample import load_run

    if (output is None) == (html_dir is None):
        raise click.UsageError("give -o MODEL.gen.json or --html DIR (one of them)")
    if runtime_js is not None and html_dir is None:
        raise click.UsageError("--runtime-js goes with --html")
    if class_name is not None and html_dir is not None:
        raise click.UsageError("--class goes with -o: --html writes every class, with a menu")
    if output is not None and not output.lower().endswith(".json"):
        raise click.UsageError(f"-o {output}: the model file must end in .json (e.g. model.gen.json)")
    from ..outputs import check_output

    if output is not None:  # an input, inside the run, a folder or an unwritable place: refused before the model loads
        check_output(output, [run_path], runs=[run_path], option="-o")
    else:
        check_output(html_dir, [run_path], folder=True, runs=[run_path], option="--html")
        check_page_folder(html_dir)
    run = load_run(run_path, "cpu", checkpoint)
    if html_dir is not None:
        s = write_page(html_dir, run, name, scale, runtime_js)
        where = f"{html_dir}/ (index.html, model.gen.json)"
    else:
        s = export_js_model(run, output, name, scale, class_name)
        where = output
    if html_dir is not None and run.hps.class_conditional:
        where = f"{html_dir}/ (index.html with a menu of {len(run.classes)} classes, model-N.gen.json each)"
    click.echo(f"wrote {where}: {s.info['name']!r}, {run.hps.dec_rnn_size} lstm units, {s.n_weights:,} weights "
               f"as int16 ({s.bytes / 1024:.0f} KiB), scale_factor {s.info['scale_factor']:.6g}; "
               f"box {run.box:.0f}; {s.clipped} clipped at +-10, largest rounding error {s.max_error:.2g} "
               f"(largest weight {s.largest:.3g}) from {run.path} (step {run.step})")
    if html_dir is not None:
        click.echo(f"serve it with: python -m http.server -d {html_dir} 8000   (then open http://127.0.0.1:8000)")


@main.command(context_settings={"show_default": True})
@click.argument("run_path", metavar="RUN", type=click.Path(exists=True))
@click.option("--prefix", "prefix", required=True, metavar="DRAWING",
              help="The partial drawing: an .svg or .ndjson(.gz) file (its first drawing, normalised as convert "
                   "made the run's data) or [FILE.npz:]SPLIT:INDEX (FILE defaults to the run's first dataset).")
@click.option("--keep", type=bounded(limits.ROWS), default=None, help="Cut the prefix after this many points.")
@click.option("-o", "--output", required=True,
              help="out.svg / .png (a grid: the prefix, then the completions) or .npz (the completions, in 'test').")
@click.option("-n", "count", type=bounded(limits.DRAWINGS), default=8, help="Number of completions.")
@click.option("--temperature", "-t", type=bounded(limits.TEMPERATURE), default=0.4, help=TEMPERATURE_HELP)
@class_option("A class-conditional model finishes the drawing as this class (repeatable: a row per class, "
              "the prefix first).")
@sampling_options(encodes=False)
@handle_errors
def complete(run_path, prefix, keep, output, count, temperature, class_names, greedy, sigma_form, seed, checkpoint,
             device, columns):
    """Finish a partial drawing n times, as sketch-rnn's "predict" demo does.

    The prefix runs through the decoder, then the model draws on from there, n times in one batch,
    until each completion ends (at most the model's max_seq_len points in all). The prefix is scaled
    from its box (its data set's, or 255 for an .svg or .ndjson file) to the run's box before the model
    reads it, and the completions are written back at the prefix's size. A conditional model decodes
    with z = the encoder's mu of the prefix (docs/browser.md says why); a class-conditional model as the
    --class given.

    \b
    Examples:
      sketchprep complete runs/sheep --prefix test:3 --keep 20 -o done.png
      sketchprep complete runs/cats --prefix my_cat_head.svg -o cats.svg -n 16
      sketchprep complete runs/cats --prefix head.ndjson -o cats.npz --seed 2
      sketchprep complete runs/pets --prefix head.svg --class cat -o cat.png
    """
    need_torch()
    from sketchrnn.sample import complete as run_complete
    from sketchrnn.sample import load_run, prefix_box, read_prefix

    inputs = [run_path] + ([prefix] if os.path.isfile(prefix) else [prefix.rsplit(":", 2)[0]])
    check_drawings_output(output, inputs, run=run_path)
    run = load_run(run_path, device, checkpoint)
    if class_names and not run.hps.class_conditional:
        raise click.UsageError("--class: this model does not read the class (it was trained without "
                               "class_conditional=true)")
    if run.hps.class_conditional and not class_names:
        raise click.UsageError(f"this model finishes a drawing as the class it is given: add --class NAME (its "
                               f"classes: {', '.join(run.classes[:30])}{' ...' if len(run.classes) > 30 else ''})")
    indices = [run.class_index(name) for name in class_names] or [None]
    check_drawings_output(output, run.data_files[:1])  # the dataset a SPLIT:INDEX prefix is read from
    default = run.data_files[0] if run.data_files else None
    drawing, label = read_prefix(prefix, default, keep)
    box = prefix_box(prefix, default)
    drawings, shown, labels = [], [], []
    for k in indices:
        done = run_complete(run, drawing, count, temperature, greedy, seed, sigma_form, label=k, box=box)
        drawings += done
        shown += [drawing] + done
        labels += [label + (f" ({run.classes[k]})" if k is not None else "")] + [""] * count
    if output.lower().endswith(".npz"):
        shown, labels = drawings, None
    write_drawings(run, shown, output, columns or (count + 1 if class_names else None), labels,
                    {"temperature": temperature, "greedy": greedy, "seed": seed, "sigma_form": sigma_form,
                     "prefix": prefix, "keep": keep, "prefix_points": len(drawing),
                     "box": box if box is not None else run.box},
                    [run.classes[k] for k in indices for _ in range(count)] if class_names else None)
    added = [len(d) - len(drawing) for d in drawings]
    classes = f" as {', '.join(class_names)}" if class_names else ""
    scaled = f"; the prefix's box {box:.0f} scaled to the run's {run.box:.0f} and back" \
        if box is not None and box != run.box else ""
    click.echo(f"wrote {output}: {len(drawings)} completions of {label} ({len(drawing)} points){classes} adding "
               f"{min(added)}-{max(added)} points, from {run.path} (step {run.step}){scaled}")
