"""sketchrnn's modules: no import circle, run reading without the training loop, and the set-up pieces
of `train` usable one by one (as `evaluate`-like tools use them)."""
import ast
import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from sketchrnn.checkpoint import LATEST, load_checkpoint, load_run  # noqa: E402
from sketchrnn.evaluation import evaluate  # noqa: E402
from sketchrnn.model import HParams, kl_weight_at  # noqa: E402
from sketchrnn.train import build_model, load_training_data, make_batches, train  # noqa: E402

from conftest import REPO  # noqa: E402
from test_sketchrnn_train import TINY, tiny_dataset  # noqa: E402

PACKAGE = REPO / "sketchrnn"


def package_imports() -> dict[str, set[str]]:
    """module -> the sketchrnn modules it imports anywhere in its file (function-level imports too)."""
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        name = path.stem
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 and node.module:                   # from .x import y
                    found.add(node.module.split(".")[0])
                elif node.level == 1:                                # from . import x
                    found.update(a.name for a in node.names)
                elif node.level == 0 and (node.module or "").startswith("sketchrnn."):
                    found.add(node.module.split(".")[1])
                elif node.level == 0 and node.module == "sketchrnn":
                    found.update(a.name for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("sketchrnn."))
        graph[name] = {m for m in found if (PACKAGE / f"{m}.py").exists()} - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}          # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_sketchrnn_has_no_import_circle():
    graph = package_imports()
    assert "sample" in graph["train"] and "checkpoint" in graph["sample"]    # the parser sees imports
    assert find_cycle(graph) is None, f"import circle: {' -> '.join(find_cycle(graph))}"


def test_reading_a_run_never_imports_the_training_loop():
    graph = package_imports()
    for module in ("checkpoint", "evaluation", "sample", "magenta", "magenta_js", "devices"):
        assert "train" not in reaches(graph, module), module
    code = ("import sys, sketchrnn.sample, sketchrnn.checkpoint, sketchrnn.evaluation, sketchrnn.magenta, "
            "sketchrnn.magenta_js; print('sketchrnn.train' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_the_set_up_pieces_reproduce_the_runs_own_valid_cost(tmp_path, one_torch_thread):
    """Data, batches and model built alone from a checkpoint, then `evaluate`: the valid cost the run
    logged at its last evaluation, as a later `evaluate` command needs it."""
    data_path = tiny_dataset(tmp_path / "tiny.npz")
    train([data_path], tmp_path / "run", HParams(**TINY), max_steps=6, samples=0)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if r["split"] == "valid"][-1]
    assert last["step"] == 6

    ckpt = load_checkpoint(tmp_path / "run" / LATEST)
    hps = HParams.from_dict(ckpt["hparams"])
    data = load_training_data([data_path], hps, ckpt["scale_factor"])
    batches = make_batches(data, hps, world=1)
    model = build_model(hps, torch.device("cpu"), state=ckpt["model"])
    v = evaluate(model, batches["valid"], kl_weight_at(hps, 5), torch.device("cpu"), seed=hps.seed)
    assert v["n"] == last["n"] == 10
    assert v["cost"] == pytest.approx(last["cost"], rel=1e-6)
    assert v["r_cost"] == pytest.approx(last["r_cost"], rel=1e-6)

    run = load_run(tmp_path / "run", checkpoint="latest")        # the sampling side reads the same weights
    assert run.step == 6 and run.scale_factor == ckpt["scale_factor"]
