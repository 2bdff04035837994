"""SVG line art: each file is one drawing whose strokes are the stroked geometry a browser would draw.

What is drawn: every `path` (all commands), `line`, `polyline`, `polygon`, `rect` (rx/ry), `circle`,
`ellipse` and `use` of them, through nested `<g>`/`<svg>`/`<a>`/`<switch>` with their transforms, viewBox,
preserveAspectRatio and units, in document order. Each subpath is one stroke (a new one after every
move and every `Z`). Skipped: `<text>`, `display:none`, `visibility:hidden`, `opacity="0"`, shapes whose
stroke is `none`, transparent or 0 wide (a fill-only shape is kept only with `include_fills`), the
contents of `<defs>`, `<symbol>`, `<mask>`, `<marker>`, `<pattern>` and `<clipPath>` unless `<use>`d,
unknown or foreign-namespace elements, anything under a non-invertible transform, and anything
outside the root's or a nested `<svg>`'s viewport. `clip-path`, masks and marker symbols are not applied.

Parsing is svgelements (see the README for the measurement against svgpathtools) behind an
ElementTree pre-pass that fixes what svgelements gets wrong (`_prepare`), with geometry kept local
(`reify=False`) and sampled before the element's full transform is applied, which is exact for any
affine map (svgelements' own reified arcs are wrong under skew or non-uniform scale).

Curves are flattened so that consecutive points are at most `spacing` apart in the final frame (the
drawing scaled so its larger extent is `size`; `size=0`: source units, CSS px of the SVG viewport):
the point count of a segment comes from a bound on its speed (degree x longest control-polygon edge
for Beziers, radius x sweep for arcs) times the transform's largest stretch. RDP then decides which
points stay. Straight segments are kept as their end points.

The XML is read with defusedxml: no external entities, and internal entities only while all their
expansions together stay under `MAX_ENTITY_EXPANSION` characters, so a "billion laughs" file fails
fast; svgelements only ever sees the re-serialised, entity-free tree.
"""
from __future__ import annotations

import codecs
import copy
import io
import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np
import svgelements as se
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from ..files import open_regular
from ..limits import Limits
from ..strokes import FlatDrawings, _offsets
from . import KIND_SAMPLED, Problem, SourceBatch, order_key

SVG_NS = "http://www.w3.org/2000/svg"
MAX_ENTITY_EXPANSION = 1_000_000   # characters all entity references of a document may expand to
ELEMENT_COST = 100                 # what svgelements spends on an element, in bytes of attribute text
USE_COPY_COST = 1.5                # an element copied by <use> costs svgelements about 1.5 times one written out
MAX_POINTS_PER_SEGMENT = 65536     # a bound on memory per curve segment (--size 0 on huge coordinates)
MAX_ABS_COORDINATE = 1e9           # px; beyond this a drawing is broken (and its extent may overflow)
DEFAULT_FONT_SIZE = 16.0           # px; what `em` means when no font-size is set (browsers' "medium")
EXTENT_SLACK = 1.25                # first sampling this much finer than the control-point bbox asks; finer still
                                   # (a second pass) only when that bbox overestimates the extent by more
# Attributes the pre-pass adds for svgelements: a nested <svg>'s viewport as an invisible marker <rect>,
# and on every nested <svg>, the viewports (marker ids) its content is clipped to
_VIEWPORT_ATTR = "data-sketchprep-viewport"
_CLIP_ATTR = "data-sketchprep-clip"

# Elements of the SVG namespace we know; any other element (and all it holds) is not rendered, as
# browsers do (svgelements would draw the children of an unknown element). `text`, `tspan` and
# `textPath` are deliberately absent: text is never drawn.
_KNOWN = frozenset("""svg g defs symbol use a switch path rect circle ellipse line polyline polygon style title
    desc metadata clipPath mask marker pattern linearGradient radialGradient stop image view script filter
    foreignObject animate animateMotion animateTransform animateColor set mpath discard solidcolor
    hatch hatchpath meshgradient meshrow meshpatch color-profile cursor""".split())
_SHAPES = frozenset("path rect circle ellipse line polyline polygon".split())
# Containers whose content is only drawn through <use> (svgelements draws the children of the first three)
_NEVER_DRAWN = frozenset("mask marker symbol pattern clipPath linearGradient radialGradient filter".split())
_NOT_SWITCH_CHOICES = frozenset("title desc metadata".split())
# Attributes (and style properties) whose lengths may be font-relative
_LENGTH_ATTRS = frozenset("x y width height rx ry cx cy r x1 y1 x2 y2 stroke-width".split())
_X_LENGTHS = frozenset("x width rx cx x1 x2".split())  # percentages of the viewport's width
_Y_LENGTHS = frozenset("y height ry cy y1 y2".split())  # ... of its height; others: of its normalised diagonal
_LENGTH_RE = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Z%]*)\s*$")
_ABS_UNITS = {"": 1.0, "px": 1.0, "pt": 4.0 / 3.0, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0,
              "q": 96 / 101.6}
_FONT_UNITS = {"em": 1.0, "ex": 0.5, "rem": 1.0}  # ex as half an em, as resvg and CSS's fallback do
_FONT_KEYWORDS = {"xx-small": 9.0, "x-small": 10.0, "small": 13.0, "medium": 16.0, "large": 18.0, "x-large": 24.0,
                  "xx-large": 32.0}
_ENTITY_REF = re.compile(r"&([A-Za-z_:][\w.:-]*);")
_PREDEFINED_ENTITIES = frozenset("amp lt gt quot apos".split())


class SvgError(Exception):
    """A file that gives no drawing; `reason` is one of convert.BAD_INPUT_REASONS."""

    def __init__(self, reason: str, message: str, line: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.line = line


# ---------------------------------------------------------------------------------------------------
# Reading files


def class_name_from_path(path: str) -> str:
    """'drawings/cat/1.svg' -> 'cat': the folder an SVG lies in is its class."""
    return os.path.basename(os.path.dirname(os.path.abspath(path))) or "svg"


def read_files(files: list[tuple[int, str]], size: float = 255.0, include_fills: bool = False,
               spacing: float = 1.0, limits: Limits | None = None) -> SourceBatch:
    """Read SVG files, one drawing each, into a `SourceBatch` of `KIND_SAMPLED` polylines (source units).

    files: (input index, path) pairs. A file that cannot be read or parsed, or draws nothing, becomes a
    `Problem` (`unreadable_file`, `unsafe_xml`, `no_geometry`, `non_finite` or `absurd_coordinate`)
    instead of a drawing; so does a file over `limits` (`too_large`, `too_many_points`).
    """
    limits = limits or Limits()
    strokes: list[np.ndarray] = []
    n_strokes: list[int] = []
    ids: list[str] = []
    labels: list[str | None] = []
    order: list[int] = []
    problems: list[Problem] = []
    for index, path in files:
        try:
            with open_regular(path, "an SVG file") as f:
                nbytes = os.fstat(f.fileno()).st_size
                if nbytes > limits.svg_cost:
                    problems.append(Problem("too_large", path, None, f"file is {nbytes:,} bytes, over the SVG bound "
                                            f"of {limits.svg_cost:,} (raise it with --limit svg-cost=N)"))
                    continue
                data = f.read(limits.svg_cost + 1)
            polylines, marks = svg_drawing(data, size, include_fills, spacing, limits)
        except OSError as e:
            problems.append(Problem("unreadable_file", path, None, f"cannot read: {e.strerror or e}"))
            continue
        except SvgError as e:
            problems.append(Problem(e.reason, path, e.line, e.message))
            continue
        strokes += polylines
        n_strokes.append(len(polylines))
        ids.append(marks.get("id", path))
        labels.append(marks.get("word", class_name_from_path(path)))
        order.append(order_key(index, 0))
    points = np.concatenate(strokes) if strokes else np.zeros((0, 2))
    flat = FlatDrawings(points, _offsets(np.array([len(s) for s in strokes], dtype=np.int64)),
                        _offsets(np.array(n_strokes, dtype=np.int64)))
    return SourceBatch(flat, np.full(len(ids), KIND_SAMPLED, dtype=np.uint8), ids, labels,
                       np.array(order, dtype=np.int64), problems, read=len(files), paths=dict(files))


def svg_polylines(data: bytes, size: float = 255.0, include_fills: bool = False,
                  spacing: float = 1.0, limits: Limits | None = None) -> list[np.ndarray]:
    """One SVG document -> its strokes as (k, 2) float64 arrays in source units (CSS px), in drawing order.

    Curves are sampled so that consecutive points are at most `spacing` apart once the drawing is scaled
    so its larger extent is `size` (`size=0`: `spacing` source units). Raises `SvgError`, also for a
    document over `limits` (its parsing cost, or its points once curves are flattened).
    """
    return svg_drawing(data, size, include_fills, spacing, limits)[0]


# `sketchprep export --format svg` names each drawing's id and word on the root element, in this namespace,
# so that `convert` reads them back (file and folder names can only hold a cleaned form of them).
EXPORT_NS = "urn:sketchprep"


def svg_drawing(data: bytes, size: float = 255.0, include_fills: bool = False, spacing: float = 1.0,
                limits: Limits | None = None) -> tuple[list[np.ndarray], dict[str, str]]:
    """`svg_polylines`, and the drawing's `id` and `word` where the document names them (`EXPORT_NS`
    attributes of the root element, as `sketchprep export --format svg` writes them)."""
    limits = limits or Limits()
    root = parse_xml(data)
    marks = {key: root.get(f"{{{EXPORT_NS}}}{key}") for key in ("id", "word")}
    marks = {key: value for key, value in marks.items() if value is not None}
    try:
        _prepare(root, limits.svg_cost)
        doc = se.SVG.parse(io.BytesIO(ET.tostring(root)), reify=False)
        with np.errstate(all="ignore"):  # a degenerate viewport's corners: not drawn either way
            shapes, fill_only = _drawn_shapes(doc, include_fills)
    except SvgError:
        raise
    except RecursionError:
        raise SvgError("unreadable_file", "elements nested too deeply") from None
    except Exception as e:  # svgelements raises many kinds on odd input; one bad file must not stop a run
        raise SvgError("unreadable_file", f"svgelements cannot read it ({type(e).__name__}: {e})") from None
    try:
        with np.errstate(all="ignore"):  # non-finite or absurd coordinates are reported below
            polylines = _sample(shapes, size, spacing, limits)
    except (TypeError, ValueError, ArithmeticError) as e:  # svgelements left a point undefined (None)
        raise SvgError("unreadable_file", f"a shape has a point svgelements could not work out "
                                          f"({type(e).__name__}: {e})") from None
    if not polylines:
        if shapes:
            raise SvgError("no_geometry", "nothing drawn (every stroked shape is empty or outside the viewport)")
        hint = f" ({fill_only} fill-only shape(s) skipped; --include-fills keeps their outlines)" if fill_only else ""
        raise SvgError("no_geometry", "no stroked geometry" + hint)
    if not all(np.isfinite(p).all() for p in polylines):
        raise SvgError("non_finite", "a coordinate is NaN or infinite after the transforms")
    if max(float(np.abs(p).max()) for p in polylines) > MAX_ABS_COORDINATE:
        raise SvgError("absurd_coordinate", f"a coordinate exceeds {MAX_ABS_COORDINATE:g} px after the transforms")
    return polylines, marks


# ---------------------------------------------------------------------------------------------------
# Safe XML


class _BoundedEntityParser(DefusedXMLParser):
    """defusedxml's parser, but internal entities are allowed while their total expansion is bounded.

    defusedxml can only forbid entities outright, which would reject real files (Illustrator's
    `&ns_svg;`, resvg's tests); expat's own amplification limit only triggers after 8 MiB of output.
    """

    def __init__(self, data: bytes):
        super().__init__(forbid_dtd=False, forbid_entities=True, forbid_external=True)
        self._data = data
        self._sizes: dict[str, int] = {}
        self._total = 0

    def defused_entity_decl(self, name, is_parameter_entity, value, base, sysid, pubid, notation_name):
        if is_parameter_entity or value is None:
            raise SvgError("unsafe_xml", f"unsafe XML: external or parameter entity {name!r} is not allowed")
        size = len(value)
        for ref in _ENTITY_REF.findall(value):
            if ref in _PREDEFINED_ENTITIES:
                continue
            if ref not in self._sizes:
                raise SvgError("unsafe_xml", f"unsafe XML: entity {name!r} refers to undeclared entity {ref!r}")
            size += self._sizes[ref]
        self._sizes[name] = size
        # every reference in the raw text expands at most once to `size` characters (an upper bound:
        # references inside other entities' values are counted twice)
        self._total += size * self._data.count(b"&" + name.encode("utf-8", "replace") + b";")
        if size > MAX_ENTITY_EXPANSION or self._total > MAX_ENTITY_EXPANSION:
            raise SvgError("unsafe_xml", f"unsafe XML: entity {name!r} expands past {MAX_ENTITY_EXPANSION:,} "
                                         "characters (an entity-expansion bomb?)")


# byte order marks, and the first bytes of '<?' without one (XML 1.0 appendix F)
_BOMS = ((b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\xef\xbb\xbf", "utf-8"),
         (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"))
_NO_BOM = ((b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"), (b"\x00<\x00?", "utf-16-be"),
           (b"<\x00?\x00", "utf-16-le"))
_DECLARED = re.compile(rb"^\s*<\?xml[^>]*?\sencoding\s*=\s*[\"']([^\"']*)[\"']")
_DECLARATION_ENCODING = re.compile(r"^(\s*<\?xml[^>]*?)\sencoding\s*=\s*[\"'][^\"']*[\"']")


def _as_utf8(data: bytes) -> bytes:
    """The document as UTF-8 without a byte order mark (expat reads only UTF-8, UTF-16 and Latin-1, and
    fails on a declared Shift_JIS, EUC-JP, GB2312, Big5, UTF-32, ...): decoded by Python's codec for
    its byte order mark or its declared encoding, re-encoded, and the declaration's encoding removed."""
    codec, skip = None, 0
    for mark, name in _BOMS:
        if data.startswith(mark):
            codec, skip = name, len(mark)
            break
    else:
        for start, name in _NO_BOM:
            if data.startswith(start):
                codec = name
                break
    if codec is None:
        declared = _DECLARED.match(data[:1024])
        if declared is None:
            return data  # UTF-8, XML's default
        name = declared.group(1).decode("ascii", "replace")
        try:
            codec = codecs.lookup(name).name
        except LookupError:
            raise SvgError("unreadable_file", f"the XML declaration names an encoding Python does not know "
                                              f"({name!r}); save the file as UTF-8") from None
        if codec in ("utf-8", "ascii"):
            return data
    try:
        text = data[skip:].decode(codec)
    except UnicodeDecodeError as e:
        raise SvgError("unreadable_file", f"not valid {codec} text (byte {e.start + skip}); save the file as "
                                          "UTF-8") from None
    return _DECLARATION_ENCODING.sub(r"\1", text.removeprefix("\ufeff"), count=1).encode("utf-8")


def parse_xml(data: bytes) -> ET.Element:
    """Parse an SVG document safely (bounded entities, no external ones) -> its root element. Any
    encoding Python can decode is read (see `_as_utf8`)."""
    data = _as_utf8(data)
    parser = _BoundedEntityParser(data)
    try:
        parser.feed(data)
        root = parser.close()
    except ET.ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else None
        raise SvgError("unreadable_file", f"not well-formed XML ({_strip_position(str(e))})", line) from None
    except DefusedXmlException as e:
        raise SvgError("unsafe_xml", f"unsafe XML: {e}") from None
    except (ValueError, LookupError) as e:  # what expat itself may still refuse
        raise SvgError("unreadable_file", f"cannot read it as XML ({e})") from None
    if _local(root.tag) != "svg":
        raise SvgError("unreadable_file", f"not an SVG document (the root element is <{_local(root.tag)}>)")
    return root


def _strip_position(message: str) -> str:
    return re.sub(r": line \d+, column \d+$", "", message)


# ---------------------------------------------------------------------------------------------------
# ElementTree pre-pass: make the tree mean to svgelements what it means to a browser


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _prepare(root: ET.Element, max_cost: int = Limits.svg_cost) -> None:
    """Rewrite the tree in place so that svgelements draws what a browser draws.

    - elements in a foreign namespace or unknown to SVG, `<text>`, and subtrees with `opacity` 0 go;
      so do the children of shapes, and shapes a browser does not render: a `path` whose data does
      not start with a moveto, a `rect` without a positive width and height, a `circle` without a
      positive `r`, an `ellipse` without a positive `rx` or `ry` (SVG 2: a missing one is the other);
    - `em`/`ex`/`rem` and `%` lengths become user units (svgelements reads `2em` as 2 and resolves
      some percentages against the wrong side); a length in another unit is invalid and dropped;
    - `<switch>` keeps the one child a browser would pick;
    - never-drawn containers (`<mask>`, `<marker>`, `<symbol>`, ...) move into a `<defs>`, where
      `<use>` still finds them; `<style>` moves to the front, since CSS applies to the whole document;
    - `<use>` cycles are cut and the inlined size is bounded.
    """
    _check_cost(root, max_cost)  # first: the walk below copies <symbol>s into the <use>s of them
    state = _PrepareState(root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else "",
                          {el.get("id"): el for el in root.iter() if el.get("id") is not None})
    font_size = _font_size(root, DEFAULT_FONT_SIZE)
    _resolve_lengths(root, font_size, None)  # the root's own percentages refer to the window: left alone
    _prepare_children(root, font_size, _viewport(root, None), False, "", state)
    if state.moved:
        defs = root.makeelement(state.ns + "defs", {})  # (defusedxml builds pure-Python elements: no SubElement)
        defs.extend(state.moved)
        root.append(defs)
    for i, style in enumerate(state.styles):
        root.insert(i, style)


@dataclass
class _PrepareState:
    ns: str                                                  # "{http://www.w3.org/2000/svg}" or ""
    by_id: dict                                              # id -> element
    moved: list = field(default_factory=list)                # never-drawn containers, for the <defs>
    styles: list = field(default_factory=list)               # <style> elements, for the front
    viewports: int = 0                                       # nested viewports marked so far


def _prepare_children(el: ET.Element, font_size: float, viewport: tuple[float, float] | None, in_defs: bool,
                      clips: str, state: _PrepareState) -> None:
    ns = state.ns
    for child in list(el):
        tag = child.tag
        name = _local(tag)
        if not isinstance(tag, str) or tag != ns + name or name not in _KNOWN or _invisible(child):
            el.remove(child)  # comments, processing instructions, foreign, unknown, text, opacity 0
            continue
        if name == "style":
            el.remove(child)
            state.styles.append(child)
            continue
        if name in _NEVER_DRAWN and not in_defs:
            el.remove(child)
            state.moved.append(child)
        size = _font_size(child, font_size)
        _resolve_lengths(child, size, viewport)
        if name == "use":
            inlined = _inline_symbol(child, state)
            if inlined is not None:
                el.insert(list(el).index(child), inlined)
                el.remove(child)
                child, name = inlined, "g"
        if name in _SHAPES:
            for grandchild in list(child):
                child.remove(grandchild)  # a shape's children are never drawn
            if not _renders(child, name):
                el.remove(child)
            continue
        if name == "switch":
            _choose_switch_child(child)
        inner_clips = clips
        if name == "svg":
            if str(_declared(child, "overflow") or "hidden").strip() not in ("visible", "auto"):
                inner_clips = _mark_viewport(el, child, clips, state)
            x, y = _number(child.get("x"), signed=True) or 0.0, _number(child.get("y"), signed=True) or 0.0
            if _viewbox(child) is None and (x or y):
                # svgelements ignores x/y of a nested <svg> without a viewBox
                position = f"translate({x!r},{y!r})"
                child.set("transform", f"{child.get('transform', '')} {position}".strip())
                child.attrib.pop("x", None)
                child.attrib.pop("y", None)
        inner = _viewport(child, viewport) if name in ("svg", "symbol") else viewport
        _prepare_children(child, size, inner, in_defs or name == "defs" or name in _NEVER_DRAWN, inner_clips, state)


def _inline_symbol(use: ET.Element, state: _PrepareState) -> ET.Element | None:
    """A `<use>` of a `<symbol>` as the `<g>` + `<svg>` it stands for (svgelements ignores the symbol's
    viewBox and the use's width and height); None for any other `<use>`."""
    symbol = state.by_id.get(_href(use))
    if symbol is None or _local(symbol.tag) != "symbol":
        return None
    skip = {"x", "y", "width", "height", "href", "{http://www.w3.org/1999/xlink}href", "id"}
    group = use.makeelement(state.ns + "g", {k: v for k, v in use.attrib.items() if k not in skip})
    x, y = _number(use.get("x"), signed=True) or 0.0, _number(use.get("y"), signed=True) or 0.0
    if x or y:
        group.set("transform", f"{use.get('transform', '')} translate({x!r},{y!r})".strip())
    viewport = {k: v for k, v in symbol.attrib.items() if k not in skip}
    viewport.update(width=use.get("width", "100%"), height=use.get("height", "100%"))
    inner = use.makeelement(state.ns + "svg", viewport)
    inner.extend(copy.deepcopy(list(symbol)))
    group.append(inner)
    return group


def _mark_viewport(parent: ET.Element, svg: ET.Element, clips: str, state: _PrepareState) -> str:
    """Put an invisible `<rect>` with a nested `<svg>`'s viewport before it (so svgelements computes
    where the viewport lies) and tag the `<svg>` with the viewports its content is clipped to."""
    key = str(state.viewports)
    state.viewports += 1
    marker = parent.makeelement(state.ns + "rect", {
        "x": svg.get("x", "0"), "y": svg.get("y", "0"), "width": svg.get("width", "100%"),
        "height": svg.get("height", "100%"), "fill": "none", "stroke": "none", _VIEWPORT_ATTR: key})
    if svg.get("transform"):
        marker.set("transform", svg.get("transform"))
    parent.insert(list(parent).index(svg), marker)
    clips = f"{clips} {key}".strip()
    svg.set(_CLIP_ATTR, clips)
    return clips


def _renders(shape: ET.Element, name: str) -> bool:
    """False for a shape that a browser does not render (missing, zero or negative sizes, bad path data)."""
    if name == "path":
        return shape.get("d", "").lstrip().startswith(("M", "m"))  # an error at the first command
    if name == "rect":
        for key in ("rx", "ry"):  # a negative or invalid radius is "auto"
            if key in shape.attrib and _number(shape.get(key)) is None:
                del shape.attrib[key]
        return _positive(shape.get("width")) and _positive(shape.get("height"))
    if name == "circle":
        return _positive(shape.get("r"))
    if name == "ellipse":
        for key in ("rx", "ry"):  # a negative or invalid radius is "auto"
            if key in shape.attrib and _number(shape.get(key)) is None:
                del shape.attrib[key]
        rx, ry = shape.get("rx", shape.get("ry")), shape.get("ry", shape.get("rx"))
        if rx is None:
            return False
        shape.set("rx", rx)
        shape.set("ry", ry)
        return _positive(rx) and _positive(ry)
    return True


def _number(value: str | None, signed: bool = False) -> float | None:
    """A length in absolute units -> px; None when missing, invalid or (unless `signed`) negative."""
    m = _LENGTH_RE.match(value) if value is not None else None
    if not m or m.group(2).lower() not in _ABS_UNITS or (float(m.group(1)) < 0 and not signed):
        return None
    return float(m.group(1)) * _ABS_UNITS[m.group(2).lower()]


def _positive(value: str | None) -> bool:
    number = _number(value)
    return number is not None and number > 0


def _viewport(svg: ET.Element, parent: tuple[float, float] | None) -> tuple[float, float] | None:
    """The size of the user space an `<svg>` (or `<symbol>`) sets up for its children: its viewBox,
    else its width and height (default 100% of the parent's); None when unknown."""
    box = _viewbox(svg)
    if box is not None:
        return box
    width, height = _number(svg.get("width", "100%")), _number(svg.get("height", "100%"))
    if width is not None and height is not None:  # (percentages were resolved against the parent already)
        return width, height
    return parent


def _viewbox(svg: ET.Element) -> tuple[float, float] | None:
    """(width, height) of a valid viewBox, else None."""
    try:
        parts = [float(v) for v in svg.get("viewBox", "").replace(",", " ").split()]
    except ValueError:
        return None
    return (parts[2], parts[3]) if len(parts) == 4 and parts[2] > 0 and parts[3] > 0 else None


def _invisible(el: ET.Element) -> bool:
    """opacity 0 (attribute or inline style) hides the element and all it holds."""
    value = _declared(el, "opacity")
    if value is None:
        return False
    try:
        v = value.strip()
        return (float(v[:-1]) / 100 if v.endswith("%") else float(v)) <= 0
    except ValueError:
        return False


def _declared(el: ET.Element, key: str) -> str | None:
    """A presentation attribute's value, an inline `style` declaration taking precedence."""
    value = el.get(key)
    style = el.get("style")
    if style and key in style:
        for decl in style.split(";"):
            k, _, v = decl.partition(":")
            if k.strip() == key:
                value = v
    return value


def _font_size(el: ET.Element, inherited: float) -> float:
    """The element's computed font-size in px (attribute or inline style; relative to the parent's)."""
    value = _declared(el, "font-size")
    if value is None:
        return inherited
    value = value.strip().lower()
    if value in _FONT_KEYWORDS:
        return _FONT_KEYWORDS[value]
    if value == "larger":
        return inherited * 1.2
    if value == "smaller":
        return inherited / 1.2
    m = _LENGTH_RE.match(value)
    if not m:
        return inherited
    number, unit = float(m.group(1)), m.group(2).lower()
    if unit in _ABS_UNITS:
        return number * _ABS_UNITS[unit]
    if unit == "%":
        return inherited * number / 100
    if unit in _FONT_UNITS:
        return number * _FONT_UNITS[unit] * (DEFAULT_FONT_SIZE if unit == "rem" else inherited)
    return inherited


def _resolve_lengths(el: ET.Element, font_size: float, viewport: tuple[float, float] | None) -> None:
    """Font-relative and percentage lengths -> user units; lengths in other unknown units -> dropped."""
    for key in _LENGTH_ATTRS.intersection(el.attrib):
        value = _resolve_length(el.attrib[key], key, font_size, viewport)
        if value is None:
            del el.attrib[key]
        else:
            el.attrib[key] = value
    style = el.get("style")
    if style:
        decls, changed = [], False
        for decl in style.split(";"):
            key, sep, value = decl.partition(":")
            key = key.strip()
            if sep and key in _LENGTH_ATTRS:
                resolved = _resolve_length(value, key, font_size, viewport)
                if resolved != value:
                    changed = True
                    if resolved is None:
                        continue
                    decl = f"{key}:{resolved}"
            decls.append(decl)
        if changed:
            el.set("style", ";".join(decls))


def _resolve_length(value: str, key: str, font_size: float, viewport: tuple[float, float] | None) -> str | None:
    m = _LENGTH_RE.match(value)
    if not m:
        return value  # lists and keywords: leave them to svgelements
    number, unit = float(m.group(1)), m.group(2).lower()
    if unit == "q":  # quarter-millimetres: valid CSS that svgelements does not know
        return repr(number * _ABS_UNITS[unit])
    if unit in _ABS_UNITS:
        return value
    if unit in _FONT_UNITS:
        return repr(number * _FONT_UNITS[unit] * (DEFAULT_FONT_SIZE if unit == "rem" else font_size))
    if unit == "%":
        if viewport is None:
            return value
        w, h = viewport
        basis = w if key in _X_LENGTHS else h if key in _Y_LENGTHS else math.sqrt((w * w + h * h) / 2)
        return repr(number / 100 * basis)
    return None  # ch, lh, vw, ... or a typo ("44mmx"): invalid, as if not specified


def _choose_switch_child(switch: ET.Element) -> None:
    """Keep the first child whose conditions hold (no extensions are supported; the language is English)."""
    chosen = None
    for child in switch:
        if not isinstance(child.tag, str) or _local(child.tag) in _NOT_SWITCH_CHOICES:
            continue
        if "requiredExtensions" in child.attrib:
            continue
        languages = child.get("systemLanguage")
        if languages is not None and not any(lang.strip().lower().split("-")[0] == "en"
                                             for lang in languages.split(",")):
            continue
        chosen = child
        break
    for child in list(switch):
        if child is not chosen:
            switch.remove(child)


def _href(el: ET.Element) -> str | None:
    url = el.get("href", el.get("{http://www.w3.org/1999/xlink}href"))
    return url[1:] if url and url.startswith("#") else None


def _weight(el: ET.Element) -> int:
    """An element's own parsing cost: ELEMENT_COST plus the text of its attributes and content."""
    return ELEMENT_COST + sum(len(k) + len(v) for k, v in el.attrib.items()) + len(el.text or "")


def _check_cost(root: ET.Element, max_cost: int) -> None:
    """Bound the document's parsing cost, with every `<use>` counted as a copy of what it refers to
    (svgelements inlines them recursively, so a few nested `<use>`s of `<use>`s cost exponentially),
    and remove the `<use>` elements that refer to their own ancestors (not rendered).

    The cost is the sum of `_weight` over the elements, an element copied by `<use>` counting
    USE_COPY_COST times; measured, svgelements parses 0.3-0.8 million units a second (path data is
    the slowest).
    """
    # expanded(el): the units of el's subtree with every <use> inlined; what that adds to the document's
    # own units are the copies, which count USE_COPY_COST times
    own = sum(_weight(el) for el in root.iter())
    if own > max_cost:
        raise SvgError("too_large", f"the document's parsing cost, {own:,}, is over the SVG bound of {max_cost:,} "
                                    "(raise it with --limit svg-cost=N)")
    max_expanded = own + int((max_cost - own) / USE_COPY_COST)
    by_id = {el.get("id"): el for el in root.iter() if el.get("id") is not None}
    uses = [el for el in root.iter() if _local(el.tag) == "use" and _href(el) is not None]
    if not uses:
        return
    memo: dict[int, int] = {}
    active: set[int] = set()
    cyclic: list[ET.Element] = []

    def expanded(el: ET.Element) -> int:
        key = id(el)
        if key in memo:
            return memo[key]
        active.add(key)
        n = _weight(el)
        for child in el:
            n += expanded(child)
        if _local(el.tag) == "use":
            target = by_id.get(_href(el))
            if target is not None:
                if id(target) in active:
                    cyclic.append(el)
                else:
                    n += expanded(target)
        active.discard(key)
        memo[key] = n
        if n > max_expanded:
            raise SvgError("unsafe_xml", f"unsafe SVG: <use> references expand the document past the SVG bound of "
                                         f"{max_cost:,} (a <use> bomb? raise it with --limit svg-cost=N)")
        return n

    try:
        expanded(root)
    except RecursionError:
        raise SvgError("unreadable_file", "elements or <use> references nested too deeply") from None
    if cyclic:
        parent = {c: p for p in root.iter() for c in p}
        for el in cyclic:
            if el in parent:
                parent[el].remove(el)


# ---------------------------------------------------------------------------------------------------
# Shapes and sampling


@dataclass
class _Shape:
    subpaths: list[list]      # per subpath, its svgelements segments (no Move); [] entries are bare moves
    starts: list[tuple]       # per subpath, its start point (local)
    matrix: np.ndarray        # (2, 2) linear part of the CTM (x' = A @ x + b)
    offset: np.ndarray        # (2,)
    dots: bool                # zero-length subpaths are drawn as dots (a round or square cap)
    clips: list               # (4, 2) viewport parallelograms (source units) the shape is clipped to
    close: bool               # fill-only: subpaths are closed, as the filled area's outline is


def _visible_paint(paint) -> bool:
    return paint is not None and paint.value is not None and paint.alpha > 0


def _drawn_shapes(doc, include_fills: bool) -> tuple[list[_Shape], int]:
    """The shapes a browser paints, in document order, and how many fill-only shapes were skipped."""
    shapes: list[_Shape] = []
    fill_only = 0
    if not isinstance(doc, se.SVG):
        return shapes, fill_only
    root_clip = _root_viewport(doc)
    viewports: dict[str, np.ndarray] = {}
    for e in doc.elements():
        if not isinstance(e, se.Shape):
            continue
        if _VIEWPORT_ATTR in e.values:
            viewports[e.values[_VIEWPORT_ATTR]] = _transformed_rect(e)
            continue
        if str(e.values.get("visibility", "visible")).strip().lower() in ("hidden", "collapse"):
            continue
        width = e.stroke_width  # a number, unless in a unit svgelements cannot resolve (then assume drawn)
        stroked = _visible_paint(e.stroke) and not (isinstance(width, (int, float)) and width <= 0)
        if not stroked:
            if not _visible_paint(e.fill):
                continue
            fill_only += 1
            if not include_fills:
                continue
        m = e.transform
        matrix = np.array([[m.a, m.c], [m.b, m.d]], dtype=np.float64)
        if not np.isfinite(matrix).all() or abs(m.a * m.d - m.b * m.c) < 1e-300:
            continue  # a non-invertible transform disables rendering
        segments = e if isinstance(e, se.Path) else e.segments(transformed=False)
        subpaths, starts = _split_subpaths(segments)
        if subpaths:
            cap = str(e.values.get("stroke-linecap", "butt")).strip().lower()
            # a viewport svgelements found degenerate (zero size) has no marker: nothing in it is drawn
            clips = [viewports.get(k, _EMPTY) for k in str(e.values.get(_CLIP_ATTR, "")).split()] + root_clip
            shapes.append(_Shape(subpaths, starts, matrix, np.array([m.e, m.f], dtype=np.float64),
                                 stroked and cap in ("round", "square"), clips, not stroked))
    return shapes, fill_only


_EMPTY = np.zeros((4, 2))


def _root_viewport(doc) -> list[np.ndarray]:
    """The outermost viewport as a clip polygon (nothing outside the canvas is seen); none when the
    document sets neither a size nor a viewBox (its canvas is whatever displays it)."""
    attrs = doc.values.get("attributes", {}) if isinstance(doc.values.get("attributes"), dict) else {}
    if doc.viewbox is None and not ("width" in attrs and "height" in attrs):
        return []
    w, h = float(doc.width), float(doc.height)
    return [np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])]


def _transformed_rect(e) -> np.ndarray:
    m = e.transform
    x, y, w, h = float(e.x), float(e.y), float(e.width), float(e.height)
    corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
    return corners @ np.array([[m.a, m.c], [m.b, m.d]]).T + np.array([m.e, m.f])


def _clip(polyline: np.ndarray, polygon: np.ndarray) -> list[np.ndarray]:
    """The pieces of a (k, 2) polyline inside a convex polygon (its corners in order, either way round)."""
    edges = polygon[[1, 2, 3, 0]] - polygon
    area2 = float(np.sum(polygon[:, 0] * edges[:, 1] - polygon[:, 1] * edges[:, 0]))
    if area2 == 0:
        return []
    # per edge and point: a signed area, >= 0 inside; points on the border (to rounding) count as inside
    sign = math.copysign(1.0, area2)
    tol = 1e-9 * np.hypot(edges[:, 0], edges[:, 1]) * (1.0 + float(np.abs(polygon).max()))
    d = sign * (edges[:, 0, None] * (polyline[None, :, 1] - polygon[:, 1, None])
                - edges[:, 1, None] * (polyline[None, :, 0] - polygon[:, 0, None]))
    if (d >= -tol[:, None]).all():
        return [polyline]  # the usual case: all inside
    pieces = [polyline]
    for a, edge, t in zip(polygon, edges, tol):
        kept = []
        for p in pieces:
            kept += _inside_runs(p, sign * (edge[0] * (p[:, 1] - a[1]) - edge[1] * (p[:, 0] - a[0])), t)
        pieces = kept
    return pieces


def _inside_runs(p: np.ndarray, d: np.ndarray, tol: float) -> list[np.ndarray]:
    """The runs of p where d >= -tol, each cut exactly where the polyline crosses d = 0."""
    inside = d >= -tol
    if inside.all():
        return [p]
    if not inside.any():
        return []
    runs = []
    start, entry = (0, None) if inside[0] else (None, None)
    for i in np.flatnonzero(inside[1:] != inside[:-1]):
        cross = p[i] + d[i] / (d[i] - d[i + 1]) * (p[i + 1] - p[i])
        if inside[i]:  # leaving
            run = p[start:i + 1]
            runs.append(np.vstack([entry[None], run, cross[None]]) if entry is not None else
                        np.vstack([run, cross[None]]))
            start, entry = None, None
        else:  # entering
            start, entry = i + 1, cross
    if start is not None:
        run = p[start:]
        runs.append(np.vstack([entry[None], run]) if entry is not None else run)
    return runs


def _split_subpaths(segments) -> tuple[list[list], list[tuple]]:
    """Segments -> subpaths: a new one after every Move and after every Close (the SVG rule)."""
    subpaths: list[list] = []
    starts: list[tuple] = []
    current: list | None = None
    for seg in segments:
        if isinstance(seg, se.Move):
            current = []
            subpaths.append(current)
            starts.append((seg.end.x, seg.end.y))
            continue
        if current is None:  # drawing continues after a Close: a new subpath from the closed start
            if seg.start is None:
                continue
            current = []
            subpaths.append(current)
            starts.append((seg.start.x, seg.start.y))
        current.append(seg)
        if isinstance(seg, se.Close):
            current = None
    return subpaths, starts


def _control_bbox(shapes: list[_Shape]) -> np.ndarray:
    """(2, 2) [min, max] of every shape's control points (arcs: their full ellipse's box), transformed.
    Contains the drawn geometry, so it bounds the drawing's extent from above."""
    boxes = []
    for shape in shapes:
        xs, ys = [], []
        for start, segs in zip(shape.starts, shape.subpaths):
            xs.append(start[0])
            ys.append(start[1])
            for seg in segs:
                if isinstance(seg, se.Arc):
                    r = max(abs(seg.rx), abs(seg.ry))
                    xs += [seg.center.x - r, seg.center.x + r]
                    ys += [seg.center.y - r, seg.center.y + r]
                    continue
                for p in (seg.start, getattr(seg, "control1", None) or getattr(seg, "control", None),
                          getattr(seg, "control2", None), seg.end):
                    if p is not None:
                        xs.append(p.x)
                        ys.append(p.y)
        corners = np.array([[min(xs), min(ys)], [min(xs), max(ys)], [max(xs), min(ys)], [max(xs), max(ys)]])
        boxes.append(corners @ shape.matrix.T + shape.offset)
    pts = np.concatenate(boxes)
    return np.array([pts.min(axis=0), pts.max(axis=0)])


def _sample(shapes: list[_Shape], size: float, spacing: float, limits: Limits | None = None) -> list[np.ndarray]:
    """Every subpath of every shape as a (k, 2) polyline in source units, curves at most one step apart
    in the final frame (see the module docstring)."""
    if not shapes:
        return []
    limits = limits or Limits()
    if size <= 0:
        return _sample_at(shapes, spacing, limits)
    box = _control_bbox(shapes)
    extent_bound = float((box[1] - box[0]).max())
    if not math.isfinite(extent_bound):
        return _sample_at(shapes, 1.0, limits)  # non-finite coordinates; svg_polylines reports them
    # The control points bound the extent from above, so the final frame may be larger than this
    # estimate: sampling EXTENT_SLACK times finer covers an overestimate up to that factor.
    step = spacing * max(extent_bound, 1e-12) / size / EXTENT_SLACK
    polylines = _sample_at(shapes, step, limits)
    if polylines:
        extent = float(np.ptp(np.concatenate(polylines), axis=0).max())
        if 0 < extent and extent_bound > EXTENT_SLACK * extent:
            # control points overshoot the drawing a lot (a flat arc of a huge ellipse...): sample again
            # at the step of the true extent
            polylines = _sample_at(shapes, spacing * extent / size, limits)
    return polylines


def _sample_at(shapes: list[_Shape], step: float, limits: Limits) -> list[np.ndarray]:
    """Every subpath as a polyline, consecutive points at most `step` apart (source units). Each
    curve's point count is checked against `limits` before its points are made."""
    out: list[np.ndarray] = []
    total = 0
    for shape in shapes:
        A, b = shape.matrix, shape.offset
        stretch = _largest_singular_value(A) or 1.0  # local -> source lengths
        local_step = step / stretch
        for start, segs in zip(shape.starts, shape.subpaths):
            if not segs:
                continue  # a bare moveto draws nothing
            xs, ys = [start[0]], [start[1]]
            for seg in segs:
                if isinstance(seg, se.Close) and (seg.end.x, seg.end.y) == (xs[-1], ys[-1]):
                    continue  # closing onto the point the subpath is already at draws nothing
                if isinstance(seg, (se.Line, se.Close)):
                    xs.append(seg.end.x)
                    ys.append(seg.end.y)
                    continue
                room = min(limits.points_per_stroke - len(xs), limits.points_per_drawing - total - len(xs))
                xy = _sample_curve(seg, local_step, room)
                if xy is None:
                    _too_many_points(limits, limits.points_per_stroke - len(xs) == room)
                xs += xy[:, 0].tolist()
                ys += xy[:, 1].tolist()
            total += len(xs)
            if len(xs) > limits.points_per_stroke or total > limits.points_per_drawing:  # straight segments
                _too_many_points(limits, len(xs) > limits.points_per_stroke)
            if shape.close and (xs[-1], ys[-1]) != (xs[0], ys[0]):
                xs.append(xs[0])
                ys.append(ys[0])
            local = np.column_stack([xs, ys])
            if not np.ptp(local, axis=0).any() and not shape.dots:
                continue  # zero length: only a round or square cap paints it (a dot of its points, as written)
            pieces = [local @ A.T + b]
            for polygon in shape.clips:
                pieces = [q for piece in pieces for q in _clip(piece, polygon)]
            out += pieces
    return out


def _too_many_points(limits: Limits, stroke: bool) -> None:
    if stroke:
        raise SvgError("too_many_points", f"a stroke flattens to more than {limits.points_per_stroke:,} points "
                                          "(raise the bound with --limit points-per-stroke=N)")
    raise SvgError("too_many_points", f"the drawing flattens to more than {limits.points_per_drawing:,} points "
                                      "(raise the bound with --limit points-per-drawing=N)")


def _largest_singular_value(m: np.ndarray) -> float:
    """Of a 2x2 matrix, in closed form (np.linalg.norm(m, 2) costs an SVD per shape)."""
    (a, c), (b, d) = m
    q = a * a + b * b + c * c + d * d
    det = a * d - b * c
    return math.sqrt(max(0.0, (q + math.sqrt(max(0.0, q * q - 4 * det * det))) / 2))


def _sample_curve(seg, step: float, max_points: int = MAX_POINTS_PER_SEGMENT) -> np.ndarray | None:
    """(n, 2) points of a curve segment at t in (0, 1], at most `step` apart (local units); None when that
    takes more than `max_points` points (nothing is made then)."""
    if isinstance(seg, se.CubicBezier):
        p = np.array([[seg.start.x, seg.start.y], [seg.control1.x, seg.control1.y],
                      [seg.control2.x, seg.control2.y], [seg.end.x, seg.end.y]])
        speed = 3.0 * np.hypot(*np.diff(p, axis=0).T).max()  # |B'(t)| <= 3 max |P[i+1] - P[i]|
    elif isinstance(seg, se.QuadraticBezier):
        p = np.array([[seg.start.x, seg.start.y], [seg.control.x, seg.control.y], [seg.end.x, seg.end.y]])
        speed = 2.0 * np.hypot(*np.diff(p, axis=0).T).max()
    elif isinstance(seg, se.Arc):
        p = None
        speed = abs(seg.sweep) * max(abs(seg.rx), abs(seg.ry))  # the parameter is the ellipse's angle
    else:  # an unknown segment type: its end point
        return np.array([[seg.end.x, seg.end.y]])
    n = int(min(max(math.ceil(speed / step) if step > 0 and math.isfinite(speed) else 1, 1),
                MAX_POINTS_PER_SEGMENT))
    if n > max_points:
        return None
    t = np.arange(1, n + 1) / n
    if p is None:
        return np.asarray(seg.npoint(t), dtype=np.float64).reshape(-1, 2)
    s = 1.0 - t
    if len(p) == 4:
        w = np.column_stack([s ** 3, 3 * s * s * t, 3 * s * t * t, t ** 3])
    else:
        w = np.column_stack([s * s, 2 * s * t, t * t])
    return w @ p
