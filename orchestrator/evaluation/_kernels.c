/* Compiled inner loops of orchestrator.evaluation.metrics (optional: metrics.py has numpy versions of each, which
 * define the results and are the fallback where no C compiler was available at install time).
 *
 * Arrays arrive through the buffer protocol (numpy arrays, bytes), so building needs no numpy headers. The Python
 * wrappers in metrics.py check shapes, dtypes and contiguity; these functions only check buffer sizes.
 *
 *   two_stage(pixels, height, width, columns, rows)  Pillow's fixed-point LANCZOS at the 24x24 kept positions
 *   cell_sums(pixels, height, width, row_cell, column_cell, out)  per-cell sums and sums of squares
 *   nearest_ciede2000(queries, palette, out)  exact nearest-palette CIEDE2000 distance per query
 *   pair_bounds(queries, palette, out)  the search's lower bounds for every pair (for tests)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define GRID 24
#define PRECISION_BITS 22 /* Pillow's Resample.c: 32 - 8 - 2 */

/* ---- pixels -------------------------------------------------------------------------------------------------- */

/* The Arrow C data interface structs (https://arrow.apache.org/docs/format/CDataInterface.html), a stable ABI. */
struct ArrowSchema {
    const char *format, *name, *metadata;
    int64_t flags, n_children;
    struct ArrowSchema **children, *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};

struct ArrowArray {
    int64_t length, null_count, offset, n_buffers, n_children;
    const void **buffers;
    struct ArrowArray **children, *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

/* An RGB image's pixels: a C-contiguous height x width x 3 buffer (a numpy array), or Pillow's own storage of 4 bytes
 * a pixel (R, G, B, pad) borrowed without a copy through its Arrow export, Image.__arrow_c_array__() (Pillow >= 11.2;
 * the capsules keep the image's memory alive while they are held). */
typedef struct {
    const unsigned char *data;
    Py_ssize_t stride; /* bytes per pixel: 3 or 4 */
    Py_buffer view;
    int has_view;
} Pixels;

static int pixels_from(PyObject *source, Py_ssize_t height, Py_ssize_t width, Pixels *pixels) {
    pixels->has_view = 0;
    if (height <= 0 || width <= 0) {
        PyErr_SetString(PyExc_ValueError, "an image needs a positive height and width");
        return -1;
    }
    if (PyTuple_Check(source) && PyTuple_GET_SIZE(source) == 2) {
        struct ArrowSchema *schema = PyCapsule_GetPointer(PyTuple_GET_ITEM(source, 0), "arrow_schema");
        if (schema == NULL) return -1;
        struct ArrowArray *array = PyCapsule_GetPointer(PyTuple_GET_ITEM(source, 1), "arrow_array");
        if (array == NULL) return -1;
        if (strcmp(schema->format, "+w:4") != 0 || schema->n_children != 1 || strcmp(schema->children[0]->format, "C") != 0
            || array->length != height * width || array->n_children != 1 || array->children[0]->n_buffers != 2
            || array->children[0]->buffers[1] == NULL
            || array->children[0]->length < 4 * (array->offset + height * width)) {
            PyErr_SetString(PyExc_ValueError, "not the Arrow export of an RGB image of this size");
            return -1;
        }
        const struct ArrowArray *bytes = array->children[0];
        pixels->data = (const unsigned char *)bytes->buffers[1] + bytes->offset + 4 * array->offset;
        pixels->stride = 4;
        return 0;
    }
    if (PyObject_GetBuffer(source, &pixels->view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    pixels->has_view = 1;
    if (pixels->view.len != height * width * 3) {
        PyBuffer_Release(&pixels->view);
        pixels->has_view = 0;
        PyErr_SetString(PyExc_ValueError, "pixels must be height x width x 3 bytes");
        return -1;
    }
    pixels->data = pixels->view.buf;
    pixels->stride = 3;
    return 0;
}

static void pixels_release(Pixels *pixels) {
    if (pixels->has_view) PyBuffer_Release(&pixels->view);
    pixels->has_view = 0;
}

/* ---- two-stage downscale ------------------------------------------------------------------------------------- */

/* Taps of the 24 kept output positions along one axis: start[j], count[j] and count[j] int32 coefficients at
 * coefficients[j * width + k], as metrics._Taps lays them out. */
typedef struct {
    const int32_t *start, *count, *coefficients;
    Py_ssize_t width;
} Taps;

static unsigned char clip8(int32_t value) {
    /* Pillow's clip8(): the fixed-point sum shifted back to 8 bits, clamped */
    if (value >= (1 << PRECISION_BITS << 8)) return 255;
    if (value <= 0) return 0;
    return (unsigned char)(value >> PRECISION_BITS);
}

static int taps_from(PyObject *object, Py_ssize_t in_size, Taps *taps, Py_buffer views[3]) {
    /* object: a (start, count, coefficients) tuple of int32 buffers */
    if (!PyTuple_Check(object) || PyTuple_GET_SIZE(object) != 3) {
        PyErr_SetString(PyExc_TypeError, "taps must be a (start, count, coefficients) tuple");
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(object, i), &views[i], PyBUF_C_CONTIGUOUS) < 0) {
            for (int k = 0; k < i; k++) PyBuffer_Release(&views[k]);
            return -1;
        }
    }
    taps->start = views[0].buf;
    taps->count = views[1].buf;
    taps->coefficients = views[2].buf;
    taps->width = views[2].len / (Py_ssize_t)(GRID * sizeof(int32_t));
    int ok = views[0].len == GRID * (Py_ssize_t)sizeof(int32_t) && views[1].len == GRID * (Py_ssize_t)sizeof(int32_t)
             && views[2].len == taps->width * GRID * (Py_ssize_t)sizeof(int32_t);
    for (int j = 0; ok && j < GRID; j++)
        ok = taps->start[j] >= 0 && taps->count[j] >= 0 && taps->count[j] <= taps->width
             && taps->start[j] + taps->count[j] <= in_size;
    if (!ok) {
        for (int k = 0; k < 3; k++) PyBuffer_Release(&views[k]);
        PyErr_SetString(PyExc_ValueError, "taps do not fit the image");
        return -1;
    }
    return 0;
}

/* Pillow's horizontal pass for the 24 kept columns of rows [first, last); stride is a constant where it is inlined. */
static inline void horizontal_pass(const unsigned char *in, Py_ssize_t stride, Py_ssize_t width, Py_ssize_t first,
                                   Py_ssize_t last, const Taps *columns, unsigned char *horizontal) {
    for (Py_ssize_t y = first; y < last; y++) {
        const unsigned char *line = in + y * width * stride;
        unsigned char *to = horizontal + (y - first) * GRID * 3;
        for (int j = 0; j < GRID; j++) {
            const int32_t *k = columns->coefficients + j * columns->width;
            const unsigned char *from = line + (Py_ssize_t)columns->start[j] * stride;
            int32_t r = 1 << (PRECISION_BITS - 1), g = r, b = r;
            for (int x = 0; x < columns->count[j]; x++) {
                r += from[stride * x] * k[x];
                g += from[stride * x + 1] * k[x];
                b += from[stride * x + 2] * k[x];
            }
            to[3 * j] = clip8(r);
            to[3 * j + 1] = clip8(g);
            to[3 * j + 2] = clip8(b);
        }
    }
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* The same for Pillow's 4 bytes a pixel with SSE2 (every x86-64 CPU): two taps at a time, the four bytes of a pixel in
 * four lanes. pmaddwd multiplies 16-bit numbers, so each int32 coefficient is split as k = 2048 kh + kl with
 * 0 <= kl < 2048: both halves fit 16 bits, each half's sums fit 32 bits, and 2048 sum_h + sum_l is Pillow's sum
 * exactly (it fits 32 bits, as Pillow's own does; the lanes wrap modulo 2^32 on the way). The pad byte's lane is
 * dropped. */
static void horizontal_pass_rgbx(const unsigned char *in, Py_ssize_t width, Py_ssize_t first, Py_ssize_t last,
                                 const Taps *columns, unsigned char *horizontal) {
    Py_ssize_t pairs_width = (columns->width + 1) / 2;
    /* per kept column and pair of taps: (kh0, kh1) x 4 and (kl0, kl1) x 4 */
    __m128i *high = PyMem_RawMalloc(sizeof(__m128i) * GRID * (pairs_width > 0 ? pairs_width : 1));
    __m128i *low = PyMem_RawMalloc(sizeof(__m128i) * GRID * (pairs_width > 0 ? pairs_width : 1));
    if (high == NULL || low == NULL) { /* fall back to the scalar loop below */
        PyMem_RawFree(high);
        PyMem_RawFree(low);
        horizontal_pass(in, 4, width, first, last, columns, horizontal);
        return;
    }
    for (int j = 0; j < GRID; j++) {
        const int32_t *k = columns->coefficients + j * columns->width;
        for (Py_ssize_t pair = 0; pair < pairs_width; pair++) {
            int32_t k0 = 2 * pair < columns->count[j] ? k[2 * pair] : 0;
            int32_t k1 = 2 * pair + 1 < columns->count[j] ? k[2 * pair + 1] : 0;
            short l0 = (short)(k0 & 2047), l1 = (short)(k1 & 2047); /* two's complement: k - kl is a multiple of 2048 */
            short h0 = (short)((k0 - l0) / 2048), h1 = (short)((k1 - l1) / 2048);
            high[j * pairs_width + pair] = _mm_setr_epi16(h0, h1, h0, h1, h0, h1, h0, h1);
            low[j * pairs_width + pair] = _mm_setr_epi16(l0, l1, l0, l1, l0, l1, l0, l1);
        }
    }
    const __m128i zero = _mm_setzero_si128(), half = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
    for (Py_ssize_t y = first; y < last; y++) {
        const unsigned char *line = in + y * width * 4;
        unsigned char *to = horizontal + (y - first) * GRID * 3;
        for (int j = 0; j < GRID; j++) {
            const unsigned char *from = line + (Py_ssize_t)columns->start[j] * 4;
            const __m128i *kh = high + j * pairs_width, *kl = low + j * pairs_width;
            __m128i sum_h = zero, sum_l = zero;
            int count = columns->count[j], x = 0;
            for (; x + 1 < count; x += 2) { /* pixels x and x + 1: (R0 G0 B0 X0 R1 G1 B1 X1) -> (R0 R1 G0 G1 ...) */
                __m128i two = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(from + 4 * x)), zero);
                __m128i paired = _mm_unpacklo_epi16(two, _mm_srli_si128(two, 8));
                sum_h = _mm_add_epi32(sum_h, _mm_madd_epi16(paired, kh[x / 2]));
                sum_l = _mm_add_epi32(sum_l, _mm_madd_epi16(paired, kl[x / 2]));
            }
            if (x < count) { /* an odd last tap: its pair's second coefficient is 0, so pair it with zeros */
                uint32_t pixel;
                memcpy(&pixel, from + 4 * x, 4);
                __m128i one = _mm_unpacklo_epi8(_mm_cvtsi32_si128((int)pixel), zero);
                __m128i paired = _mm_unpacklo_epi16(one, zero);
                sum_h = _mm_add_epi32(sum_h, _mm_madd_epi16(paired, kh[x / 2]));
                sum_l = _mm_add_epi32(sum_l, _mm_madd_epi16(paired, kl[x / 2]));
            }
            int32_t sum[4];
            _mm_storeu_si128((__m128i *)sum, _mm_add_epi32(_mm_add_epi32(_mm_slli_epi32(sum_h, 11), sum_l), half));
            to[3 * j] = clip8(sum[0]);
            to[3 * j + 1] = clip8(sum[1]);
            to[3 * j + 2] = clip8(sum[2]);
        }
    }
    PyMem_RawFree(high);
    PyMem_RawFree(low);
}
#else
static void horizontal_pass_rgbx(const unsigned char *in, Py_ssize_t width, Py_ssize_t first, Py_ssize_t last,
                                 const Taps *columns, unsigned char *horizontal) {
    horizontal_pass(in, 4, width, first, last, columns, horizontal);
}
#endif

static PyObject *two_stage(PyObject *self, PyObject *args) {
    PyObject *source, *column_object, *row_object;
    Py_ssize_t height, width;
    if (!PyArg_ParseTuple(args, "OnnOO", &source, &height, &width, &column_object, &row_object)) return NULL;
    Pixels pixels;
    if (pixels_from(source, height, width, &pixels) < 0) return NULL;
    Taps columns, rows;
    Py_buffer column_views[3], row_views[3];
    if (taps_from(column_object, width, &columns, column_views) < 0) {
        pixels_release(&pixels);
        return NULL;
    }
    if (taps_from(row_object, height, &rows, row_views) < 0) {
        for (int k = 0; k < 3; k++) PyBuffer_Release(&column_views[k]);
        pixels_release(&pixels);
        return NULL;
    }
    Py_ssize_t first = height, last = 0; /* the input rows the kept rows read */
    for (int j = 0; j < GRID; j++) {
        if (rows.count[j] == 0) continue;
        if (rows.start[j] < first) first = rows.start[j];
        if (rows.start[j] + rows.count[j] > last) last = rows.start[j] + rows.count[j];
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, GRID * GRID * 3);
    unsigned char *horizontal = last > first ? PyMem_Malloc((size_t)(last - first) * GRID * 3) : NULL;
    if (result == NULL || (last > first && horizontal == NULL)) {
        Py_XDECREF(result);
        result = PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    /* horizontal pass first, as Pillow does: the 24 kept columns of every row the kept rows read */
    if (pixels.stride == 4) horizontal_pass_rgbx(pixels.data, width, first, last, &columns, horizontal);
    else horizontal_pass(pixels.data, 3, width, first, last, &columns, horizontal);
    /* then the vertical pass for the 24 kept rows */
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    for (int i = 0; i < GRID; i++) {
        const int32_t *k = rows.coefficients + i * rows.width;
        for (int j = 0; j < GRID * 3; j++) {
            int32_t sum = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < rows.count[i]; y++) sum += horizontal[(rows.start[i] + y - first) * GRID * 3 + j] * k[y];
            out[i * GRID * 3 + j] = clip8(sum);
        }
    }
    Py_END_ALLOW_THREADS
done:
    PyMem_Free(horizontal);
    for (int k = 0; k < 3; k++) {
        PyBuffer_Release(&column_views[k]);
        PyBuffer_Release(&row_views[k]);
    }
    pixels_release(&pixels);
    return result;
}

/* ---- grid alignment ------------------------------------------------------------------------------------------ */

/* Add each row's per-cell run sums to the cell; stride is a constant where it is inlined. */
static inline void add_cell_sums(const unsigned char *in, Py_ssize_t stride, Py_ssize_t height, Py_ssize_t width,
                                 const int32_t *rows, const int32_t *columns, int64_t *sums) {
    for (Py_ssize_t y = 0; y < height; y++) {
        const unsigned char *line = in + y * width * stride;
        int64_t *row = sums + (Py_ssize_t)rows[y] * GRID * 6;
        /* a cell's pixels along a row are one run: sum the run, then add it to the cell once */
        Py_ssize_t x = 0;
        while (x < width) {
            int32_t cell = columns[x];
            uint64_t s[3] = {0, 0, 0}, q[3] = {0, 0, 0};
            for (; x < width && columns[x] == cell; x++) {
                for (int c = 0; c < 3; c++) {
                    uint64_t v = line[stride * x + c];
                    s[c] += v;
                    q[c] += v * v;
                }
            }
            int64_t *at = row + cell * 6;
            for (int c = 0; c < 3; c++) {
                at[c] += (int64_t)s[c];
                at[3 + c] += (int64_t)q[c];
            }
        }
    }
}

static PyObject *cell_sums(PyObject *self, PyObject *args) {
    /* out: int64 (24, 24, 2, 3): per cell and channel the sum and the sum of squares of the pixel values */
    PyObject *source;
    Py_buffer row_cell, column_cell, out;
    Py_ssize_t height, width;
    if (!PyArg_ParseTuple(args, "Onny*y*w*", &source, &height, &width, &row_cell, &column_cell, &out)) return NULL;
    PyObject *result = NULL;
    Pixels pixels;
    if (pixels_from(source, height, width, &pixels) < 0) goto done;
    if (row_cell.len != height * (Py_ssize_t)sizeof(int32_t) || column_cell.len != width * (Py_ssize_t)sizeof(int32_t)
        || out.len != GRID * GRID * 6 * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "cell_sums: buffer sizes do not match");
        goto done;
    }
    const int32_t *rows = row_cell.buf, *columns = column_cell.buf;
    for (Py_ssize_t i = 0; i < height; i++)
        if (rows[i] < 0 || rows[i] >= GRID) goto bad_cell;
    for (Py_ssize_t i = 0; i < width; i++)
        if (columns[i] < 0 || columns[i] >= GRID) goto bad_cell;
    int64_t *sums = out.buf;
    memset(sums, 0, (size_t)out.len);
    Py_BEGIN_ALLOW_THREADS
    if (pixels.stride == 4) add_cell_sums(pixels.data, 4, height, width, rows, columns, sums);
    else add_cell_sums(pixels.data, 3, height, width, rows, columns, sums);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
    goto done;
bad_cell:
    PyErr_SetString(PyExc_ValueError, "cell_sums: cell index outside 0..23");
done:
    pixels_release(&pixels);
    PyBuffer_Release(&row_cell);
    PyBuffer_Release(&column_cell);
    PyBuffer_Release(&out);
    return result;
}

/* ---- CIEDE2000 nearest search -------------------------------------------------------------------------------- */

static const double PI = 3.14159265358979323846;

static double degrees(double radians) { return radians * (180.0 / PI); }
static double radians(double degrees) { return degrees * (PI / 180.0); }

static double hue_degrees(double b, double a) {
    /* numpy's np.degrees(np.arctan2(b, a)) % 360 (atan2 is within [-180, 180] degrees) */
    double h = degrees(atan2(b, a));
    return h < 0 ? h + 360.0 : h;
}

static double seventh(double x) {
    double x2 = x * x;
    return x2 * x2 * x2 * x;
}

/* CIEDE2000 (kL = kC = kH = 1): the same steps as metrics.ciede2000 (Sharma, Wu & Dalal 2005) */
static double ciede2000(const double *lab1, const double *lab2) {
    double L1 = lab1[0], a1 = lab1[1], b1 = lab1[2], L2 = lab2[0], a2 = lab2[1], b2 = lab2[2];
    double c_bar = (sqrt(a1 * a1 + b1 * b1) + sqrt(a2 * a2 + b2 * b2)) / 2;
    double c_bar7 = seventh(c_bar);
    double g = 0.5 * (1 - sqrt(c_bar7 / (c_bar7 + 6103515625.0 /* 25^7 */)));
    double a1p = (1 + g) * a1, a2p = (1 + g) * a2;
    double c1p = sqrt(a1p * a1p + b1 * b1), c2p = sqrt(a2p * a2p + b2 * b2);
    double h1p = (a1p == 0 && b1 == 0) ? 0.0 : hue_degrees(b1, a1p);
    double h2p = (a2p == 0 && b2 == 0) ? 0.0 : hue_degrees(b2, a2p);

    double d_l = L2 - L1, d_c = c2p - c1p, chroma_product = c1p * c2p;
    double dh = h2p - h1p;
    if (dh > 180) dh -= 360;
    else if (dh < -180) dh += 360;
    if (chroma_product == 0) dh = 0.0;
    double d_h = 2 * sqrt(chroma_product) * sin(radians(dh / 2));

    double l_bar = (L1 + L2) / 2, c_bar_p = (c1p + c2p) / 2, h_sum = h1p + h2p, h_bar;
    if (chroma_product == 0) h_bar = h_sum;
    else if (fabs(h1p - h2p) <= 180) h_bar = h_sum / 2;
    else h_bar = h_sum < 360 ? (h_sum + 360) / 2 : (h_sum - 360) / 2;

    double t = 1 - 0.17 * cos(radians(h_bar - 30)) + 0.24 * cos(radians(2 * h_bar)) + 0.32 * cos(radians(3 * h_bar + 6))
               - 0.20 * cos(radians(4 * h_bar - 63));
    double x = (h_bar - 275) / 25;
    double d_theta = 30 * exp(-(x * x));
    double c_bar_p7 = seventh(c_bar_p);
    double r_c = 2 * sqrt(c_bar_p7 / (c_bar_p7 + 6103515625.0));
    double l50 = (l_bar - 50) * (l_bar - 50);
    double s_l = 1 + 0.015 * l50 / sqrt(20 + l50);
    double s_c = 1 + 0.045 * c_bar_p;
    double s_h = 1 + 0.015 * c_bar_p * t;
    double r_t = -sin(radians(2 * d_theta)) * r_c;
    double lightness = d_l / s_l, chroma = d_c / s_c, hue = d_h / s_h;
    return sqrt(lightness * lightness + chroma * chroma + hue * hue + r_t * chroma * hue);
}

/* R_C of CIEDE2000 at mean chroma c: increasing in c, below 2 */
static double rotation_chroma(double c) {
    double c7 = seventh(c);
    return 2 * sqrt(c7 / (c7 + 6103515625.0));
}

/* Both primed hues in [0, 180] (b >= 0, "warm" colours) put the mean hue there too, far from 275 degrees: then
 * |R_T| / R_C <= sin(2 * 30 exp(-(95/25)^2) degrees), about 5.6e-7 (set at import). */
static double warm_r_t = 0;

/* What the lower bounds need of one colour (see the search below). */
typedef struct {
    double L, a, b, chroma;
    int warm; /* b >= 0: primed hue in [0, 180] */
} Colour;

static void colour_from(const double *lab, Colour *colour) {
    double chroma = sqrt(lab[1] * lab[1] + lab[2] * lab[2]);
    colour->L = lab[0];
    colour->a = lab[1];
    colour->b = lab[2];
    colour->chroma = chroma;
    colour->warm = lab[2] >= 0;
}

/* 1 / S_L^2 at its smallest over each 1/4 unit of mean L (S_L grows with |L - 50|: its largest value in a bin is at
 * the end farther from 50), for a lower bound of (dL / S_L)^2 without a square root. Mean L outside [0, 100] (not
 * from 8-bit sRGB) falls back to S_L < 1.75 near the ends. */
#define S_L_BINS 400
static double inverse_s_l2[S_L_BINS];

static double s_l_of(double l_bar) {
    double l50 = (l_bar - 50) * (l_bar - 50);
    return 1 + 0.015 * l50 / sqrt(20 + l50);
}

static void find_s_l_bins(void) {
    for (int i = 0; i < S_L_BINS; i++) {
        double low = i * (100.0 / S_L_BINS), high = (i + 1) * (100.0 / S_L_BINS);
        double farthest = fabs(low - 50) > fabs(high - 50) ? low : high; /* the largest S_L of the bin */
        double s_l = s_l_of(farthest) * (1 + 1e-12);
        inverse_s_l2[i] = 1 / (s_l * s_l);
    }
}

static double inverse_s_l2_at(double l_bar) {
    if (!(l_bar >= 0 && l_bar < 100)) return 1 / 3.0625;
    return inverse_s_l2[(int)(l_bar * (S_L_BINS / 100.0))];
}

/* The chroma/hue part of dE00^2 is at least factor (da^2 + db^2) / S_C^2 (see the search), and both S_C and the
 * R_T limit in the factor depend on the mean primed chroma C' only, which is at most (1 + G) C for the mean
 * unprimed chroma C (C'_i = |((1 + G) a_i, b_i)| <= (1 + G) C_i, and G is a function of C). So per 1/4 unit of C:
 * the smallest factor / S_C^2 over the bin, for a warm pair (|R_T| tiny) and for any pair. */
#define CHROMA_BINS 800 /* C up to 200: sRGB reaches about 134 */
#define CHROMA_BIN 0.25
static double chroma_weight_warm[CHROMA_BINS], chroma_weight_any[CHROMA_BINS];

static double primed_chroma_limit(double c) {
    double g = 0.5 * (1 - sqrt(seventh(c) / (seventh(c) + 6103515625.0)));
    return (1 + g) * c;
}

static void find_chroma_bins(void) {
    const double sin60 = sqrt(3.0) / 2;
    for (int i = 0; i < CHROMA_BINS; i++) {
        double largest = 0; /* of (1 + G) C over the bin, by sampling; its slope is below 1.6, so the padding covers */
        for (int k = 0; k <= 64; k++) {
            double value = primed_chroma_limit((i + k / 64.0) * CHROMA_BIN);
            if (value > largest) largest = value;
        }
        largest += 1.6 * CHROMA_BIN / 64 + 1e-9;
        double s_c = 1 + 0.045 * largest, r_c = rotation_chroma(largest);
        chroma_weight_warm[i] = (1 - warm_r_t * r_c / 2) / (s_c * s_c) * (1 - 1e-12);
        chroma_weight_any[i] = (1 - sin60 * r_c / 2) / (s_c * s_c) * (1 - 1e-12);
    }
}

static double chroma_weight(double c_bar, int warm) {
    int bin = (int)(c_bar / CHROMA_BIN);
    if (!(bin >= 0 && bin < CHROMA_BINS)) return 0; /* outside the table: no bound from the chroma/hue part */
    return warm ? chroma_weight_warm[bin] : chroma_weight_any[bin];
}

/* The range of CIEDE2000's T(h) over all hues, found by sampling once and widened by more than the sampling can
 * miss (|dT/dh| < 2.5 per radian, samples 1e-3 degrees apart). */
static double t_min = 0, t_max = 0;

static void find_t_range(void) {
    t_min = 1e9;
    t_max = -1e9;
    for (int i = 0; i <= 360000; i++) {
        double h = i * 1e-3;
        double t = 1 - 0.17 * cos(radians(h - 30)) + 0.24 * cos(radians(2 * h)) + 0.32 * cos(radians(3 * h + 6))
                   - 0.20 * cos(radians(4 * h - 63));
        if (t < t_min) t_min = t;
        if (t > t_max) t_max = t;
    }
    t_min -= 1e-4;
    t_max += 1e-4;
}

/* A lower bound of dE00^2 with the exact L, C' and |H'| parts and only the hue-angle terms (T and R_T) bounded; no
 * trigonometry. r_t_limit: a bound of |R_T| / R_C for the pair (sin 60, or far less for two warm colours). */
static double trig_free_bound(const Colour *one, const Colour *two, double s_l, double r_t_limit) {
    double c_bar = (one->chroma + two->chroma) / 2;
    double c_bar7 = seventh(c_bar);
    double g = 0.5 * (1 - sqrt(c_bar7 / (c_bar7 + 6103515625.0)));
    double a1p = (1 + g) * one->a, a2p = (1 + g) * two->a;
    double c1p = sqrt(a1p * a1p + one->b * one->b), c2p = sqrt(a2p * a2p + two->b * two->b);
    double d_c = c2p - c1p, d_a = a2p - a1p, d_b = two->b - one->b;
    /* dH'^2 = |v2' - v1'|^2 - dC'^2 for the primed chroma vectors v' = (a', b) */
    double d_h2 = d_a * d_a + d_b * d_b - d_c * d_c;
    if (d_h2 < 0) d_h2 = 0;
    double c_bar_p = (c1p + c2p) / 2;
    double s_c = 1 + 0.045 * c_bar_p;
    double s_h_max = 1 + 0.015 * c_bar_p * t_max, s_h_min = 1 + 0.015 * c_bar_p * t_min;
    double c_bar_p7 = seventh(c_bar_p);
    double k = r_t_limit * 2 * sqrt(c_bar_p7 / (c_bar_p7 + 6103515625.0)); /* >= |R_T| */
    double d_l = (two->L - one->L) / s_l;
    double x = fabs(d_c) / s_c, y_low = sqrt(d_h2) / s_h_max, y_high = sqrt(d_h2) / s_h_min;
    /* R_T <= 0, so R_T X Y >= -k |X| |Y|: minimise y^2 - k x y over the possible |Y| in [y_low, y_high].
     * (When X Y < 0 the term is >= 0; the bound below still holds, only less tight.) */
    double y = k * x / 2;
    if (y < y_low) y = y_low;
    if (y > y_high) y = y_high;
    return d_l * d_l + x * x + y * y - k * x * y;
}

/* The search's two lower bounds of dE00^2 for one pair (see nearest_ciede2000): the cheap one from the tables, and
 * the trig-free one, which the search computes only when the cheap one is below the best so far; pair_bounds returns
 * both for the tests. */
static double cheap_bound(const Colour *query, const Colour *c) {
    double d_l = c->L - query->L, d_a = c->a - query->a, d_b = c->b - query->b;
    return d_l * d_l * inverse_s_l2_at((c->L + query->L) / 2)
           + chroma_weight((c->chroma + query->chroma) / 2, c->warm && query->warm) * (d_a * d_a + d_b * d_b);
}

static double tight_bound(const Colour *query, const Colour *c) {
    return trig_free_bound(query, c, s_l_of((c->L + query->L) / 2),
                           (c->warm && query->warm) ? warm_r_t : sqrt(3.0) / 2 /* sin 60 */);
}

/* First palette index with L >= lightness (the palette is sorted by L). */
static Py_ssize_t lower_bound(const Colour *colours, Py_ssize_t p, double lightness) {
    Py_ssize_t low = 0, high = p;
    while (low < high) {
        Py_ssize_t mid = (low + high) / 2;
        if (colours[mid].L < lightness) low = mid + 1;
        else high = mid;
    }
    return low;
}

/* The palette colour nearest in Euclidean L*a*b*: walked outwards in L from `at`, each side stopping once dL alone
 * is as far as the best so far. Its CIEDE2000 distance is a close first upper bound. */
static Py_ssize_t euclidean_nearest(const Colour *colours, Py_ssize_t p, const Colour *query, Py_ssize_t at) {
    Py_ssize_t best_index = at < p ? at : p - 1, down = at - 1, up = at;
    double best = INFINITY;
    while (down >= 0 || up < p) {
        if (down >= 0) {
            const Colour *c = &colours[down];
            double d_l = query->L - c->L, d_a = query->a - c->a, d_b = query->b - c->b;
            if (d_l * d_l >= best) down = -1;
            else {
                double d = d_l * d_l + d_a * d_a + d_b * d_b;
                if (d < best) best = d, best_index = down;
                down--;
            }
        }
        if (up < p) {
            const Colour *c = &colours[up];
            double d_l = c->L - query->L, d_a = query->a - c->a, d_b = query->b - c->b;
            if (d_l * d_l >= best) up = p;
            else {
                double d = d_l * d_l + d_a * d_a + d_b * d_b;
                if (d < best) best = d, best_index = up;
                up++;
            }
        }
    }
    return best_index;
}

static PyObject *nearest_ciede2000(PyObject *self, PyObject *args) {
    /* queries: float64 (N, 3) L*a*b*; palette: float64 (P, 3) L*a*b* sorted by L; out: float64 (N). */
    Py_buffer queries, palette, out;
    if (!PyArg_ParseTuple(args, "y*y*w*", &queries, &palette, &out)) return NULL;
    PyObject *result = NULL;
    Colour *colours = NULL;
    Py_ssize_t n = queries.len / (3 * (Py_ssize_t)sizeof(double)), p = palette.len / (3 * (Py_ssize_t)sizeof(double));
    if (queries.len != n * 3 * (Py_ssize_t)sizeof(double) || palette.len != p * 3 * (Py_ssize_t)sizeof(double) || p == 0
        || out.len != n * (Py_ssize_t)sizeof(double)) {
        PyErr_SetString(PyExc_ValueError, "nearest_ciede2000: buffer sizes do not match");
        goto done;
    }
    const double *q = queries.buf, *pal = palette.buf;
    for (Py_ssize_t k = 1; k < p; k++) {
        if (!(pal[3 * k] >= pal[3 * (k - 1)])) {
            PyErr_SetString(PyExc_ValueError, "nearest_ciede2000: palette not sorted by L");
            goto done;
        }
    }
    colours = PyMem_Malloc((size_t)p * sizeof(Colour));
    if (colours == NULL) {
        result = PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < p; k++) colour_from(pal + 3 * k, &colours[k]);
    double *distance = out.buf;

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        const double *lab = q + 3 * i;
        Colour query;
        colour_from(lab, &query);
        Py_ssize_t at = lower_bound(colours, p, query.L);
        Py_ssize_t first = euclidean_nearest(colours, p, &query, at);
        double best = ciede2000(lab, pal + 3 * first);
        /* Every other colour gets two lower bounds first, and CIEDE2000 only when both are below the best so far.
         * 1. dE00^2 >= (dL / S_L)^2 + (1 - |R_T|/2) (da^2 + db^2) / S_C^2: the chroma/hue part
         *    X^2 + Y^2 + R_T X Y >= (1 - |R_T|/2)(X^2 + Y^2), S_H <= S_C (T < 3) and dC'^2 + dH'^2 =
         *    ((1 + G) da)^2 + db^2 >= da^2 + db^2; S_L and the chroma weight come from tables (their bins' worst case),
         *    |R_T| <= sin 60 R_C, or the warm limit when both colours have b >= 0.
         * 2. trig_free_bound: the exact L, C' and |H'| parts, only T and R_T bounded.
         * S_L < 1.75 for 0 <= L <= 100 (every 8-bit sRGB colour) bounds the first term by dL alone, so the palette
         * (sorted by L) is walked outwards from the query's L and each side stops at |dL| >= 1.75 best. */
        Py_ssize_t down = at - 1, up = at;
        while (down >= 0 || up < p) {
            for (int side = 0; side < 2; side++) {
                Py_ssize_t k;
                if (side == 0) {
                    if (down < 0) continue;
                    k = down--;
                } else {
                    if (up >= p) continue;
                    k = up++;
                }
                const Colour *c = &colours[k];
                double limit = best + 1e-9; /* never prune a pair a rounding error away from the best */
                double limit2 = limit * limit;
                double d_l = c->L - query.L;
                if (d_l * d_l >= 3.0625 * limit2) { /* 1.75^2: this side and everything beyond it are out */
                    if (side == 0) down = -1;
                    else up = p;
                    continue;
                }
                if (k == first) continue;
                if (cheap_bound(&query, c) >= limit2 || tight_bound(&query, c) >= limit2) continue;
                double d = ciede2000(lab, pal + 3 * k);
                if (d < best) best = d;
            }
        }
        distance[i] = best;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(colours);
    PyBuffer_Release(&queries);
    PyBuffer_Release(&palette);
    PyBuffer_Release(&out);
    return result;
}

static PyObject *pair_bounds(PyObject *self, PyObject *args) {
    /* For tests: the search's two lower bounds of dE00^2 for every (query, palette colour) pair.
     * queries (N, 3), palette (P, 3) float64 L*a*b*; out float64 (N, P, 2). */
    Py_buffer queries, palette, out;
    if (!PyArg_ParseTuple(args, "y*y*w*", &queries, &palette, &out)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = queries.len / (3 * (Py_ssize_t)sizeof(double)), p = palette.len / (3 * (Py_ssize_t)sizeof(double));
    if (queries.len != n * 3 * (Py_ssize_t)sizeof(double) || palette.len != p * 3 * (Py_ssize_t)sizeof(double)
        || out.len != n * p * 2 * (Py_ssize_t)sizeof(double)) {
        PyErr_SetString(PyExc_ValueError, "pair_bounds: buffer sizes do not match");
        goto done;
    }
    const double *q = queries.buf, *pal = palette.buf;
    double *bounds = out.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        Colour query;
        colour_from(q + 3 * i, &query);
        for (Py_ssize_t k = 0; k < p; k++) {
            Colour c;
            colour_from(pal + 3 * k, &c);
            bounds[2 * (i * p + k)] = cheap_bound(&query, &c);
            bounds[2 * (i * p + k) + 1] = tight_bound(&query, &c);
        }
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&queries);
    PyBuffer_Release(&palette);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"two_stage", two_stage, METH_VARARGS, "two_stage(pixels, height, width, columns, rows) -> 24x24x3 bytes"},
    {"cell_sums", cell_sums, METH_VARARGS, "cell_sums(pixels, height, width, row_cell, column_cell, out)"},
    {"nearest_ciede2000", nearest_ciede2000, METH_VARARGS, "nearest_ciede2000(queries, palette, out)"},
    {"pair_bounds", pair_bounds, METH_VARARGS, "pair_bounds(queries, palette, out): the search's lower bounds"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels", "Compiled inner loops of the metrics.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) {
    warm_r_t = sin(radians(2 * 30 * exp(-(95.0 / 25) * (95.0 / 25)))) + 1e-12;
    find_t_range();
    find_s_l_bins();
    find_chroma_bins();
    return PyModule_Create(&module);
}
