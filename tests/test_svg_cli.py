"""`sketchprep convert` on folders of SVG files (CliRunner): classes, reported skips, options."""
import json

import numpy as np
from click.testing import CliRunner

from sketchprep.cli import main
from sketchprep.dataset import load_dataset
from sketchprep.strokes import stroke3_to_polylines

NS = 'xmlns="http://www.w3.org/2000/svg"'


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write(path, body, attrs='width="100" height="100" viewBox="0 0 100 100"'):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<svg {NS} {attrs}>{body}</svg>")
    return path


def drawings(tmp_path):
    """cat/ and dog/ with 3 drawings each, a fill-only file, a broken file and an empty one."""
    for i in range(3):
        write(tmp_path / "in" / "cat" / f"{i}.svg", f'<circle cx="50" cy="50" r="{10 + 10 * i}" stroke="black"/>')
        write(tmp_path / "in" / "dog" / f"{i}.svg",
              f'<g stroke="black"><path d="M10 10 L90 {20 + 20 * i}"/><path d="M10 90 q40 -40 80 0"/></g>')
    write(tmp_path / "in" / "dog" / "filled.svg", '<rect x="10" y="10" width="50" height="30" fill="black"/>')
    broken = tmp_path / "in" / "dog" / "broken.svg"
    broken.write_text(f"<svg {NS}><path d='M0 0 L1 1'")
    empty = write(tmp_path / "in" / "cat" / "empty.svg", "<text>nothing to draw</text>")
    return tmp_path / "in", broken, empty


def test_convert_svg_folders_reports_each_skipped_file(tmp_path):
    folder, broken, empty = drawings(tmp_path)
    out = tmp_path / "out.npz"
    result = run("convert", folder, out, "--split", "1/0/0", "--multiple", "1", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    counts = report["outputs"][0]
    assert counts["read"] == 9 and counts["counts"]["train"] == 6
    assert counts["dropped"] == {"no_geometry": 2, "unreadable_file": 1}
    assert sorted(report["problems"]) == sorted([
        f"{folder / 'cat' / 'empty.svg'}: no stroked geometry",
        f"{folder / 'dog' / 'filled.svg'}: no stroked geometry (1 fill-only shape(s) skipped; --include-fills "
        "keeps their outlines)",
        f"{broken}:1: not well-formed XML (unclosed token)"])
    data = load_dataset(out)
    assert data.classes == ["cat", "dog"]
    ids = data.ids["train"].tolist()
    assert sorted(ids) == sorted(str(p) for p in folder.rglob("[0-9].svg"))
    for sketch, label, path in zip(data.splits["train"], data.labels["train"], ids):
        assert data.classes[label] in path
        strokes = stroke3_to_polylines(sketch)
        assert len(strokes) == (1 if "cat" in path else 2)
        assert max(np.ptp(np.concatenate(strokes), axis=0)) == 255  # normalised to --size


def test_convert_svg_human_summary_names_the_files(tmp_path):
    folder, broken, empty = drawings(tmp_path)
    result = run("convert", folder, tmp_path / "out.npz", "--split", "1/0/0", "--multiple", "1")
    assert result.exit_code == 0
    assert f"  {empty}: no stroked geometry" in result.output
    assert f"  {broken}:1: not well-formed XML (unclosed token)" in result.output


def test_include_fills_keeps_fill_only_drawings(tmp_path):
    folder, _, _ = drawings(tmp_path)
    out = tmp_path / "fills.npz"
    result = run("convert", folder, out, "--split", "1/0/0", "--multiple", "1", "--include-fills", "--json")
    report = json.loads(result.output)["outputs"][0]
    assert report["counts"]["train"] == 7 and report["options"]["include_fills"] is True
    data = load_dataset(out)
    (filled,) = [s for s, i in zip(data.splits["train"], data.ids["train"]) if i.endswith("filled.svg")]
    (outline,) = stroke3_to_polylines(filled)
    assert outline.tolist() == [[0, 0], [255, 0], [255, 153], [0, 153], [0, 0]]  # 50 x 30 -> 255 x 153


def test_strict_stops_at_the_first_bad_svg(tmp_path):
    folder, broken, _ = drawings(tmp_path)
    out = tmp_path / "strict.npz"
    result = CliRunner().invoke(main, ["convert", str(folder / "dog"), str(out), "--strict"])
    assert result.exit_code == 1
    assert f"Error: {broken}:1: not well-formed XML (unclosed token)" in result.output
    assert not out.exists()


def test_workers_give_the_same_file(tmp_path):
    folder, _, _ = drawings(tmp_path)
    for i in range(40):  # more than one unit of work
        write(folder / "cat" / f"extra{i}.svg", f'<rect x="{i}" y="5" width="30" height="{5 + i}" stroke="black"/>')
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    assert run("convert", folder, one, "--workers", "1", "-q", "--multiple", "1").exit_code == 0
    assert run("convert", folder, two, "--workers", "2", "-q", "--multiple", "1").exit_code == 0
    a, b = load_dataset(one), load_dataset(two)
    for split in ("train", "valid", "test"):
        assert a.ids[split].tolist() == b.ids[split].tolist()
        assert all(np.array_equal(x, y) for x, y in zip(a.splits[split], b.splits[split]))


def test_billion_laughs_is_reported_not_fatal(tmp_path):
    decls = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY a{i} "{("&a" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    bomb = tmp_path / "in" / "bomb.svg"
    bomb.parent.mkdir()
    bomb.write_text(f'<!DOCTYPE svg [{decls}]><svg {NS}><desc>&a9;</desc></svg>')
    write(tmp_path / "in" / "ok.svg", '<path d="M0 0 L50 50" stroke="black"/>')
    result = run("convert", tmp_path / "in", tmp_path / "out.npz", "--split", "1/0/0", "--multiple", "1")
    assert result.exit_code == 0
    assert "unsafe_xml" in result.output and f"{bomb}: unsafe XML: entity 'a" in result.output
