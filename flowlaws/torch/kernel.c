/* One pass per parameter for LawMonitor's per-unit sums (flowlaws/torch/kernel.py).

   X holds a step's operands as rows of N entries, in flowlaws.invariants.sums' order:
   D - R, D, T, R, G. A job is one parameter's view of a row (shape, strides, offset) and
   the sums it needs: for each kept set s, out[c][base_s + sum_a idx_a w_s[a]] gets channel
   c of the entry at idx (w_s[a] = 0 on an axis summed away). The channels are the six of
   a quadratic law (T (D - R), T R, D^2, T^2, R^2, G^2) or of a linear one (D - R, R, |D|,
   |T|, |R|, |G|), formed and summed in double: a float32 product is exact there. With
   ``fly`` the row D holds theta after the step, and D = theta+ - T and D - R are formed
   here too (the rows D - R and D are then not read).

   A job has at least two axes. Where every set sums its last axis (a kernel's taps, a row
   summed whole) each run along it is summed first, and the runs along the second-last axis
   are read in chunks; otherwise the entries along the last axis are. Each chunk's channels
   are then added into every set's sums. */

#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAXD 6   /* axes of a job */
#define MAXS 4   /* kept sets of a job */
#define CHANNELS 6
#define CHUNK 256
#define LONG_RUN 16  /* a run this long is summed in vectors */
/* a job: offset, ndim, order, nsets, shape[MAXD], stride[MAXD], base[MAXS], w[MAXS][MAXD] */
#define JOB (4 + 2 * MAXD + MAXS + MAXS * MAXD)

/* the operands of the entry at e, and its channels v */
#define ENTRY(e)                                                                                    \
    double t = T[e], r = R[e], g = G[e];                                                            \
    double d = fly ? DL[e] - t : DL[e], dr = fly ? d - r : DR[e];
#define QUADRATIC t * dr, t * r, d * d, t * t, r * r, g * g
#define LINEAR dr, r, fabs(d), fabs(t), fabs(r), fabs(g)
#define CHANNELS_AT(v, e)                                                                           \
    ENTRY(e)                                                                                        \
    double v[CHANNELS] = {QUADRATIC};                                                               \
    if (order != 2) {                                                                               \
        double u[CHANNELS] = {LINEAR};                                                              \
        for (int64_t c = 0; c < CHANNELS; c++) v[c] = u[c];                                         \
    }

#define OPERANDS(TYPE)                                                                              \
    const TYPE *restrict DR, const TYPE *restrict DL, const TYPE *restrict T,                       \
    const TYPE *restrict R, const TYPE *restrict G, int64_t fly, int64_t order

/* p[c][j]: channel c of the n entries e0 + j is */
#define FORM(NAME, TYPE)                                                                            \
static inline __attribute__((always_inline)) void NAME(                                             \
        double (*restrict p)[CHUNK], int64_t n, int64_t is, int64_t e0, OPERANDS(TYPE)) {           \
    for (int64_t j = 0; j < n; j++) {                                                               \
        CHANNELS_AT(v, e0 + j * is)                                                                 \
        for (int64_t c = 0; c < CHANNELS; c++) p[c][j] = v[c];                                      \
    }                                                                                               \
}

/* acc[c]: channel c summed over the m entries e0 + k ms, in vectors */
#define REDUCE(NAME, TYPE)                                                                          \
static inline __attribute__((always_inline)) void NAME(                                             \
        double *restrict acc, int64_t m, int64_t ms, int64_t e0, OPERANDS(TYPE)) {                  \
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, a4 = 0.0, a5 = 0.0;                              \
    _Pragma("omp simd reduction(+:a0,a1,a2,a3,a4,a5)")                                              \
    for (int64_t k = 0; k < m; k++) {                                                               \
        int64_t e = e0 + k * ms;                                                                    \
        ENTRY(e)                                                                                    \
        if (order == 2) {                                                                           \
            a0 += t * dr; a1 += t * r; a2 += d * d; a3 += t * t; a4 += r * r; a5 += g * g;          \
        } else {                                                                                    \
            a0 += dr; a1 += r; a2 += fabs(d); a3 += fabs(t); a4 += fabs(r); a5 += fabs(g);          \
        }                                                                                           \
    }                                                                                               \
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3; acc[4] = a4; acc[5] = a5;                   \
}

/* p[c][j]: channel c summed over the run of m entries (ms apart) at e0 + j is; a short run
   one entry at a time (a vector's set-up and its six horizontal sums cost more there) */
#define RUNS(NAME, REDUCES, TYPE)                                                                   \
static inline __attribute__((always_inline)) void NAME(                                             \
        double (*restrict p)[CHUNK], int64_t n, int64_t is, int64_t m, int64_t ms, int64_t e0, OPERANDS(TYPE)) { \
    if (m >= LONG_RUN) {                                                                            \
        for (int64_t j = 0; j < n; j++) {                                                           \
            double acc[CHANNELS];                                                                   \
            REDUCES(acc, m, ms, e0 + j * is, DR, DL, T, R, G, fly, order);                          \
            for (int64_t c = 0; c < CHANNELS; c++) p[c][j] = acc[c];                                \
        }                                                                                           \
        return;                                                                                     \
    }                                                                                               \
    for (int64_t c = 0; c < CHANNELS; c++)                                                          \
        for (int64_t j = 0; j < n; j++) p[c][j] = 0.0;                                              \
    for (int64_t k = 0; k < m; k++)  /* the n runs side by side, one entry of each at a time */     \
        for (int64_t j = 0; j < n; j++) {                                                           \
            CHANNELS_AT(v, e0 + j * is + k * ms)                                                    \
            for (int64_t c = 0; c < CHANNELS; c++) p[c][j] += v[c];                                 \
        }                                                                                           \
}

/* add p's n columns into one kept set's sums: one slot (ws = 0), n slots side by side
   (ws = 1), or n slots ws apart */
static inline void add(double *restrict out, int64_t ld, int64_t slot, int64_t ws,
                       double (*restrict p)[CHUNK], int64_t n) {
    for (int64_t c = 0; c < CHANNELS; c++) {
        const double *pc = p[c];
        double *oc = out + c * ld + slot;
        if (ws == 0) {
            double acc = 0.0;
            _Pragma("omp simd reduction(+:acc)")
            for (int64_t j = 0; j < n; j++) acc += pc[j];
            *oc += acc;
        } else if (ws == 1) {
            for (int64_t j = 0; j < n; j++) oc[j] += pc[j];
        } else {
            for (int64_t j = 0; j < n; j++) oc[j * ws] += pc[j];
        }
    }
}

/* on x86-64 Linux, an AVX2 copy of each entry point beside the baseline one, chosen when
   the library is loaded (four doubles a vector instead of two) */
#if defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

/* the common cases (contiguous, quadratic, with or without fly) compiled on their own */
#define SPECIAL(CALL, stride, ...)                                                                  \
    if (stride == 1 && order == 2 && fly) CALL(__VA_ARGS__, DR, DL, T, R, G, 1, 2);                 \
    else if (stride == 1 && order == 2) CALL(__VA_ARGS__, DR, DL, T, R, G, 0, 2);                   \
    else CALL(__VA_ARGS__, DR, DL, T, R, G, fly, order);

#define SUMS(NAME, FORMS, REDUCES, RUNSUMS, TYPE)                                                   \
FORM(FORMS, TYPE)                                                                                   \
REDUCE(REDUCES, TYPE)                                                                               \
RUNS(RUNSUMS, REDUCES, TYPE)                                                                        \
CLONES                                                                                              \
void NAME(const TYPE *X, int64_t N, double *out, int64_t ld, int64_t ncols,                         \
          const int64_t *jobs, int64_t njobs, int64_t fly) {                                        \
    const TYPE *DR = X, *DL = X + N, *T = X + 2 * N, *R = X + 3 * N, *G = X + 4 * N;                \
    double p[CHANNELS][CHUNK];                                                                      \
    for (int64_t c = 0; c < CHANNELS; c++) memset(out + c * ld, 0, ncols * sizeof(double));         \
    for (int64_t k = 0; k < njobs; k++) {                                                           \
        const int64_t *job = jobs + k * JOB;                                                        \
        int64_t offset = job[0], nd = job[1], order = job[2], nsets = job[3];                       \
        const int64_t *shape = job + 4, *stride = job + 4 + MAXD, *base = job + 4 + 2 * MAXD;       \
        const int64_t *w = job + 4 + 2 * MAXD + MAXS;                                               \
        int64_t summed = 1;                                                                         \
        for (int64_t s = 0; s < nsets; s++) summed &= w[s * MAXD + nd - 1] == 0;                    \
        int64_t m = summed ? shape[nd - 1] : 1, ms = stride[nd - 1];  /* the runs */                \
        int64_t axis = summed ? nd - 2 : nd - 1;  /* the axis read in chunks */                     \
        int64_t inner = shape[axis], is = stride[axis], outer = 1, idx[MAXD] = {0};                 \
        for (int64_t a = 0; a < axis; a++) outer *= shape[a];                                       \
        for (int64_t o = 0; o < outer; o++) {                                                       \
            int64_t at = offset, slot[MAXS];                                                        \
            for (int64_t s = 0; s < nsets; s++) slot[s] = base[s];                                  \
            for (int64_t a = 0; a < axis; a++) {                                                    \
                at += idx[a] * stride[a];                                                           \
                for (int64_t s = 0; s < nsets; s++) slot[s] += idx[a] * w[s * MAXD + a];            \
            }                                                                                       \
            for (int64_t j0 = 0; j0 < inner; j0 += CHUNK) {                                         \
                int64_t n = inner - j0 < CHUNK ? inner - j0 : CHUNK, e0 = at + j0 * is;             \
                if (summed) { SPECIAL(RUNSUMS, ms, p, n, is, m, ms, e0) }                           \
                else { SPECIAL(FORMS, is, p, n, is, e0) }                                           \
                for (int64_t s = 0; s < nsets; s++) {                                               \
                    int64_t ws = w[s * MAXD + axis];                                                \
                    add(out, ld, slot[s] + j0 * ws, ws, p, n);                                      \
                }                                                                                   \
            }                                                                                       \
            for (int64_t a = axis - 1; a >= 0; a--) {                                               \
                if (++idx[a] < shape[a]) break;                                                     \
                idx[a] = 0;                                                                         \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
}

SUMS(sums_float32, form_float32, reduce_float32, runs_float32, float)
SUMS(sums_float64, form_float64, reduce_float64, runs_float64, double)
