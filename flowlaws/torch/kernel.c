/* One pass per parameter for LawMonitor's per-unit sums (flowlaws/torch/kernel.py).

   X holds a step's operands as rows of N entries, in flowlaws.invariants.sums' order:
   D - R, D, T, R, G. A job is one parameter's view of a row (shape, strides, offset) and
   the sums it needs: for each kept set s, out[c][base_s + sum_a idx_a w_s[a]] gets channel
   c of the entry at idx (w_s[a] = 0 on an axis summed away). The channels are the six of
   a quadratic law (T (D - R), T R, D^2, T^2, R^2, G^2) or of a linear one (D - R, R, |D|,
   |T|, |R|, |G|), formed and summed in double: a float32 product is exact there. With
   ``fly`` the row D holds theta after the step, and D = theta+ - T and D - R are formed
   here too (the rows D - R and D are then not read). A job's entries are read in chunks
   of its last axis; each chunk's channels are summed into every kept set. */

#include <math.h>
#include <string.h>

#define MAXD 6   /* axes of a parameter */
#define MAXS 4   /* kept sets of a job */
#define CHANNELS 6
#define CHUNK 256
/* a job: offset, ndim, order, nsets, shape[MAXD], stride[MAXD], base[MAXS], w[MAXS][MAXD] */
#define JOB (4 + 2 * MAXD + MAXS + MAXS * MAXD)

/* the channels of n entries, e apart, from the operands at offset e0: order, fly and the
   stride are constants where a caller passes them (the common case compiled on its own) */
#define FORM(NAME, TYPE)                                                                            \
static inline __attribute__((always_inline)) void NAME(                                            \
        double (*restrict p)[CHUNK], long n, long is, long e0, const TYPE *restrict DR,            \
        const TYPE *restrict DL, const TYPE *restrict T, const TYPE *restrict R,                    \
        const TYPE *restrict G, long fly, long order) {                                             \
    for (long j = 0; j < n; j++) {                                                                  \
        long e = e0 + j * is;                                                                       \
        double t = T[e], r = R[e], g = G[e];                                                        \
        double d = fly ? DL[e] - t : DL[e], dr = fly ? d - r : DR[e];                               \
        if (order == 2) {                                                                           \
            p[0][j] = t * dr; p[1][j] = t * r; p[2][j] = d * d;                                     \
            p[3][j] = t * t; p[4][j] = r * r; p[5][j] = g * g;                                      \
        } else {                                                                                    \
            p[0][j] = dr; p[1][j] = r; p[2][j] = fabs(d);                                           \
            p[3][j] = fabs(t); p[4][j] = fabs(r); p[5][j] = fabs(g);                                \
        }                                                                                           \
    }                                                                                               \
}

/* the channels of n entries, e apart, from the operands at offset e0, summed */
#define REDUCE(NAME, TYPE)                                                                          \
static inline __attribute__((always_inline)) void NAME(                                            \
        double *restrict acc, long n, long is, long e0, const TYPE *restrict DR,                    \
        const TYPE *restrict DL, const TYPE *restrict T, const TYPE *restrict R,                    \
        const TYPE *restrict G, long fly, long order) {                                             \
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, a4 = 0.0, a5 = 0.0;                              \
    _Pragma("omp simd reduction(+:a0,a1,a2,a3,a4,a5)")                                              \
    for (long j = 0; j < n; j++) {                                                                  \
        long e = e0 + j * is;                                                                       \
        double t = T[e], r = R[e], g = G[e];                                                        \
        double d = fly ? DL[e] - t : DL[e], dr = fly ? d - r : DR[e];                               \
        if (order == 2) {                                                                           \
            a0 += t * dr; a1 += t * r; a2 += d * d; a3 += t * t; a4 += r * r; a5 += g * g;          \
        } else {                                                                                    \
            a0 += dr; a1 += r; a2 += fabs(d); a3 += fabs(t); a4 += fabs(r); a5 += fabs(g);          \
        }                                                                                           \
    }                                                                                               \
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3; acc[4] = a4; acc[5] = a5;                   \
}

/* add the channels of n entries into one kept set's sums: one slot (ws = 0), n slots side by
   side (ws = 1), or n slots ws apart */
static inline void add(double *restrict out, long ld, long slot, long ws, double (*restrict p)[CHUNK], long n) {
    for (long c = 0; c < CHANNELS; c++) {
        const double *pc = p[c];
        double *oc = out + c * ld + slot;
        if (ws == 0) {
            double acc = 0.0;
            _Pragma("omp simd reduction(+:acc)")
            for (long j = 0; j < n; j++) acc += pc[j];
            *oc += acc;
        } else if (ws == 1) {
            for (long j = 0; j < n; j++) oc[j] += pc[j];
        } else {
            for (long j = 0; j < n; j++) oc[j * ws] += pc[j];
        }
    }
}

#define SUMS(NAME, FORMS, REDUCES, TYPE)                                                            \
FORM(FORMS, TYPE)                                                                                   \
REDUCE(REDUCES, TYPE)                                                                               \
__attribute__((target_clones("avx2", "default")))                                                   \
void NAME(const TYPE *X, long N, double *out, long ld, long ncols, const long *jobs, long njobs,    \
          long fly) {                                                                               \
    const TYPE *DR = X, *DL = X + N, *T = X + 2 * N, *R = X + 3 * N, *G = X + 4 * N;               \
    double p[CHANNELS][CHUNK];                                                                      \
    for (long c = 0; c < CHANNELS; c++) memset(out + c * ld, 0, ncols * sizeof(double));           \
    for (long k = 0; k < njobs; k++) {                                                              \
        const long *job = jobs + k * JOB;                                                           \
        long offset = job[0], nd = job[1], order = job[2], nsets = job[3];                          \
        const long *shape = job + 4, *stride = job + 4 + MAXD, *base = job + 4 + 2 * MAXD;         \
        const long *w = job + 4 + 2 * MAXD + MAXS;                                                  \
        long inner = shape[nd - 1], is = stride[nd - 1], outer = 1, idx[MAXD] = {0}, summed = 1;    \
        for (long a = 0; a < nd - 1; a++) outer *= shape[a];                                        \
        for (long s = 0; s < nsets; s++) summed &= w[s * MAXD + nd - 1] == 0;                       \
        for (long o = 0; o < outer; o++) {                                                          \
            long at = offset, slot[MAXS];                                                           \
            for (long s = 0; s < nsets; s++) slot[s] = base[s];                                     \
            for (long a = 0; a < nd - 1; a++) {                                                     \
                at += idx[a] * stride[a];                                                           \
                for (long s = 0; s < nsets; s++) slot[s] += idx[a] * w[s * MAXD + a];               \
            }                                                                                       \
            if (summed) {  /* every set sums the last axis: its channels summed first */          \
                double acc[CHANNELS];                                                               \
                if (is == 1 && order == 2 && fly) REDUCES(acc, inner, 1, at, DR, DL, T, R, G, 1, 2);  \
                else if (is == 1 && order == 2) REDUCES(acc, inner, 1, at, DR, DL, T, R, G, 0, 2);    \
                else REDUCES(acc, inner, is, at, DR, DL, T, R, G, fly, order);                      \
                for (long s = 0; s < nsets; s++)                                                    \
                    for (long c = 0; c < CHANNELS; c++) out[c * ld + slot[s]] += acc[c];            \
            }                                                                                       \
            else for (long j0 = 0; j0 < inner; j0 += CHUNK) {                                       \
                long n = inner - j0 < CHUNK ? inner - j0 : CHUNK, e0 = at + j0 * is;                \
                if (is == 1 && order == 2 && fly) FORMS(p, n, 1, e0, DR, DL, T, R, G, 1, 2);        \
                else if (is == 1 && order == 2) FORMS(p, n, 1, e0, DR, DL, T, R, G, 0, 2);          \
                else FORMS(p, n, is, e0, DR, DL, T, R, G, fly, order);                              \
                for (long s = 0; s < nsets; s++) {                                                  \
                    long ws = w[s * MAXD + nd - 1];                                                 \
                    add(out, ld, slot[s] + j0 * ws, ws, p, n);                                      \
                }                                                                                   \
            }                                                                                       \
            for (long a = nd - 2; a >= 0; a--) {                                                    \
                if (++idx[a] < shape[a]) break;                                                     \
                idx[a] = 0;                                                                         \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
}

SUMS(sums_float32, form_float32, reduce_float32, float)
SUMS(sums_float64, form_float64, reduce_float64, double)
