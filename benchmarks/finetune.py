"""Fine-tuning a published sketch-rnn model (`train --init`) against training from scratch, for the same CPU time.

    python benchmarks/finetune.py MODEL.gen.json DATA.npz [--budget 480] [--out bench_finetune]

Imports MODEL (its box estimated, as `sketchprep import` does), then trains three runs on DATA, each in its
own process with one torch thread, until the process has spent `--budget` seconds of CPU time on training
steps (time.process_time() from the first step; checked after every step, then SIGINT stops the run cleanly
and latest.pt is saved). CPU time, not wall-clock time: the machine is shared, and a process's CPU time does
not count the time other processes hold the cores. The runs, all with batches of 50 padded to their own
longest sketch and max_seq_len 250:

  init          --init MODEL (its architecture, box and scale factor; learning rate 1e-4, warm-up 50 steps)
  scratch       the same architecture from random weights (decoder-only lstm 512, 20 mixtures, lr 1e-3)
  scratch_cpu   --preset cpu: the preset sized for a CPU (a conditional VAE, dec 256), whose steps are cheaper

Then every run (and MODEL itself, step 0) is scored with `sketchprep evaluate` on DATA's valid split
(nll_per_point: nats per point, lengths in pixels of a 255 box; an upper bound for the conditional
scratch_cpu), and `sketchprep sample` draws 16 drawings of each (temperature 0.25, seed 0) into --out.
Prints a markdown table: steps done, CPU seconds, CPU seconds per step, valid nll_per_point.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

COMMON = ["--set", "max_seq_len=250", "--set", "pad_to_batch=true", "--set", "batch_size=50",
          "--set", "save_every=1000000", "--samples", "0", "--threads", "1", "--log-every", "50"]
SAME_ARCH = ["--set", "conditional=false", "--set", "dec_model=lstm", "--set", "dec_rnn_size=512",
             "--set", "num_mixture=20", "--set", "use_recurrent_dropout=false"]


def configs(model_run: str) -> dict[str, list[str]]:
    return {"init": ["--init", model_run, *COMMON],
            "scratch": [*SAME_ARCH, *COMMON],
            "scratch_cpu": ["--preset", "cpu", *COMMON]}


def worker(args) -> None:
    """One run: `sketchprep train` in this process, stopped by SIGINT once the training steps have used
    the budget of CPU time. Prints one JSON line: steps, cpu seconds."""
    import torch

    from sketchprep.cli import main

    torch.set_num_threads(1)
    import sketchrnn.train as train_module

    state = {"steps": 0, "cpu": 0.0, "t0": None, "stopping": False}
    real_loop, real_train = train_module.run_loop, train_module.train

    def timed_loop(*a, **kw):       # the budget counts from the first step: set-up and loading are left out
        state["t0"] = time.process_time()
        return real_loop(*a, **kw)

    def on_step(step, info):
        state["steps"], state["cpu"] = step + 1, time.process_time() - state["t0"]
        # train stops after the step under way when the signal comes; one signal only (a second stops at once)
        if state["cpu"] >= args.budget and not state["stopping"]:
            state["stopping"] = True
            os.kill(os.getpid(), signal.SIGINT)

    def train_with_clock(*a, **kw):
        kw["on_step"] = on_step
        return real_train(*a, **kw)

    train_module.run_loop, train_module.train = timed_loop, train_with_clock
    try:
        main([*["train", args.data, "--out", args.run_dir, "-q"], *json.loads(args.flags)], standalone_mode=False)
    except SystemExit:
        pass
    print(json.dumps({"steps": state["steps"], "cpu": state["cpu"]}), flush=True)


def sketchprep(*args) -> str:
    r = subprocess.run([sys.executable, "-m", "sketchprep", *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"sketchprep {' '.join(map(str, args))} failed:\n{r.stdout}{r.stderr}")
    return r.stdout


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--budget", type=float, default=480.0, help="CPU seconds of training steps per run")
    ap.add_argument("--out", default="bench_finetune")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--flags", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    os.makedirs(args.out, exist_ok=True)
    model_run = os.path.join(args.out, "model")
    print(sketchprep("import", args.model, "--out", model_run, "--overwrite").strip(), file=sys.stderr)
    start = os.path.join(args.out, "model_250.pt")     # the model as the runs read the data: max_seq_len 250
    ckpt = torch.load(os.path.join(model_run, "latest.pt"), weights_only=True)
    ckpt["hparams"]["max_seq_len"] = 250
    torch.save(ckpt, start)
    procs = {}
    for name, flags in configs(model_run).items():
        run_dir = os.path.join(args.out, name)
        if os.path.isdir(run_dir):
            import shutil

            shutil.rmtree(run_dir)
        procs[name] = subprocess.Popen([sys.executable, __file__, args.model, args.data, "--budget", str(args.budget),
                                        "--worker", name, "--run-dir", run_dir, "--flags", json.dumps(flags)],
                                       stdout=subprocess.PIPE, text=True)
    done = {name: json.loads(p.communicate()[0].strip().splitlines()[-1]) for name, p in procs.items()}
    rows = [("model (step 0)", start, 0, 0.0)] + [(n, os.path.join(args.out, n), d["steps"], d["cpu"])
                                                      for n, d in done.items()]
    print("| run | steps | CPU s | CPU s/step | valid nll_per_point |")
    print("|---|---:|---:|---:|---:|")
    for name, run_dir, steps, cpu in rows:
        scores = json.loads(sketchprep("evaluate", run_dir, args.data, "--split", "valid", "--json",
                                       "--checkpoint", "latest"))
        per_step = f"{cpu / steps:.2f}" if steps else ""
        print(f"| {name} | {steps} | {cpu:.0f} | {per_step} | {scores['valid']['nll_per_point']:.3f} |", flush=True)
        sketchprep("sample", run_dir, "-o", os.path.join(args.out, f"{name.split()[0]}_samples.png"), "-n", 16,
                   "--temperature", 0.25, "--checkpoint", "latest", "--columns", 8)


if __name__ == "__main__":
    main()
