"""SVG source: hand-made documents, one feature each (geometry checked against hand-derived values)."""
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sketchprep.sources import KIND_SAMPLED, order_key
from sketchprep.sources.svg import MAX_ENTITY_EXPANSION, SvgError, read_files, svg_polylines

NS = 'xmlns="http://www.w3.org/2000/svg"'
XLINK = 'xmlns:xlink="http://www.w3.org/1999/xlink"'


def svg(body: str, attrs: str = "") -> bytes:
    """A document without size or viewBox: user units are px and nothing is clipped."""
    return f"<svg {NS} {XLINK} {attrs}>{body}</svg>".encode()


def strokes(body: str, attrs: str = "", **kw) -> list[np.ndarray]:
    """The strokes of a document, in source units (size=0: curves sampled at 1 unit)."""
    kw.setdefault("size", 0)
    return svg_polylines(svg(body, attrs), **kw)


def path(d: str, **kw) -> list[np.ndarray]:
    return strokes(f'<path d="{d}" fill="none" stroke="black"/>', **kw)


def cubic(p0, p1, p2, p3, n=4001) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2, p3 = (np.asarray(p, float) for p in (p0, p1, p2, p3))
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3


def quad(p0, p1, p2, n=4001) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2 = (np.asarray(p, float) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def dist_to(points: np.ndarray, dense: np.ndarray) -> float:
    """Largest distance from any of `points` to the nearest of `dense`."""
    d = np.linalg.norm(points[:, None, :] - dense[None, :, :], axis=2)
    return float(d.min(axis=1).max())


def max_gap(stroke: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(stroke, axis=0), axis=1).max()) if len(stroke) > 1 else 0.0


def same(a: list[np.ndarray], b: list[np.ndarray], atol=1e-9) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and np.allclose(x, y, atol=atol) for x, y in zip(a, b))


# ---------------------------------------------------------------------------------------------------
# Path data


def test_lines_h_v_z_give_exact_vertices():
    (s,) = path("M10 10 H50 V50 L10 50 Z")
    assert s.tolist() == [[10, 10], [50, 10], [50, 50], [10, 50], [10, 10]]


ABSOLUTE = "M10 10 L20 10 H30 V20 C30 30 40 30 40 20 S50 10 50 20 Q55 30 60 20 T70 20 A5 5 0 0 1 80 20 Z"
RELATIVE = "m10 10 l10 0 h10 v10 c0 10 10 10 10 0 s10 -10 10 0 q5 10 10 0 t10 0 a5 5 0 0 1 10 0 z"


def test_every_command_relative_equals_absolute():
    assert same(path(ABSOLUTE), path(RELATIVE))
    (s,) = path(ABSOLUTE)
    assert s[0].tolist() == [10, 10] and s[-1].tolist() == [10, 10]


def test_cubic_points_lie_on_the_curve_and_are_at_most_one_unit_apart():
    (s,) = path("M0 0 C0 100 100 100 100 0")
    assert s[0].tolist() == [0, 0] and np.allclose(s[-1], [100, 0])
    assert dist_to(s, cubic((0, 0), (0, 100), (100, 100), (100, 0))) < 0.05
    assert max_gap(s) <= 1.0 + 1e-9


def test_smooth_cubic_reflects_the_previous_control_point():
    (s,) = path("M0 0 C0 10 10 10 10 0 S20 -10 20 0")
    second = s[s[:, 0] > 10 + 1e-9]
    assert dist_to(second, cubic((10, 0), (10, -10), (20, -10), (20, 0))) < 0.02
    assert second[:, 1].min() < -7  # below the axis: the reflected control point pulled it there


def test_quadratic_and_smooth_quadratic():
    (s,) = path("M0 0 Q10 20 20 0 T40 0")
    first, second = s[s[:, 0] <= 20], s[s[:, 0] >= 20]
    assert dist_to(first, quad((0, 0), (10, 20), (20, 0))) < 0.02
    assert dist_to(second, quad((20, 0), (30, -20), (40, 0))) < 0.02


def test_arc_is_a_half_circle_with_the_right_sweep():
    (s,) = path("M0 50 A50 50 0 0 1 100 50")
    assert np.allclose(np.linalg.norm(s - [50, 50], axis=1), 50)
    assert s[:, 1].min() == pytest.approx(0, abs=1e-3)  # sweep 1 goes through (50, 0), y down
    assert np.allclose(s[-1], [100, 50])
    (t,) = path("M0 50 A50 50 0 0 0 100 50")
    assert t[:, 1].max() == pytest.approx(100, abs=1e-3)


def test_arc_radius_too_small_is_scaled_up():
    (s,) = path("M0 0 A1 1 0 0 1 20 0")  # radius 1 cannot span 20: it becomes 10
    assert np.allclose(np.linalg.norm(s - [10, 0], axis=1), 10)


def test_implicit_repeats():
    assert same(path("M10 10 20 10 20 20"), path("M10 10 L20 10 L20 20"))
    assert same(path("m10 10 10 0 0 10"), path("M10 10 l10 0 l0 10"))
    assert same(path("M0 0 C0 10 10 10 10 0 10 -10 20 -10 20 0"), path("M0 0 C0 10 10 10 10 0 C10 -10 20 -10 20 0"))
    assert same(path("M0 0 H10 20 V5 10"), path("M0 0 H10 H20 V5 V10"))


def test_packed_arc_flags_and_minified_numbers():
    assert same(path("M10 50a20 20 0 0120 0"), path("M10 50 a20 20 0 0 1 20 0"))
    assert same(path("M1.35.09L-.42 5"), path("M1.35 0.09 L-0.42 5"))
    assert same(path("M-.5.5l1e1-1E1+1e+1,0"), path("M-0.5 0.5 l10 -10 l10 0"))


def test_each_subpath_is_a_stroke():
    assert len(path("M0 0 L10 0 M20 0 L30 0 m0 10 l10 0")) == 3
    # drawing on after Z starts a new subpath at the closed subpath's start
    a, b = path("M0 0 L10 0 L10 10 Z L5 20")
    assert a[-1].tolist() == [0, 0] and b.tolist() == [[0, 0], [5, 20]]


def test_path_data_error_draws_up_to_the_error():
    (s,) = path("M0 0 L10 0 L10 10 L 5")  # a lone coordinate: the path stops before it
    assert s.tolist() == [[0, 0], [10, 0], [10, 10]]


def test_path_without_moveto_draws_nothing_but_the_file_still_converts():
    result = strokes('<path d="L10 10 20 20" stroke="black"/><path d="M0 0 L5 5" stroke="black"/>')
    assert [s.tolist() for s in result] == [[[0, 0], [5, 5]]]


def test_zero_length_subpath_is_a_dot_only_with_round_or_square_caps():
    dots = strokes('<path d="M10 10 Z M20 20 L20 20" stroke="black" stroke-linecap="round"/>'
                   '<path d="M0 0 L1 1" stroke="black"/>')
    # a dot keeps the points it is written with (a close onto its own point adds none); quantising merges them
    assert [d.tolist() for d in dots] == [[[10, 10]], [[20, 20], [20, 20]], [[0, 0], [1, 1]]]
    assert len(strokes('<path d="M10 10 Z" stroke="black"/><path d="M0 0 L1 1" stroke="black"/>')) == 1
    assert len(path("M10 10 M20 20 L30 30")) == 1  # a bare moveto draws nothing


# ---------------------------------------------------------------------------------------------------
# Basic shapes


def test_line_polyline_polygon():
    a, b, c = strokes('<g stroke="black" fill="none"><line x1="1" y1="2" x2="30" y2="4"/>'
                      '<polyline points="0,0 10,0 10,10"/><polygon points="0 0,10 0 10 10"/></g>')
    assert a.tolist() == [[1, 2], [30, 4]]
    assert b.tolist() == [[0, 0], [10, 0], [10, 10]]
    assert c.tolist() == [[0, 0], [10, 0], [10, 10], [0, 0]]  # closed


def test_rect_plain_and_rounded():
    (plain,) = strokes('<rect x="10" y="20" width="30" height="40" stroke="black"/>')
    assert plain.tolist() == [[10, 20], [40, 20], [40, 60], [10, 60], [10, 20]]
    (rounded,) = strokes('<rect x="0" y="0" width="100" height="60" rx="10" stroke="black"/>')
    length = np.linalg.norm(np.diff(rounded, axis=0), axis=1).sum()
    assert length == pytest.approx(2 * (100 + 60) - 8 * 10 + 2 * math.pi * 10, rel=1e-3)
    assert rounded[:, 0].min() == pytest.approx(0) and rounded[:, 1].max() == pytest.approx(60)
    # rx > width/2 is clamped; ry alone sets rx too (auto)
    (clamped,) = strokes('<rect width="20" height="100" rx="50" ry="5" stroke="black"/>')
    (auto,) = strokes('<rect width="20" height="100" rx="10" ry="5" stroke="black"/>')
    assert same([clamped], [auto], atol=1e-6)
    (ry_only,) = strokes('<rect width="40" height="40" ry="10" stroke="black"/>')
    (both,) = strokes('<rect width="40" height="40" rx="10" ry="10" stroke="black"/>')
    assert same([ry_only], [both], atol=1e-6)


def test_circle_and_ellipse():
    (c,) = strokes('<circle cx="50" cy="40" r="30" stroke="black"/>')
    assert np.allclose(np.linalg.norm(c - [50, 40], axis=1), 30)
    assert np.allclose(c[0], c[-1]) and max_gap(c) <= 1.0 + 1e-9
    assert np.ptp(c, axis=0) == pytest.approx([60, 60], abs=1e-3)
    (e,) = strokes('<ellipse cx="50" cy="40" rx="40" ry="10" stroke="black"/>')
    assert np.allclose(((e[:, 0] - 50) / 40) ** 2 + ((e[:, 1] - 40) / 10) ** 2, 1)
    assert np.ptp(e, axis=0) == pytest.approx([80, 20], abs=1e-3)


@pytest.mark.parametrize("shape", ['<rect x="1" y="1" width="10"/>', '<rect width="10" height="-5"/>',
                                   '<rect width="0" height="5"/>', '<circle cx="5" cy="5"/>',
                                   '<circle cx="5" cy="5" r="-1"/>', '<ellipse cx="5" cy="5"/>',
                                   '<ellipse cx="5" cy="5" rx="0" ry="3"/>'])
def test_shapes_a_browser_does_not_render(shape):
    shape = shape.replace("/>", ' stroke="black"/>')
    assert len(strokes(shape + '<line x2="1" stroke="black"/>')) == 1  # only the line


def test_ellipse_missing_radius_uses_the_other():
    (e,) = strokes('<ellipse cx="50" cy="50" ry="20" stroke="black"/>')
    assert np.allclose(np.linalg.norm(e - [50, 50], axis=1), 20)


# ---------------------------------------------------------------------------------------------------
# Structure: use/defs/symbol, groups, nested svg, transforms, viewBox


def test_use_defs_and_symbol():
    body = ('<defs><path id="p" d="M0 0 L10 0" stroke="black"/></defs>'
            '<symbol id="s" viewBox="0 0 10 10"><path d="M0 0 L10 10" stroke="black"/></symbol>'
            '<use href="#p" x="5" y="7"/>'
            '<use xlink:href="#p" transform="translate(100 0)"/>'
            '<use href="#s" x="50" y="50" width="20" height="20"/>'
            '<use href="#s" x="-10" y="80" width="5" height="5"/>')
    a, b, c, d = strokes(body)
    assert a.tolist() == [[5, 7], [15, 7]]
    assert b.tolist() == [[100, 0], [110, 0]]
    assert np.allclose(c, [[50, 50], [70, 70]])  # the symbol's viewBox scales 10 -> 20
    assert np.allclose(d, [[-10, 80], [-5, 85]])


def mat(a, b, c, d, e, f):
    return np.array([[a, c, e], [b, d, f], [0, 0, 1]], float)


def rot(deg, cx=0.0, cy=0.0):
    r = math.radians(deg)
    return mat(1, 0, 0, 1, cx, cy) @ mat(math.cos(r), math.sin(r), -math.sin(r), math.cos(r), 0, 0) @ \
        mat(1, 0, 0, 1, -cx, -cy)


def test_nested_groups_and_svg_with_every_transform():
    body = ('<g transform="translate(50 40) rotate(30)"><g transform="scale(2 .5) skewX(20)">'
            '<svg x="5" y="6" width="40" height="20" viewBox="0 0 20 10" overflow="visible">'
            '<line x1="1" y1="2" x2="8" y2="3" stroke="black" '
            'transform="matrix(1 .2 .3 1 4 5) skewY(10) rotate(15 5 5)"/></svg></g></g>')
    (s,) = strokes(body)
    m = (mat(1, 0, 0, 1, 50, 40) @ rot(30) @ mat(2, 0, 0, .5, 0, 0) @ mat(1, 0, math.tan(math.radians(20)), 1, 0, 0)
         @ mat(2, 0, 0, 2, 5, 6) @ mat(1, .2, .3, 1, 4, 5) @ mat(1, math.tan(math.radians(10)), 0, 1, 0, 0)
         @ rot(15, 5, 5))
    expected = (m @ np.array([[1, 2, 1], [8, 3, 1]], float).T).T[:, :2]
    assert np.allclose(s, expected)


def test_nested_svg_clips_to_its_viewport_unless_overflow_visible():
    line = '<line x1="0" y1="5" x2="100" y2="5" stroke="black"/>'
    (clipped,) = strokes(f'<svg x="10" y="0" width="20" height="10">{line}</svg>')
    assert np.allclose(clipped, [[10, 5], [30, 5]])
    (visible,) = strokes(f'<svg x="10" y="0" width="20" height="10" overflow="visible">{line}</svg>')
    assert np.allclose(visible, [[10, 5], [110, 5]])
    (left,) = strokes(f'<svg x="-10" y="-2" width="20" height="10">{line}</svg>')
    assert np.allclose(left, [[-10, 3], [10, 3]])
    # a line leaving and re-entering the viewport is two strokes
    two = strokes('<svg width="20" height="20"><polyline points="5,5 40,5 40,15 5,15" fill="none" stroke="black"/>'
                  '</svg>')
    assert [s.tolist() for s in two] == [[[5, 5], [20, 5]], [[20, 15], [5, 15]]]


MM = 96 / 25.4


@pytest.mark.parametrize("aspect, start, end", [
    ("", (50 * MM, 0), (100 * MM, 50 * MM)),                          # xMidYMid meet
    ('preserveAspectRatio="none"', (0, 0), (100 * MM, 50 * MM)),
    ('preserveAspectRatio="xMinYMin meet"', (0, 0), (50 * MM, 50 * MM)),
    ('preserveAspectRatio="xMaxYMax meet"', (100 * MM, 0), (150 * MM, 50 * MM)),
    ('preserveAspectRatio="xMinYMin slice"', (0, 0), (50 * MM, 50 * MM)),  # clipped at the viewport's bottom
])
def test_viewbox_preserve_aspect_ratio_and_units(aspect, start, end):
    # a 10x10 viewBox in a 150mm x 50mm viewport; the diagonal (0,0)-(10,10) of the viewBox
    (s,) = strokes('<line x1="0" y1="0" x2="10" y2="10" stroke="black"/>',
                   f'width="150mm" height="50mm" viewBox="0 0 10 10" {aspect}')
    if aspect == 'preserveAspectRatio="none"':
        end = (150 * MM, 50 * MM)
    assert np.allclose(s[0], start) and np.allclose(s[-1], end)


def test_viewbox_offset_and_root_clip():
    (s,) = strokes('<line x1="-200" y1="0" x2="200" y2="0" stroke="black"/>', 'width="100" height="50" viewBox="-50 -25 100 50"')
    assert np.allclose(s, [[0, 25], [100, 25]])


def test_units_on_shape_attributes():
    (s,) = strokes('<line x1="1in" y1="1cm" x2="10mm" y2="12pt" stroke="black"/>')
    assert np.allclose(s, [[96, 96 / 2.54], [10 * MM, 16]])
    (q,) = strokes('<line x1="1pc" x2="40Q" stroke="black"/>')
    assert np.allclose(q, [[16, 0], [10 * MM, 0]])


# ---------------------------------------------------------------------------------------------------
# Paint and visibility


def test_inherited_presentation_attributes_and_css():
    body = ('<style>.ink { stroke: red } .hidden { display: none }</style>'
            '<g stroke="black"><path d="M0 0 L1 0"/><path d="M0 1 L1 1" stroke="none"/></g>'
            '<g style="stroke:black"><path d="M0 2 L1 2"/></g>'
            '<path class="ink" d="M0 3 L1 3"/>'
            '<path stroke="black" style="stroke:none" d="M0 4 L1 4"/>'
            '<path class="ink hidden" d="M0 5 L1 5"/>'
            '<path d="M0 6 L1 6" class="late"/><style>.late { stroke: blue }</style>')
    assert [s[0, 1] for s in strokes(body)] == [0, 2, 3, 6]


@pytest.mark.parametrize("hidden", [
    '<path d="M0 0 L9 9" stroke="black" display="none"/>',
    '<path d="M0 0 L9 9" style="stroke:black;display:none"/>',
    '<g display="none"><path d="M0 0 L9 9" stroke="black"/></g>',
    '<g style="display:none"><g><path d="M0 0 L9 9" stroke="black" display="inline"/></g></g>',
    '<path d="M0 0 L9 9" stroke="black" visibility="hidden"/>',
    '<g visibility="hidden"><path d="M0 0 L9 9" stroke="black"/></g>',
    '<path d="M0 0 L9 9" stroke="none" fill="black"/>',
    '<path d="M0 0 L9 9"/>',                                   # default paint: fill only
    '<path d="M0 0 L9 9" stroke="black" stroke-width="0"/>',
    '<path d="M0 0 L9 9" stroke="transparent"/>',
    '<path d="M0 0 L9 9" stroke="black" stroke-opacity="0"/>',
    '<g opacity="0"><path d="M0 0 L9 9" stroke="black"/></g>',
    '<text x="0" y="9" stroke="black">9</text>',
    '<mask id="m"><path d="M0 0 L9 9" stroke="black"/></mask>',
    '<marker id="k"><path d="M0 0 L9 9" stroke="black"/></marker>',
    '<symbol id="y"><path d="M0 0 L9 9" stroke="black"/></symbol>',
    '<clipPath id="c"><path d="M0 0 L9 9" stroke="black"/></clipPath>',
    '<pattern id="t"><path d="M0 0 L9 9" stroke="black"/></pattern>',
    '<defs><path d="M0 0 L9 9" stroke="black"/></defs>',
    '<random><path d="M0 0 L9 9" stroke="black"/></random>',       # unknown element: not rendered
    '<x:g xmlns:x="http://example.org/x"><path d="M0 0 L9 9" stroke="black"/></x:g>',
    '<rect width="5" height="5" stroke="black" transform="matrix(0 0 0 0 0 0)"/>',
])
def test_hidden_geometry_is_skipped(hidden):
    kept = '<path d="M1 1 L2 2" stroke="black"/>'
    assert [s.tolist() for s in strokes(hidden + kept)] == [[[1, 1], [2, 2]]]


def test_visible_child_of_hidden_group_is_drawn():
    (s,) = strokes('<g visibility="hidden" stroke="black"><path d="M0 0 L1 1"/>'
                   '<path d="M2 2 L3 3" visibility="visible"/></g>')
    assert s.tolist() == [[2, 2], [3, 3]]


def test_include_fills_keeps_fill_only_outlines():
    body = '<rect width="10" height="10" fill="black"/><path d="M0 20 L5 20" stroke="black"/>'
    assert len(strokes(body)) == 1
    assert len(strokes(body, include_fills=True)) == 2
    with pytest.raises(SvgError) as err:
        strokes('<rect width="10" height="10"/>')
    assert err.value.reason == "no_geometry" and "--include-fills" in err.value.message


def test_shape_children_are_not_drawn():
    (s,) = strokes('<rect width="10" height="10" stroke="black"><rect width="50" height="50" stroke="red"/></rect>')
    assert np.ptp(s, axis=0).tolist() == [10, 10]


def test_document_order_is_drawing_order():
    body = ('<path d="M0 0 L1 0" stroke="black"/><g><circle cx="50" cy="50" r="5" stroke="black"/>'
            '<line x1="0" y1="9" x2="1" y2="9" stroke="black"/></g><use href="#first"/>'
            '<polyline id="first" points="7,7 8,8" stroke="black" fill="none"/>')
    first = [s[0].tolist() for s in strokes(body)]
    assert first == [[0, 0], [55, 50], [0, 9], [7, 7], [7, 7]]


# ---------------------------------------------------------------------------------------------------
# svgelements pitfalls (LIBS.md 2.1), one test each


def test_pitfall_reify_rotation_of_a_rect_is_applied():
    (s,) = strokes('<rect x="0" y="0" width="10" height="20" transform="translate(50 50) rotate(90)" stroke="black"/>')
    assert np.allclose(s, [[50, 50], [50, 60], [30, 60], [30, 50], [50, 50]])


@pytest.mark.parametrize("transform", ["skewX(30)", "scale(2 .5)", "matrix(1 .15 0 1 0 0)", "rotate(20) scale(3 1)"])
def test_pitfall_arcs_under_non_uniform_transforms_are_exact(transform):
    (s,) = strokes(f'<circle cx="40" cy="30" r="20" transform="{transform}" stroke="black"/>')
    m = mat(*{"skewX(30)": (1, 0, math.tan(math.radians(30)), 1, 0, 0), "scale(2 .5)": (2, 0, 0, .5, 0, 0),
              "matrix(1 .15 0 1 0 0)": (1, .15, 0, 1, 0, 0)}.get(transform, (1, 0, 0, 1, 0, 0)))
    if transform.startswith("rotate"):
        m = rot(20) @ mat(3, 0, 0, 1, 0, 0)
    local = (np.linalg.inv(m) @ np.column_stack([s, np.ones(len(s))]).T).T[:, :2]
    assert np.allclose(np.linalg.norm(local - [40, 30], axis=1), 20, atol=1e-9)
    (arc,) = strokes(f'<path d="M10 30 A30 10 30 0 1 70 30" transform="{transform}" stroke="black"/>')
    assert np.allclose(arc[0], (m @ [10, 30, 1])[:2]) and np.allclose(arc[-1], (m @ [70, 30, 1])[:2])


def test_pitfall_visibility_hidden_is_filtered():
    assert len(strokes('<path d="M0 0 L1 1" stroke="black" visibility="hidden"/>'
                       '<path d="M0 0 L2 2" stroke="black" visibility="collapse"/>'
                       '<path d="M0 0 L3 3" stroke="black"/>')) == 1


def test_pitfall_mask_marker_symbol_children_only_through_use():
    body = ('<mask id="m"><path id="mp" d="M0 0 L1 1" stroke="black"/></mask>'
            '<marker id="k"><path d="M0 0 L2 2" stroke="black"/></marker>'
            '<symbol id="s"><path d="M0 0 L3 3" stroke="black"/></symbol>'
            '<use href="#s"/><use href="#mp" x="10"/>')
    assert [s.tolist() for s in strokes(body)] == [[[0, 0], [3, 3]], [[10, 0], [11, 1]]]


def test_pitfall_switch_draws_one_child():
    body = ('<switch><path d="M0 0 L1 1" stroke="black" requiredExtensions="http://example.org/ext"/>'
            '<path d="M0 0 L2 2" stroke="black" systemLanguage="fr"/>'
            '<path d="M0 0 L3 3" stroke="black" systemLanguage="de, en-GB"/>'
            '<path d="M0 0 L4 4" stroke="black"/></switch>')
    assert [s.tolist() for s in strokes(body)] == [[[0, 0], [3, 3]]]


def test_pitfall_em_ex_rem_units():
    (em,) = strokes('<g font-size="20"><rect x="1em" y="1em" width="2em" height="1em" stroke="black"/></g>')
    assert em[0].tolist() == [20, 20] and np.ptp(em, axis=0).tolist() == [40, 20]
    (ex,) = strokes('<g style="font-size:40px"><line x1="1ex" x2="2ex" stroke="black"/></g>')
    assert ex.tolist() == [[20, 0], [40, 0]]
    (rem,) = strokes('<g font-size="50"><line x1="1rem" x2="2em" stroke="black"/></g>')
    assert rem.tolist() == [[16, 0], [100, 0]]
    (default,) = strokes('<line x2="1em" stroke="black"/>')
    assert default.tolist() == [[0, 0], [16, 0]]
    # a unit svgelements does not know makes the length invalid: the rect has no width, so no rect
    assert len(strokes('<rect width="5ch" height="5" stroke="black"/><line x2="1" stroke="black"/>')) == 1


def test_pitfall_percentages_resolve_against_the_viewport_side():
    (s,) = strokes('<rect x="10%" y="10%" width="80%" height="80%" ry="20%" stroke="black"/>',
                   'viewBox="0 0 200 100"')
    assert s[:, 0].min() == pytest.approx(20) and s[:, 1].min() == pytest.approx(10)
    # ry = 20% of 100 = 20 and rx = ry: the top edge is straight from x = 40 to x = 160
    top = s[np.isclose(s[:, 1], 10)]
    assert top[:, 0].min() == pytest.approx(40) and top[:, 0].max() == pytest.approx(160)


def test_pitfall_subpaths_split_after_close():
    assert len(path("M0 0 L10 0 L10 10 Z M20 20 L30 30 Z L40 40")) == 3


# ---------------------------------------------------------------------------------------------------
# Sampling density


def test_scaled_up_curve_gets_more_points():
    (small,) = strokes('<circle cx="0" cy="0" r="10" stroke="black"/>')
    (big,) = strokes('<circle cx="0" cy="0" r="10" stroke="black" transform="scale(10)"/>')
    assert len(big) > 8 * len(small)
    assert max_gap(big) <= 1.0 + 1e-9


def final_frame(polylines: list[np.ndarray], size: float = 255.0) -> list[np.ndarray]:
    pts = np.concatenate(polylines)
    lo, extent = pts.min(axis=0), np.ptp(pts, axis=0).max()
    return [(p - lo) * size / extent for p in polylines]


coord = st.floats(-50, 50, allow_nan=False)


@settings(max_examples=25)
@given(pts=st.lists(st.tuples(coord, coord), min_size=4, max_size=4),
       m=st.tuples(st.floats(-3, 3), st.floats(-3, 3), st.floats(-3, 3), st.floats(-3, 3)),
       size=st.sampled_from([64.0, 255.0, 1000.0]))
def test_curves_are_at_most_one_unit_apart_in_the_final_frame(pts, m, size):
    a, b, c, d = m
    dense = cubic(*pts, n=2001) @ np.array([[a, c], [b, d]]).T
    if abs(a * d - b * c) < 0.05 or np.ptp(dense, axis=0).max() < 1e-3:
        return  # (nearly) singular transforms and curves that are a point
    (p0, p1, p2, p3) = pts
    d_attr = f"M{p0[0]} {p0[1]} C{p1[0]} {p1[1]} {p2[0]} {p2[1]} {p3[0]} {p3[1]}"
    polylines = strokes(f'<path d="{d_attr}" transform="matrix({a} {b} {c} {d} 0 0)" stroke="black"/>', size=size)
    (curve,) = final_frame(polylines, size)
    assert max_gap(curve) <= 1.0 + 1e-6
    # every point lies on the transformed curve (to within the dense reference's own spacing)
    spacing = np.linalg.norm(np.diff(dense, axis=0), axis=1).max()
    assert dist_to(polylines[0], dense) <= spacing / 2 + 1e-9


def test_control_points_far_outside_the_drawing_do_not_coarsen_the_sampling():
    # a shallow arc of a huge ellipse: its control box is far larger than the drawing
    polylines = path("M0 0 A1000 1000 0 0 1 100 0", size=255)
    (curve,) = final_frame(polylines)
    assert max_gap(curve) <= 1.0 + 1e-6


# ---------------------------------------------------------------------------------------------------
# Bad and hostile input


def bad(data: bytes) -> SvgError:
    with pytest.raises(SvgError) as err:
        svg_polylines(data)
    return err.value


def test_billion_laughs_fails_fast_with_a_clear_error():
    decls = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    data = f'<?xml version="1.0"?><!DOCTYPE svg [{decls}]><svg {NS}><text>&lol9;</text></svg>'.encode()
    t = time.perf_counter()
    err = bad(data)
    assert err.reason == "unsafe_xml" and "expands past" in err.message and "lol" in err.message
    assert time.perf_counter() - t < 5  # generous: it stops at the declarations, before expanding anything


def test_many_references_to_a_moderate_entity_are_bounded_too():
    value = "x" * 1000
    refs = "&e;" * (MAX_ENTITY_EXPANSION // 1000 + 1)
    err = bad(f'<!DOCTYPE svg [<!ENTITY e "{value}">]><svg {NS}><desc>{refs}</desc></svg>'.encode())
    assert err.reason == "unsafe_xml"


@pytest.mark.parametrize("decl", ['<!ENTITY xxe SYSTEM "file:///etc/passwd">',
                                  '<!ENTITY % pe "<!ENTITY x \'y\'>"> %pe;',
                                  '<!ENTITY e "&undeclared;">'])
def test_external_parameter_and_dangling_entities_are_refused(decl):
    err = bad(f'<!DOCTYPE svg [{decl}]><svg {NS}><path d="M0 0 L1 1" stroke="black"/></svg>'.encode())
    assert err.reason == "unsafe_xml"


def test_small_internal_entities_and_attlist_declarations_work():
    data = (f'<!DOCTYPE svg [<!ENTITY ink "black"><!ENTITY shape "<path d=\'M0 0 L5 5\' stroke=\'&ink;\'/>">'
            '<!ATTLIST g xmlns:kvg CDATA #FIXED "http://kanjivg.tagaini.net" kvg:element CDATA #IMPLIED>]>'
            f'<svg {NS}><g kvg:element="x">&shape;<path d="M0 0 L1 1" stroke="&ink;"/></g></svg>').encode()
    assert [s.tolist() for s in svg_polylines(data, size=0)] == [[[0, 0], [5, 5]], [[0, 0], [1, 1]]]


def test_use_cycles_are_cut_and_use_bombs_refused():
    (s,) = strokes('<g id="a"><use href="#a"/><path d="M0 0 L1 1" stroke="black"/></g>')
    assert s.tolist() == [[0, 0], [1, 1]]
    levels = ['<path id="u0" d="M0 0 L1 1" stroke="black"/>'] + [
        f'<g id="u{i}">' + f'<use href="#u{i - 1}"/>' * 10 + "</g>" for i in range(1, 9)]
    err = bad(svg("<defs>" + "".join(levels) + '</defs><use href="#u8"/>'))
    assert err.reason == "unsafe_xml" and "<use>" in err.message


@pytest.mark.parametrize("data, reason, text", [
    (b"<svg><path d='M0 0 L1 1'", "unreadable_file", "not well-formed"),
    (b"<html><body/></html>", "unreadable_file", "not an SVG document"),
    (b"", "unreadable_file", "not well-formed"),
    (svg(""), "no_geometry", "no stroked geometry"),
    (svg('<line x2="1e400" stroke="black"/>'), "non_finite", "NaN or infinite"),
    (svg('<line x2="1e300" stroke="black"/>'), "absurd_coordinate", "exceeds"),
    (svg('<path d="M0 0 L5 5" stroke="black"/>', 'width="0" height="0"'), "no_geometry", "viewport"),
])
def test_bad_documents_name_their_problem(data, reason, text):
    err = bad(data)
    assert err.reason == reason and text in err.message


def test_deep_nesting_is_reported_not_a_crash():
    err = bad(svg("<g>" * 5000 + '<path d="M0 0 L1 1" stroke="black"/>' + "</g>" * 5000))
    assert err.reason == "unreadable_file" and "nested too deeply" in err.message


def test_parse_error_has_a_line_number():
    err = bad(b"<svg xmlns='http://www.w3.org/2000/svg'>\n<path d='M0 0'>\n</svg>")
    assert err.line == 3


def test_no_xmlns_works():
    (s,) = svg_polylines(b'<svg><g transform="translate(5 5)"><path d="M0 0 L1 1" stroke="black"/></g></svg>', size=0)
    assert s.tolist() == [[5, 5], [6, 6]]


# ---------------------------------------------------------------------------------------------------
# read_files: the SourceBatch


def test_read_files_builds_one_drawing_per_file(tmp_path):
    (tmp_path / "cat").mkdir()
    good = tmp_path / "cat" / "a.svg"
    good.write_bytes(svg('<path d="M0 0 L10 0 M0 5 L10 5" stroke="black"/>'))
    empty = tmp_path / "cat" / "empty.svg"
    empty.write_bytes(svg(""))
    broken = tmp_path / "broken.svg"
    broken.write_bytes(b"<svg")
    missing = tmp_path / "missing.svg"
    batch = read_files([(3, str(good)), (4, str(empty)), (5, str(broken)), (6, str(missing))])
    assert batch.read == 4 and batch.flat.n_drawings == 1 and batch.flat.n_strokes == 2
    assert batch.ids == [str(good)] and batch.labels == ["cat"]
    assert batch.order.tolist() == [order_key(3, 0)] and batch.kinds.tolist() == [KIND_SAMPLED]
    assert batch.paths == {3: str(good), 4: str(empty), 5: str(broken), 6: str(missing)}
    assert [(p.reason, p.path) for p in batch.problems] == [
        ("no_geometry", str(empty)), ("unreadable_file", str(broken)), ("unreadable_file", str(missing))]
    assert "cannot read" in batch.problems[2].message
