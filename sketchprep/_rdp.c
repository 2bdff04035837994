/* Batch Ramer-Douglas-Peucker keep-mask and arc-length resampling over many strokes in one call.
 *
 * Hand-written because no maintained compiled library offers line-distance RDP (the `rdp` package is pure
 * Python, ~1,000x slower) nor a batch API over flat arrays; see sketchprep/simplify.py for the contract.
 *
 * rdp_keep(points, offsets, epsilon, segment, keep)
 *   points  : buffer of float64, 2*P values (x0, y0, x1, y1, ...)
 *   offsets : buffer of int64, S+1 values; stroke s is points[offsets[s]:offsets[s+1]]
 *   epsilon : float
 *   segment : 0 = distance to the infinite line through the chord's end points (the original algorithm and
 *             the `rdp` package), 1 = distance to the chord segment (bounds every dropped point's error)
 *   keep    : writable buffer of uint8, P values; set to 1 for kept points, 0 otherwise
 * The farthest point wins; on exact ties the first one (as the `rdp` package), and a chord must be beaten
 * strictly (d > epsilon) to split.
 *
 * resample_counts(points, offsets, spacing, counts) / resample_fill(points, offsets, spacing, out_offsets, out)
 *   Samples every stroke at arc length 0, spacing, 2*spacing, ... (every k*spacing < length) plus its last
 *   point; a stroke of zero length becomes its first point. counts (int64, S) receives the number of samples
 *   per stroke; out (float64, 2*total) receives them, stroke s at out_offsets[s]. Each stroke is computed on
 *   its own, with the arithmetic of a per-stroke np.cumsum + np.interp (see simplify.py): the result of a
 *   stroke never depends on the other strokes of the batch, and matches the numpy fallback bit for bit.
 *
 * stroke_lengths(points, offsets, lengths, boxes)
 *   lengths (float64, S) receives every stroke's arc length (accurate for any finite offsets, however tiny)
 *   and boxes (float64, 4*S) its bounding box
 *   (min x, min y, max x, max y): what a bound on the resampled point count needs before anything is
 *   resampled, in one pass over the points.
 *
 * Every distance and sample is computed with plain IEEE double operations in the order written, never fused
 * (a fused multiply-add would change the last bit and so which of two exactly tied points RDP keeps).
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static double dist_line(const double *p, const double *a, const double *b)
{
    double dx = b[0] - a[0], dy = b[1] - a[1];
    double len = sqrt(dx * dx + dy * dy);
    if (len == 0.0) {
        double ex = p[0] - a[0], ey = p[1] - a[1];
        return sqrt(ex * ex + ey * ey);
    }
    /* same expression as rdp.pldist: |cross(end - start, start - point)| / |end - start| */
    return fabs(dx * (a[1] - p[1]) - dy * (a[0] - p[0])) / len;
}

static double dist_segment(const double *p, const double *a, const double *b)
{
    double dx = b[0] - a[0], dy = b[1] - a[1];
    double l2 = dx * dx + dy * dy;
    double t = 0.0;
    if (l2 > 0.0) {
        t = ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / l2;
        if (t < 0.0) t = 0.0;
        else if (t > 1.0) t = 1.0;
    }
    double ex = p[0] - (a[0] + t * dx), ey = p[1] - (a[1] + t * dy);
    return sqrt(ex * ex + ey * ey);
}

static int simplify_stroke(const double *pts, int64_t n, double eps, int segment, uint8_t *keep,
                           int64_t **stack, int64_t *stack_cap)
{
    if (n <= 0) return 0;
    if (n <= 2) {
        memset(keep, 1, (size_t)n);
        return 0;
    }
    memset(keep, 0, (size_t)n);
    keep[0] = keep[n - 1] = 1;
    int64_t top = 0;
    if (*stack_cap < 2) {
        int64_t *s = realloc(*stack, 64 * sizeof(int64_t));
        if (!s) return -1;
        *stack = s;
        *stack_cap = 64;
    }
    (*stack)[top++] = 0;
    (*stack)[top++] = n - 1;
    while (top > 0) {
        int64_t j = (*stack)[--top];
        int64_t i = (*stack)[--top];
        const double *a = pts + 2 * i, *b = pts + 2 * j;
        double dmax = 0.0;
        int64_t imax = i;
        double dx = b[0] - a[0], dy = b[1] - a[1];
        double len = sqrt(dx * dx + dy * dy);
        if (!segment && len != 0.0) {
            /* dist_line with the chord's length hoisted out of the loop: the same operations, so the same
             * values, without a square root per point (RDP's hot loop) */
            for (int64_t k = i + 1; k < j; k++) {
                const double *p = pts + 2 * k;
                double d = fabs(dx * (a[1] - p[1]) - dy * (a[0] - p[0])) / len;
                if (d > dmax) {
                    dmax = d;
                    imax = k;
                }
            }
        } else {
            for (int64_t k = i + 1; k < j; k++) {
                double d = segment ? dist_segment(pts + 2 * k, a, b) : dist_line(pts + 2 * k, a, b);
                if (d > dmax) {
                    dmax = d;
                    imax = k;
                }
            }
        }
        if (dmax > eps) {
            keep[imax] = 1;
            if (top + 4 > *stack_cap) {
                int64_t cap = *stack_cap * 2;
                int64_t *s = realloc(*stack, (size_t)cap * sizeof(int64_t));
                if (!s) return -1;
                *stack = s;
                *stack_cap = cap;
            }
            if (imax - i > 1) {
                (*stack)[top++] = i;
                (*stack)[top++] = imax;
            }
            if (j - imax > 1) {
                (*stack)[top++] = imax;
                (*stack)[top++] = j;
            }
        }
    }
    return 0;
}

/* Arc length of one stroke, summed in order like np.cumsum of the segment lengths. */
static double stroke_length(const double *pts, int64_t n)
{
    double length = 0.0;
    for (int64_t i = 1; i < n; i++) {
        double dx = pts[2 * i] - pts[2 * i - 2], dy = pts[2 * i + 1] - pts[2 * i - 1];
        length += sqrt(dx * dx + dy * dy);
    }
    return length;
}

/* Number of samples k * spacing < length (k = 0, 1, ...); the end point comes on top. */
static int64_t inner_samples(double length, double spacing)
{
    double q = ceil(length / spacing);
    int64_t k = q > 0.0 ? (int64_t)q : 0;
    while (k > 0 && (double)(k - 1) * spacing >= length) k--;
    while ((double)k * spacing < length) k++;
    return k;
}

static int64_t resampled_count(const double *pts, int64_t n, double spacing)
{
    if (n <= 1) return n;
    double length = stroke_length(pts, n);
    if (!(length > 0.0)) return 1;
    return inner_samples(length, spacing) + 1;
}

static void resample_stroke(const double *pts, int64_t n, double spacing, double *out)
{
    if (n <= 0) return;
    out[0] = pts[0];
    out[1] = pts[1];
    double length = stroke_length(pts, n);
    if (n == 1 || !(length > 0.0)) return;
    int64_t inner = inner_samples(length, spacing);
    /* cum0, cum1: arc length at points j and j + 1 (running sum, as np.cumsum) */
    int64_t j = 0;
    double cum0 = 0.0;
    double dx = pts[2] - pts[0], dy = pts[3] - pts[1];
    double cum1 = cum0 + sqrt(dx * dx + dy * dy);
    for (int64_t k = 1; k < inner; k++) {
        double s = (double)k * spacing;
        while (j + 2 < n && cum1 <= s) {  /* np.interp's segment: cum[j] <= s < cum[j + 1] */
            j++;
            cum0 = cum1;
            dx = pts[2 * j + 2] - pts[2 * j];
            dy = pts[2 * j + 3] - pts[2 * j + 1];
            cum1 = cum0 + sqrt(dx * dx + dy * dy);
        }
        const double *a = pts + 2 * j, *b = a + 2;
        if (s == cum0) {
            out[2 * k] = a[0];
            out[2 * k + 1] = a[1];
        } else {
            double span = cum1 - cum0;
            double sx = (b[0] - a[0]) / span, sy = (b[1] - a[1]) / span;
            out[2 * k] = sx * (s - cum0) + a[0];
            out[2 * k + 1] = sy * (s - cum0) + a[1];
        }
    }
    out[2 * inner] = pts[2 * n - 2];
    out[2 * inner + 1] = pts[2 * n - 1];
}

static int check_offsets(const int64_t *o, int64_t n_offsets, int64_t n_points)
{
    for (int64_t s = 0; s + 1 < n_offsets; s++) {
        if (o[s] < 0 || o[s + 1] < o[s] || o[s + 1] > n_points) {
            PyErr_SetString(PyExc_ValueError, "offsets must be non-decreasing and within the points");
            return -1;
        }
    }
    return 0;
}

static PyObject *resample_counts(PyObject *self, PyObject *args)
{
    Py_buffer pts, offs, counts;
    double spacing;
    if (!PyArg_ParseTuple(args, "y*y*dw*", &pts, &offs, &spacing, &counts)) return NULL;
    PyObject *result = NULL;
    int64_t n_points = pts.len / (Py_ssize_t)(2 * sizeof(double));
    int64_t n_offsets = offs.len / (Py_ssize_t)sizeof(int64_t);
    const double *p = (const double *)pts.buf;
    const int64_t *o = (const int64_t *)offs.buf;
    int64_t *c = (int64_t *)counts.buf;
    if (!(spacing > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "spacing must be > 0");
        goto done;
    }
    if (counts.len != (n_offsets > 0 ? n_offsets - 1 : 0) * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "counts must have one int64 per stroke");
        goto done;
    }
    if (check_offsets(o, n_offsets, n_points) < 0) goto done;
    Py_BEGIN_ALLOW_THREADS
    for (int64_t s = 0; s + 1 < n_offsets; s++) c[s] = resampled_count(p + 2 * o[s], o[s + 1] - o[s], spacing);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&pts);
    PyBuffer_Release(&offs);
    PyBuffer_Release(&counts);
    return result;
}

static PyObject *stroke_lengths(PyObject *self, PyObject *args)
{
    Py_buffer pts, offs, lengths, boxes;
    if (!PyArg_ParseTuple(args, "y*y*w*w*", &pts, &offs, &lengths, &boxes)) return NULL;
    PyObject *result = NULL;
    int64_t n_points = pts.len / (Py_ssize_t)(2 * sizeof(double));
    int64_t n_offsets = offs.len / (Py_ssize_t)sizeof(int64_t);
    const double *p = (const double *)pts.buf;
    const int64_t *o = (const int64_t *)offs.buf;
    double *l = (double *)lengths.buf, *bx = (double *)boxes.buf;
    if (lengths.len != (n_offsets > 0 ? n_offsets - 1 : 0) * (Py_ssize_t)sizeof(double)
        || boxes.len != 4 * lengths.len) {
        PyErr_SetString(PyExc_ValueError, "lengths must have one float64 per stroke and boxes four");
        goto done;
    }
    if (check_offsets(o, n_offsets, n_points) < 0) goto done;
    Py_BEGIN_ALLOW_THREADS
    for (int64_t s = 0; s + 1 < n_offsets; s++) {
        double total = 0.0;
        double x0 = o[s] < o[s + 1] ? p[2 * o[s]] : 0.0, y0 = o[s] < o[s + 1] ? p[2 * o[s] + 1] : 0.0;
        double x1 = x0, y1 = y0;
        for (int64_t i = o[s] + 1; i < o[s + 1]; i++) {
            double x = p[2 * i], y = p[2 * i + 1];
            double dx = x - p[2 * i - 2], dy = y - p[2 * i - 1];
            double d2 = dx * dx + dy * dy;
            /* squares of tiny (or huge) offsets underflow (overflow): hypot, slower, scales instead */
            total += d2 > 1e-280 && d2 < 1e280 ? sqrt(d2) : hypot(dx, dy);
            if (x < x0) x0 = x;
            if (x > x1) x1 = x;
            if (y < y0) y0 = y;
            if (y > y1) y1 = y;
        }
        l[s] = total;
        bx[4 * s] = x0;
        bx[4 * s + 1] = y0;
        bx[4 * s + 2] = x1;
        bx[4 * s + 3] = y1;
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&pts);
    PyBuffer_Release(&offs);
    PyBuffer_Release(&lengths);
    PyBuffer_Release(&boxes);
    return result;
}

static PyObject *resample_fill(PyObject *self, PyObject *args)
{
    Py_buffer pts, offs, out_offs, out;
    double spacing;
    if (!PyArg_ParseTuple(args, "y*y*dy*w*", &pts, &offs, &spacing, &out_offs, &out)) return NULL;
    PyObject *result = NULL;
    int64_t n_points = pts.len / (Py_ssize_t)(2 * sizeof(double));
    int64_t n_offsets = offs.len / (Py_ssize_t)sizeof(int64_t);
    int64_t n_out = out.len / (Py_ssize_t)(2 * sizeof(double));
    const double *p = (const double *)pts.buf;
    const int64_t *o = (const int64_t *)offs.buf, *oo = (const int64_t *)out_offs.buf;
    double *q = (double *)out.buf;
    if (!(spacing > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "spacing must be > 0");
        goto done;
    }
    if (out_offs.len != n_offsets * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "out_offsets must have one int64 per offset");
        goto done;
    }
    if (check_offsets(o, n_offsets, n_points) < 0) goto done;
    for (int64_t s = 0; s + 1 < n_offsets; s++) {
        /* the caller sized out from resample_counts; refuse anything else rather than write past it */
        if (oo[s] < 0 || oo[s + 1] > n_out ||
            oo[s + 1] - oo[s] != resampled_count(p + 2 * o[s], o[s + 1] - o[s], spacing)) {
            PyErr_SetString(PyExc_ValueError, "out_offsets do not match resample_counts");
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    for (int64_t s = 0; s + 1 < n_offsets; s++) resample_stroke(p + 2 * o[s], o[s + 1] - o[s], spacing, q + 2 * oo[s]);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&pts);
    PyBuffer_Release(&offs);
    PyBuffer_Release(&out_offs);
    PyBuffer_Release(&out);
    return result;
}

static PyObject *rdp_keep(PyObject *self, PyObject *args)
{
    Py_buffer pts, offs, keep;
    double eps;
    int segment;
    if (!PyArg_ParseTuple(args, "y*y*dpw*", &pts, &offs, &eps, &segment, &keep)) return NULL;
    PyObject *result = NULL;
    int64_t n_points = pts.len / (Py_ssize_t)(2 * sizeof(double));
    int64_t n_offsets = offs.len / (Py_ssize_t)sizeof(int64_t);
    const double *p = (const double *)pts.buf;
    const int64_t *o = (const int64_t *)offs.buf;
    uint8_t *k = (uint8_t *)keep.buf;
    int64_t *stack = NULL, cap = 0;
    int failed = 0;

    if (keep.len != n_points) {
        PyErr_SetString(PyExc_ValueError, "keep must have one byte per point");
        goto done;
    }
    if (check_offsets(o, n_offsets, n_points) < 0) goto done;
    Py_BEGIN_ALLOW_THREADS
    for (int64_t s = 0; s + 1 < n_offsets && !failed; s++) {
        if (simplify_stroke(p + 2 * o[s], o[s + 1] - o[s], eps, segment, k + o[s], &stack, &cap) < 0) failed = 1;
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    free(stack);
    PyBuffer_Release(&pts);
    PyBuffer_Release(&offs);
    PyBuffer_Release(&keep);
    return result;
}

/* resample_simplify(points, offsets, spacing, epsilon, segment, transform)
 *     -> (kept points: bytes of float64 pairs, kept per stroke: bytes of int64)
 * Optionally normalise each stroke (transform: 4 float64 per stroke, [min_x, min_y, numerator, denominator],
 * or empty), then resample_fill and rdp_keep it, without materialising the resampled batch (about ten
 * times the input's points for Quick, Draw! raw): the same result as the separate calls, in one pass. */
static PyObject *resample_simplify(PyObject *self, PyObject *args)
{
    Py_buffer pts, offs, tr;
    double spacing, eps;
    int segment;
    if (!PyArg_ParseTuple(args, "y*y*ddpy*", &pts, &offs, &spacing, &eps, &segment, &tr)) return NULL;
    PyObject *result = NULL;
    int64_t n_points = pts.len / (Py_ssize_t)(2 * sizeof(double));
    int64_t n_offsets = offs.len / (Py_ssize_t)sizeof(int64_t);
    int64_t n_strokes = n_offsets > 0 ? n_offsets - 1 : 0;
    const double *p = (const double *)pts.buf;
    const int64_t *o = (const int64_t *)offs.buf;
    const double *transform = (const double *)tr.buf;
    double *scratch = NULL, *out = NULL, *moved = NULL;
    uint8_t *keep = NULL;
    int64_t *stack = NULL, stack_cap = 0, scratch_cap = 0, out_len = 0, out_cap = 0, moved_cap = 0;
    int64_t *counts = NULL;
    int failed = 0;
    if (!(spacing > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "spacing must be > 0");
        goto done;
    }
    if (check_offsets(o, n_offsets, n_points) < 0) goto done;
    if (tr.len != 0 && tr.len != n_strokes * 4 * (Py_ssize_t)sizeof(double)) {
        PyErr_SetString(PyExc_ValueError, "transform must be empty or hold 4 float64 per stroke");
        goto done;
    }
    counts = malloc((size_t)(n_strokes > 0 ? n_strokes : 1) * sizeof(int64_t));
    if (!counts) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (int64_t s = 0; s < n_strokes && !failed; s++) {
        const double *stroke = p + 2 * o[s];
        int64_t n = o[s + 1] - o[s];
        if (tr.len) {  /* normalise first, as strokes.normalize_flat: (p - min) * numerator / denominator */
            if (n > moved_cap) {
                double *mv = realloc(moved, (size_t)n * 2 * sizeof(double));
                if (!mv) { failed = 1; break; }
                moved = mv;
                moved_cap = n;
            }
            const double *t = transform + 4 * s;
            for (int64_t i = 0; i < n; i++) {
                moved[2 * i] = (stroke[2 * i] - t[0]) * t[2] / t[3];
                moved[2 * i + 1] = (stroke[2 * i + 1] - t[1]) * t[2] / t[3];
            }
            stroke = moved;
        }
        int64_t m = resampled_count(stroke, n, spacing);
        if (m > scratch_cap) {
            int64_t cap = m > 2 * scratch_cap ? m : 2 * scratch_cap;
            double *sc = realloc(scratch, (size_t)cap * 2 * sizeof(double));
            uint8_t *kp = realloc(keep, (size_t)cap);
            if (sc) scratch = sc;
            if (kp) keep = kp;
            if (!sc || !kp) { failed = 1; break; }
            scratch_cap = cap;
        }
        resample_stroke(stroke, n, spacing, scratch);
        if (simplify_stroke(scratch, m, eps, segment, keep, &stack, &stack_cap) < 0) { failed = 1; break; }
        int64_t kept = 0;
        for (int64_t i = 0; i < m; i++) kept += keep[i];
        if (out_len + kept > out_cap) {
            int64_t cap = out_len + kept > 2 * out_cap ? out_len + kept : 2 * out_cap;
            double *oc = realloc(out, (size_t)(cap > 0 ? cap : 1) * 2 * sizeof(double));
            if (!oc) { failed = 1; break; }
            out = oc;
            out_cap = cap;
        }
        for (int64_t i = 0; i < m; i++) {
            if (keep[i]) {
                out[2 * out_len] = scratch[2 * i];
                out[2 * out_len + 1] = scratch[2 * i + 1];
                out_len++;
            }
        }
        counts[s] = kept;
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    {
        PyObject *points_bytes = PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)(out_len * 2 * sizeof(double)));
        PyObject *counts_bytes = PyBytes_FromStringAndSize((const char *)counts, (Py_ssize_t)(n_strokes * sizeof(int64_t)));
        if (points_bytes && counts_bytes) result = PyTuple_Pack(2, points_bytes, counts_bytes);
        Py_XDECREF(points_bytes);
        Py_XDECREF(counts_bytes);
    }
done:
    free(scratch);
    free(keep);
    free(out);
    free(moved);
    free(stack);
    free(counts);
    PyBuffer_Release(&pts);
    PyBuffer_Release(&offs);
    PyBuffer_Release(&tr);
    return result;
}

static PyMethodDef methods[] = {
    {"resample_simplify", resample_simplify, METH_VARARGS,
     "resample_simplify(points, offsets, spacing, epsilon, segment, transform) -> (points bytes, counts bytes)"},
    {"rdp_keep", rdp_keep, METH_VARARGS, "rdp_keep(points, offsets, epsilon, segment, keep) -> None"},
    {"resample_counts", resample_counts, METH_VARARGS, "resample_counts(points, offsets, spacing, counts) -> None"},
    {"stroke_lengths", stroke_lengths, METH_VARARGS, "stroke_lengths(points, offsets, lengths, boxes) -> None"},
    {"resample_fill", resample_fill, METH_VARARGS, "resample_fill(points, offsets, spacing, out_offsets, out) -> None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rdp", "Batch RDP and resampling kernels.", -1, methods};

PyMODINIT_FUNC PyInit__rdp(void) { return PyModule_Create(&module); }
