/* Batch Ramer-Douglas-Peucker keep-mask over many strokes in one call.
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
 */
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
        for (int64_t k = i + 1; k < j; k++) {
            double d = segment ? dist_segment(pts + 2 * k, a, b) : dist_line(pts + 2 * k, a, b);
            if (d > dmax) {
                dmax = d;
                imax = k;
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
    for (int64_t s = 0; s + 1 < n_offsets; s++) {
        if (o[s] < 0 || o[s + 1] < o[s] || o[s + 1] > n_points) {
            PyErr_SetString(PyExc_ValueError, "offsets must be non-decreasing and within the points");
            goto done;
        }
    }
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

static PyMethodDef methods[] = {
    {"rdp_keep", rdp_keep, METH_VARARGS, "rdp_keep(points, offsets, epsilon, segment, keep) -> None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rdp", "Batch RDP kernel.", -1, methods};

PyMODINIT_FUNC PyInit__rdp(void) { return PyModule_Create(&module); }
