"""Hostile and careless inputs to the readers (ndjson, .gz, SVG, .bin) of `convert`, `stats` and `render`.

Every file is made here by a generator. Each case runs the command in a subprocess (tests/hostile.py)
and checks the exit code, the reason reported (with its file:line where there is one), no traceback,
the time and peak-memory bounds, and that no file was changed or left behind. Bad drawings and files are
counted and reported, and the run goes on: so most cases put one good drawing beside the bad input.
"""
from __future__ import annotations

import gzip
import random
import struct
import zlib
from pathlib import Path

import orjson
import pytest
from hostile import run_case

CONVERT = ["--split", "1/0/0", "--multiple", "1", "-q"]
NS = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'


def raw_line(i: int = 0, word: object = "cat", **extra) -> bytes:
    rec = {"key_id": str(1000 + i), "word": word, "recognized": True,
           "drawing": [[[0, 10 + i, 20, 30], [0, 15, 5 + i, 30], [0, 10, 20, 30]], [[5, 25], [5, 25], [40, 50]]]}
    rec.update(extra)
    return orjson.dumps(rec) + b"\n"


def simplified_line(i: int = 0, drawing=None) -> bytes:
    drawing = drawing or [[[0, 100 + i, 255], [0, 50, 200]]]
    return orjson.dumps({"key_id": str(2000 + i), "word": "dog", "recognized": True, "drawing": drawing}) + b"\n"


def zigzag_line(segments: int, strokes: int = 1) -> bytes:
    """One raw drawing whose strokes zigzag across the box: tiny on disk, millions of points once resampled."""
    xs = [0 if k % 2 == 0 else 1000 for k in range(segments + 1)]
    ys = [k % 1000 for k in range(segments + 1)]
    stroke = [xs, ys, list(range(segments + 1))]
    return orjson.dumps({"key_id": "zz", "word": "cat", "recognized": True, "drawing": [stroke] * strokes}) + b"\n"


def svg_doc(body: str, decl: str = "", box: str = "0 0 100 100") -> str:
    return f'{decl}<svg {NS} viewBox="{box}">{body}</svg>'


GOOD_SVG = svg_doc('<path d="M10 10 L90 90 L10 90" stroke="black" fill="none"/>')


def write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def gzip_stream(parts, count: int = 1) -> bytes:
    """gzip of the concatenation of `parts` repeated `count` times, compressed piece by piece (fast, small)."""
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    out = []
    for _ in range(count):
        for p in parts:
            out.append(z.compress(p))
    out.append(z.flush())
    return b"".join(out)


def convert(folder: Path, inputs: list[str], *, reason: str | None = None, where: str | None = None,
            extra: tuple[str, ...] = (), **kw):
    """convert INPUTS out.npz; with rc 0 the summary must name `reason` (and `where`, its file:line)."""
    rc = kw.pop("rc", 0)
    outcome = run_case(folder, ["convert", *inputs, "out.npz", *CONVERT[:-1], *extra], rc=rc,
                       creates=("out.npz",) if rc == 0 else (), **kw)
    if rc == 0:
        if reason:
            assert reason in outcome.stdout, outcome.stdout
        if where:
            assert f"{where}:" in outcome.stdout, outcome.stdout
    return outcome


def stats(folder: Path, inputs: list[str], words: str | None = None, **kw):
    outcome = run_case(folder, ["stats", *inputs, "-q"], rc=kw.pop("rc", 0), **kw)
    if words:
        assert words in outcome.stdout, outcome.stdout
    return outcome


def render(folder: Path, inputs: list[str], **kw):
    return run_case(folder, ["render", *inputs, "-o", "grid.svg", "-q"], rc=kw.pop("rc", 0), creates=("grid.svg",),
                    **kw)


# ---------------------------------------------------------------------------------------------------
# Points after resampling: bounded from arc length before any point is made


def test_zigzag_stroke_is_refused_before_resampling(tmp_path):
    write(tmp_path, "zig.ndjson", raw_line(0) + zigzag_line(100_000))  # 1.3 MB; 25 M points resampled
    out = convert(tmp_path, ["zig.ndjson"], reason="too_many_points", where="zig.ndjson:2", max_seconds=6, max_mb=400)
    assert "--limit points-per-stroke" in out.stdout


def test_zigzag_stroke_in_stats_and_render(tmp_path):
    write(tmp_path, "zig.ndjson", raw_line(0) + zigzag_line(100_000))
    stats(tmp_path, ["zig.ndjson"], "1 too many points", max_seconds=8, max_mb=400)
    render(tmp_path, ["zig.ndjson"], max_seconds=8, max_mb=400)


def test_render_compare_on_zigzag(tmp_path):
    write(tmp_path, "zig.ndjson", raw_line(0) + zigzag_line(100_000))
    run_case(tmp_path, ["render", "zig.ndjson", "-o", "grid.svg", "-q", "--compare", "3"], rc=0,
             creates=("grid.svg",), max_mb=400)


def test_many_long_strokes_are_over_the_drawing_bound(tmp_path):
    write(tmp_path, "many.ndjson", raw_line(0) + zigzag_line(600, strokes=8))  # 8 x 153 k points
    out = convert(tmp_path, ["many.ndjson"], reason="too_many_points", where="many.ndjson:2")
    assert "--limit points-per-drawing" in out.stdout


def test_the_points_bound_can_be_raised(tmp_path):
    write(tmp_path, "big.ndjson", zigzag_line(1_200))  # one stroke of about 306 k points
    run_case(tmp_path, ["convert", "big.ndjson", "out.npz", *CONVERT], message="too_many_points")
    out = convert(tmp_path, ["big.ndjson"], extra=("--limit", "points-per-stroke=400k", "--max-len", "100000"))
    assert "too_many_points" not in out.stdout


def test_simplified_drawing_with_many_points_is_refused(tmp_path):
    n = 300_000
    write(tmp_path, "dense.ndjson", simplified_line(0) + simplified_line(1, [[[k % 256 for k in range(n)],
                                                                               [k % 200 for k in range(n)]]]))
    convert(tmp_path, ["dense.ndjson"], reason="too_many_points", where="dense.ndjson:2")


# ---------------------------------------------------------------------------------------------------
# Line length, gzip


def test_long_line_in_gzip_is_skipped_without_holding_it(tmp_path):
    # one 64 MiB line (four times the bound) between two good ones, in a .gz of a few hundred KB
    body = zlib.compressobj(1, zlib.DEFLATED, 31)
    parts = [body.compress(raw_line(0) + b'{"drawing": [')]
    block = b"0, " * (2**20 // 3)
    parts += [body.compress(block) for _ in range(64)]
    parts.append(body.compress(b"0]}\n" + raw_line(1)))
    parts.append(body.flush())
    data = b"".join(parts)
    assert len(data) < 2**20
    write(tmp_path, "long.ndjson.gz", data)
    out = convert(tmp_path, ["long.ndjson.gz"], reason="line_too_long", where="long.ndjson.gz:2", max_mb=300,
                  extra=("--limit", "gzip-ratio=100000"))  # (by default, its ratio stops it: the next test)
    assert "read 3 drawings" in out.stdout and "train 2" in out.stdout and "--limit line-bytes" in out.stdout


def test_gzip_bomb_of_one_long_line_stops_at_the_ratio(tmp_path):
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [z.compress(raw_line(0) + b'{"drawing": [')] + [z.compress(b"0, " * (2**20 // 3)) for _ in range(300)]
    write(tmp_path, "bomb.ndjson.gz", b"".join(parts) + z.compress(b"0]}\n") + z.flush())  # 300 MB line, 300 KB
    write(tmp_path, "good.ndjson", raw_line(1))
    out = convert(tmp_path, ["bomb.ndjson.gz", "good.ndjson"], reason="too_large", where="bomb.ndjson.gz",
                  max_seconds=6, max_mb=300)
    assert "gzip bomb" in out.stdout and "--limit gzip-ratio" in out.stdout


def test_gzip_bomb_of_blank_lines(tmp_path):
    write(tmp_path, "blank.ndjson.gz", gzip_stream([raw_line(0), b"\n" * 2**20], 200))  # 200 MiB, 200 KB
    convert(tmp_path, ["blank.ndjson.gz"], reason="too_large", where="blank.ndjson.gz", max_seconds=8)


def test_long_line_in_plain_file(tmp_path):
    write(tmp_path, "long.ndjson", raw_line(0) + b'{"word": "' + b"x" * (17 * 2**20) + b'"}\n' + raw_line(1))
    convert(tmp_path, ["long.ndjson"], reason="line_too_long", where="long.ndjson:2", max_mb=300)


def test_long_last_line_without_newline(tmp_path):
    write(tmp_path, "tail.ndjson", raw_line(0) + b"[" * (17 * 2**20))
    convert(tmp_path, ["tail.ndjson"], reason="line_too_long", where="tail.ndjson:2", max_mb=300)


def test_line_bound_is_an_option(tmp_path):
    write(tmp_path, "a.ndjson", raw_line(0) + raw_line(1, pad="y" * 5000) + raw_line(2))
    convert(tmp_path, ["a.ndjson"], reason="line_too_long", where="a.ndjson:2", extra=("--limit", "line-bytes=2000"))


def test_long_line_with_strict_stops_the_run(tmp_path):
    write(tmp_path, "a.ndjson", raw_line(0) + raw_line(1, pad="y" * 5000))
    run_case(tmp_path, ["convert", "a.ndjson", "out.npz", "--strict", "--limit", "line-bytes=2000"], rc=1,
             message="a.ndjson:2: line is")


def test_gzip_bomb_of_zeros_is_binary(tmp_path):
    write(tmp_path, "zeros.ndjson.gz", gzip_stream([bytes(2**20)], 256))  # 256 MiB of NUL bytes, no newline
    write(tmp_path, "good.ndjson", raw_line(0))
    convert(tmp_path, ["zeros.ndjson.gz", "good.ndjson"], reason="unreadable_file", where="zeros.ndjson.gz",
            max_seconds=5, max_mb=300)


def test_truncated_gzip_keeps_the_lines_before(tmp_path):
    data = gzip.compress(b"".join(raw_line(i) for i in range(30_000)))  # 4 MB: a few chunks
    write(tmp_path, "cut.ndjson.gz", data[: len(data) // 2])
    out = convert(tmp_path, ["cut.ndjson.gz"], reason="unreadable_file", where="cut.ndjson.gz")
    assert "cannot read to the end" in out.stdout


def test_file_that_is_not_gzip(tmp_path):
    write(tmp_path, "fake.ndjson.gz", raw_line(0))
    write(tmp_path, "good.ndjson", raw_line(1))
    convert(tmp_path, ["fake.ndjson.gz", "good.ndjson"], reason="unreadable_file", where="fake.ndjson.gz")


# ---------------------------------------------------------------------------------------------------
# Encodings of ndjson


def test_utf8_bom_keeps_the_first_line(tmp_path):
    write(tmp_path, "bom.ndjson", b"\xef\xbb\xbf" + raw_line(0) + raw_line(1))
    out = run_case(tmp_path, ["convert", "bom.ndjson", "out.npz", *CONVERT[:-1]], rc=0, creates=("out.npz",))
    assert "train 2" in out.stdout and "malformed_json" not in out.stdout


def test_utf8_bom_in_gzip(tmp_path):
    write(tmp_path, "bom.ndjson.gz", gzip.compress(b"\xef\xbb\xbf" + raw_line(0) + raw_line(1)))
    out = run_case(tmp_path, ["convert", "bom.ndjson.gz", "out.npz", *CONVERT[:-1]], rc=0, creates=("out.npz",))
    assert "train 2" in out.stdout


@pytest.mark.parametrize("codec, name", [("utf-16", "UTF-16"), ("utf-16-le", "UTF-16"), ("utf-16-be", "UTF-16"),
                                         ("utf-32", "UTF-32")])
def test_utf16_and_utf32_files_are_named_once(tmp_path, codec, name):
    write(tmp_path, "win.ndjson", b"".join(raw_line(i) for i in range(50)).decode().encode(codec))
    write(tmp_path, "good.ndjson", raw_line(99))
    out = convert(tmp_path, ["win.ndjson", "good.ndjson"], reason="unreadable_file", where="win.ndjson")
    assert f"file is {name}" in out.stdout and "iconv" in out.stdout
    assert out.stdout.count("win.ndjson") == 1 and "malformed_json" not in out.stdout


def test_utf16_on_stdin(tmp_path):
    data = (raw_line(0) + raw_line(1)).decode().encode("utf-16")
    run_case(tmp_path, ["convert", "-", "out.npz", *CONVERT], stdin=data, rc=1, message="UTF-16")


def test_binary_garbage_is_one_problem(tmp_path):
    write(tmp_path, "noise.ndjson", random.Random(0).randbytes(300_000))
    write(tmp_path, "good.ndjson", raw_line(0))
    out = convert(tmp_path, ["noise.ndjson", "good.ndjson"], reason="unreadable_file", where="noise.ndjson")
    assert "malformed_json" not in out.stdout


def test_latin1_text_is_not_utf8(tmp_path):
    write(tmp_path, "latin.ndjson", raw_line(0, word="caf\u00e9").decode().encode("latin-1") * 3)
    write(tmp_path, "good.ndjson", raw_line(1))
    out = convert(tmp_path, ["latin.ndjson", "good.ndjson"], reason="unreadable_file", where="latin.ndjson")
    assert "not UTF-8" in out.stdout


def test_empty_and_blank_files_beside_a_good_one(tmp_path):
    write(tmp_path, "empty.ndjson", b"")
    write(tmp_path, "blank.ndjson", b"\n\n  \n")
    write(tmp_path, "bom_only.ndjson", b"\xef\xbb\xbf")
    write(tmp_path, "good.ndjson", raw_line(0))
    out = convert(tmp_path, ["empty.ndjson", "blank.ndjson", "bom_only.ndjson", "good.ndjson"])
    assert "train 1" in out.stdout


# ---------------------------------------------------------------------------------------------------
# Values inside lines


BAD_VALUES = [
    (b'{"word": "cat", "drawing": [[[0, NaN], [0, 1]]]}', "malformed_json"),
    (b'{"word": "cat", "drawing": [[[0, Infinity], [0, 1]]]}', "malformed_json"),
    (b'{"word": "cat", "drawing": [[[0, 1e400], [0, 1]]]}', "malformed_json"),
    (b'{"word": "cat", "drawing": [[[0, 123456789012345678901234567890], [0, 1]]]}', "absurd_coordinate"),
    (b'{"word": "cat", "drawing": [[[0, 99999999999999999999999999999999999999999999], [0, 1]]]}', "absurd_coordinate"),
    (b'{"word": "cat", "drawing": [[[0, "1"], [0, 1]]]}', "bad_drawing"),
    (b"[" * 100_000 + b"]" * 100_000, "malformed_json"),
    (b'{"drawing": ' + b"[" * 5000 + b"]" * 5000 + b"}", "malformed_json"),
    (b'{"word": "cat", "drawing": {"0": [1]}}', "bad_drawing"),
    (b'{"word": "cat", "drawing": []}', "empty_drawing"),
    (b'"just a string"', "bad_drawing"),
    (b'{"word": 5, "drawing": [[[0, 1], [0, 1]]]}', "bad_word"),
    (b'{"word": ["cat"], "drawing": [[[0, 1], [0, 1]]]}', "bad_word"),
    (b'{"word": {"en": "cat"}, "drawing": [[[0, 1], [0, 1]]]}', "bad_word"),
]


@pytest.mark.parametrize("line, reason", BAD_VALUES[::3], ids=["nan", "infinity", "1e400", "int-1e29", "int-1e44", "string-number", "deep-array",
        "deep-drawing", "object-drawing", "empty-drawing", "string", "word-number", "word-list", "word-object"][::3])
def test_bad_values_are_counted_with_their_line(tmp_path, line, reason):
    write(tmp_path, "bad.ndjson", raw_line(0) + line + b"\n" + raw_line(1))
    convert(tmp_path, ["bad.ndjson"], reason=reason, where="bad.ndjson:2")


def test_every_bad_value_in_one_file(tmp_path):
    """The same lines, all in one file: each is reported with its own line and reason; the good ones stay."""
    lines = [line for line, _ in BAD_VALUES]
    write(tmp_path, "bad.ndjson", raw_line(0) + b"\n".join(lines) + b"\n" + raw_line(1))
    out = convert(tmp_path, ["bad.ndjson"])
    assert "train 2" in out.stdout
    for k, (_, reason) in enumerate(BAD_VALUES):
        assert f"  {reason} " in out.stdout
        assert f"bad.ndjson:{k + 2}: " in out.stdout


def test_bad_word_with_a_word_filter(tmp_path):
    write(tmp_path, "bad.ndjson", raw_line(0) + raw_line(1, word=[1, 2]))
    convert(tmp_path, ["bad.ndjson"], reason="bad_word", where="bad.ndjson:2", extra=("--word", "cat"))


def test_odd_key_ids_keep_the_drawing(tmp_path):
    write(tmp_path, "ids.ndjson", raw_line(0, key_id={"a": 1}) + raw_line(1, key_id=[1]) + raw_line(2, key_id=7))
    out = convert(tmp_path, ["ids.ndjson"])
    assert "train 3" in out.stdout


def test_simplified_coordinate_overflow_says_what_helps(tmp_path):
    write(tmp_path, "s.ndjson", simplified_line(0) + simplified_line(1, [[[0, 40000], [0, 5]]]))
    out = convert(tmp_path, ["s.ndjson"], reason="offset_overflow", where="s.ndjson:2")
    assert "0-255 box" in out.stdout and "smaller --size" not in out.stdout


@pytest.mark.parametrize("name, data", [
    ("noise.bin", random.Random(3).randbytes(3_000_000)),
    ("huge.bin", struct.pack("<Q2sbIH", 1, b"US", 1, 0, 60_000)
     + (b"\xff\xff" + bytes(2 * 65535)) * 40),
], ids=["garbage", "one-huge-record"])
def test_bin_record_over_the_points_bound_stops_that_file(tmp_path, name, data):
    write(tmp_path, name, data)
    write(tmp_path, "good.ndjson", raw_line(0))
    out = convert(tmp_path, [name, "good.ndjson"], reason="too_many_points", where=f"{name}:1", max_mb=300)
    assert "the rest of the file is not read" in out.stdout


def test_bin_file_with_a_truncated_record(tmp_path):
    rec = struct.pack("<Q2sbIH", 1, b"US", 1, 0, 1) + struct.pack("<H", 3) + bytes([0, 50, 255]) + bytes([0, 90, 30])
    write(tmp_path, "cat.bin", rec + rec[:-4])
    convert(tmp_path, ["cat.bin"], reason="bad_drawing")


# ---------------------------------------------------------------------------------------------------
# SVG


JAPANESE = "<title>\u732b\u306e\u7d75</title>"  # "a picture of a cat"
CHINESE = "<title>\u732b</title>"  # simplified Chinese
TRADITIONAL = "<title>\u8c93</title>"


@pytest.fixture
def encodings_folder(tmp_path):
    folder = tmp_path / "art"
    for k, (codec, title) in enumerate((("Shift_JIS", JAPANESE), ("EUC-JP", JAPANESE), ("GB2312", CHINESE),
                                        ("Big5", TRADITIONAL), ("UTF-16", JAPANESE), ("UTF-32", JAPANESE),
                                        ("ISO-8859-1", "<title>caf\u00e9</title>"))):
        doc = svg_doc(title + f'<path d="M10 10 L90 90 L{k} 50" stroke="black"/>',
                      decl=f'<?xml version="1.0" encoding="{codec}"?>\n')
        write(folder, f"{codec}.svg", doc.encode(codec))
    write(folder, "bom.svg", b"\xef\xbb\xbf" + svg_doc('<path d="M0 0 L50 80" stroke="red"/>').encode())
    write(folder, "x-foo.svg", svg_doc('<path d="M0 0 L9 9" stroke="red"/>',
                                       decl='<?xml version="1.0" encoding="x-foo"?>\n'))
    write(folder, "bad-sjis.svg", b'<?xml version="1.0" encoding="Shift_JIS"?>\n<svg xmlns="http://www.w3.org/2000/svg">'
                                  b"<title>\x81\xff\xfc</title></svg>")
    return tmp_path


def test_svg_encodings_in_a_folder_run(encodings_folder):
    out = convert(encodings_folder, ["art"], reason="unreadable_file", where="art/x-foo.svg")
    assert "train 8" in out.stdout and "art/bad-sjis.svg: not valid shift_jis" in out.stdout


def test_svg_encodings_in_stats(encodings_folder):
    stats(encodings_folder, ["art"], "2 unreadable file")


def test_svg_encodings_in_render(encodings_folder):
    out = render(encodings_folder, ["art"])
    assert "" == out.stderr.strip() or "Error" not in out.stderr


def test_use_fan_out_is_refused_by_cost(tmp_path):
    levels = ['<path id="l0" d="M0 0 L10 10 L20 0 L30 10" stroke="black" fill="none"/>'] + [
        f'<g id="l{k}">' + "".join(f'<use xlink:href="#l{k - 1}" x="{i}"/>' for i in range(10)) + "</g>"
        for k in range(1, 6)]
    write(tmp_path, "d/fan.svg", svg_doc("<defs>" + "".join(levels) + '</defs><use xlink:href="#l5"/>'))
    assert (tmp_path / "d/fan.svg").stat().st_size < 3000  # 111,111 elements once inlined
    write(tmp_path, "d/good.svg", GOOD_SVG)
    out = convert(tmp_path, ["d"], reason="unsafe_xml", where="d/fan.svg", max_seconds=5, max_mb=300)
    assert "--limit svg-cost" in out.stdout


def test_deep_use_chain(tmp_path):
    levels = ['<path id="l0" d="M0 0 L1 1" stroke="black"/>'] + [
        f'<g id="l{k}"><use href="#l{k - 1}"/><use href="#l{k - 1}"/></g>' for k in range(1, 40)]
    write(tmp_path, "d/chain.svg", svg_doc("<defs>" + "".join(levels) + '</defs><use href="#l39"/>'))
    write(tmp_path, "d/good.svg", GOOD_SVG)
    convert(tmp_path, ["d"], reason="unsafe_xml", where="d/chain.svg", max_seconds=5)


def test_cubic_curves_flatten_to_too_many_points(tmp_path):
    rng = random.Random(1)
    path = "M0 0 " + " ".join(f"C{rng.randint(0, 1000)} {rng.randint(0, 1000)} {rng.randint(0, 1000)} "
                              f"{rng.randint(0, 1000)} {rng.randint(0, 1000)} {rng.randint(0, 1000)}"
                              for _ in range(6500))
    write(tmp_path, "d/curves.svg", svg_doc(f'<path d="{path}" stroke="black" fill="none"/>', box="0 0 1000 1000"))
    assert 150_000 < (tmp_path / "d/curves.svg").stat().st_size < 250_000
    write(tmp_path, "d/good.svg", GOOD_SVG)
    convert(tmp_path, ["d"], reason="too_many_points", where="d/curves.svg", max_seconds=6, max_mb=400)


def test_huge_arcs_at_source_units(tmp_path):
    arcs = " ".join("A 1000000 1000000 0 1 1 1 0" if k % 2 else "A 1000000 1000000 0 1 1 0 0" for k in range(40))
    write(tmp_path, "d/arc.svg", svg_doc(f'<path d="M0 0 {arcs}" stroke="black" fill="none"/>',
                                         box="-3e6 -3e6 6e6 6e6"))  # 40 arcs of 6 million px each
    write(tmp_path, "d/good.svg", GOOD_SVG)
    convert(tmp_path, ["d"], extra=("--size", "0"), reason="too_many_points", where="d/arc.svg", max_seconds=6,
            max_mb=400)


def test_large_svg_file_is_not_read(tmp_path):
    write(tmp_path, "d/big.svg", svg_doc("<!--" + "x" * 3_000_000 + "-->" + '<path d="M0 0 L1 1" stroke="black"/>'))
    write(tmp_path, "d/good.svg", GOOD_SVG)
    out = convert(tmp_path, ["d"], reason="too_large", where="d/big.svg")
    assert "--limit svg-cost" in out.stdout


def test_many_elements_cost_too_much(tmp_path):
    write(tmp_path, "d/many.svg", svg_doc("".join(f'<path d="M{i % 90} 0 L10 10" stroke="black"/>'
                                                  for i in range(12_000))))
    write(tmp_path, "d/good.svg", GOOD_SVG)
    convert(tmp_path, ["d"], reason="too_large", where="d/many.svg")


def test_the_svg_bound_can_be_raised(tmp_path):
    write(tmp_path, "d/notes.svg", svg_doc("<desc>" + "n" * 1_100_000 + '</desc><path d="M0 0 L9 9" stroke="black"/>'))
    convert(tmp_path, ["d"], rc=1, message="too_large")  # its only drawing refused: nothing kept
    out = convert(tmp_path, ["d"], extra=("--limit", "svg-cost=2M"))
    assert "too_large" not in out.stdout and "train 1" in out.stdout


BAD_SVGS = [
    ("garbage.svg", random.Random(2).randbytes(5000), "unreadable_file"),
    ("empty.svg", b"", "unreadable_file"),
    ("entities.svg", ('<!DOCTYPE svg [<!ENTITY a "' + "x" * 1000 + '">' + "".join(
        f'<!ENTITY {c} "&{p};&{p};&{p};&{p};&{p};&{p};&{p};&{p};&{p};&{p};">' for p, c in zip("abcdef", "bcdefg"))
        + f']><svg {NS}><title>&g;</title></svg>').encode(), "unsafe_xml"),
    ("external.svg", f'<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg {NS}>&x;</svg>'.encode(),
     "unsafe_xml"),
    ("deep.svg", svg_doc("<g>" * 50_000 + '<path d="M0 0 L1 1" stroke="black"/>' + "</g>" * 50_000).encode(),
     "unreadable_file"),
    ("huge.svg", f'<svg {NS}><path d="M0 0 L1e300 1e300" stroke="black"/></svg>'.encode(), "absurd_coordinate"),
    ("inf.svg", svg_doc('<path d="M0 0 L1 1" stroke="black" transform="scale(1e308) scale(1e308)"/>').encode(),
     "no_geometry"),
    ("html.svg", b"<html><body>not svg</body></html>", "unreadable_file"),
    ("utf16-nobom.svg", svg_doc('<path d="M0 0 L5 5" stroke="black"/>').encode("utf-16-le")[:-3], "unreadable_file"),
]


@pytest.mark.parametrize("name, data, reason", BAD_SVGS[::2], ids=[n for n, _, _ in BAD_SVGS[::2]])
def test_bad_svg_file_is_reported_and_the_run_goes_on(tmp_path, name, data, reason):
    write(tmp_path, f"d/{name}", data)
    write(tmp_path, "d/good.svg", GOOD_SVG)
    convert(tmp_path, ["d"], reason=reason, where=f"d/{name}", max_mb=500)


def test_every_bad_svg_in_one_folder(tmp_path):
    for name, data, _ in BAD_SVGS:
        write(tmp_path, f"d/{name}", data)
    write(tmp_path, "d/good.svg", GOOD_SVG)
    out = convert(tmp_path, ["d"], max_mb=500)
    assert "train 1" in out.stdout
    for name, _, reason in BAD_SVGS:
        assert f"  {reason} " in out.stdout and f"d/{name}" in out.stdout


def test_bad_svg_in_stats_and_render(tmp_path):
    write(tmp_path, "d/x.svg", svg_doc('<path d="M0 0 L1 1" stroke="black"/>', decl='<?xml version="1.0" '
                                                                                    'encoding="x-foo"?>'))
    write(tmp_path, "d/good.svg", GOOD_SVG)
    stats(tmp_path, ["d"], "1 unreadable file")
    render(tmp_path, ["d"])


# ---------------------------------------------------------------------------------------------------
# Options


@pytest.mark.parametrize("value", ["points-per-stroke=0", "no-such=5", "line-bytes", "svg-cost=-1", "line-bytes=1.5M"])
def test_bad_limit_values_are_usage_errors(tmp_path, value):
    write(tmp_path, "good.ndjson", raw_line(0))
    run_case(tmp_path, ["convert", "good.ndjson", "out.npz", "--limit", value], rc=2, message="--limit")


def test_limit_on_a_npz_is_a_usage_error(tmp_path):
    write(tmp_path, "good.ndjson", raw_line(0))
    run_case(tmp_path, ["convert", "good.ndjson", "out.npz", *CONVERT], rc=0, creates=("out.npz",))
    run_case(tmp_path, ["stats", "out.npz", "--limit", "line-bytes=5"], rc=2, message="raw inputs")


HOSTILE_FILES = {
    "utf16": ("win.ndjson", lambda: b"".join(raw_line(i) for i in range(20)).decode().encode("utf-16"),
              "1 unreadable file"),
    "gzip-bomb": ("blank.ndjson.gz", lambda: gzip_stream([raw_line(5), b"\n" * 2**20], 64), "1 too large"),
    "bin-garbage": ("noise.bin", lambda: random.Random(3).randbytes(1_500_000), "1 bad drawing"),  # truncated
    "long-line": ("long.ndjson", lambda: raw_line(5) + b"[" * (17 * 2**20) + b"\n", "1 line too long"),
}


@pytest.mark.parametrize("command", ["stats", "render"])
@pytest.mark.parametrize("kind", sorted(HOSTILE_FILES))
def test_stats_and_render_report_and_go_on(tmp_path, command, kind):
    name, make, reported = HOSTILE_FILES[kind]
    write(tmp_path, name, make())
    write(tmp_path, "good.ndjson", raw_line(0))
    if command == "stats":
        stats(tmp_path, [name, "good.ndjson"], reported, max_mb=400)
    else:
        out = render(tmp_path, [name, "good.ndjson"], max_mb=400)
        assert (tmp_path / "grid.svg").exists() and not out.stderr.strip()
