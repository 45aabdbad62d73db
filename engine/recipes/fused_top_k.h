/* Fused scoring: user x item factor products, a per-user softmax denominator and a running top-k, tile by
 * tile, without writing the score matrix anywhere.
 *
 * Every score is computed by the same sequence of operations wherever its user and item sit in a batch
 * (one product per (user, item), summed over the factors in order 0..dim-1), so results depend on the
 * model and the user only: not on the other users of a batch, the tile sizes, or the number of threads.
 * The work is done by a 6-user x 16-item register tile (the classic 6x16 single-precision GEMM micro
 * kernel), written with GCC/Clang vector extensions and compiled twice: once for AVX2+FMA (chosen at run
 * time when the CPU has them) and once for the baseline instruction set of the build.
 */
#ifndef ENGINE_FUSED_TOP_K_H
#define ENGINE_FUSED_TOP_K_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FK_MR 6  /* users per register tile */
#define FK_NR 16 /* items per register tile (one packed panel) */
#define FK_USER_BLOCK 96 /* users that share one item tile while it is in the L2 cache */

typedef float fk_v8 __attribute__((vector_size(32), aligned(4)));
typedef int32_t fk_v8i __attribute__((vector_size(32), aligned(4)));

typedef struct {
    const float *users;          /* n_rows x dim, row-major */
    const float *packed;         /* ceil(n_items / 16) panels of dim x 16 floats, zero-padded */
    int64_t n_items;
    int64_t dim;
    int64_t tile_items;          /* items per tile: a multiple of 16 */
    /* Sparse additions to the scores, CSR over the rows, columns ascending within a row (or NULL). */
    const int64_t *add_indptr;
    const int32_t *add_indices;
    const float *add_values;
    /* Items never to return, CSR over the rows, columns ascending within a row (or NULL). */
    const int64_t *excl_indptr;
    const int64_t *excl_indices;
    const uint8_t *blocked;      /* n_items: 1 = never return (or NULL) */
    const uint8_t *allowed;      /* n_rows x n_items: 0 = never return (or NULL) */
    int64_t k;
    int64_t *top_idx;            /* n_rows x k, best first */
    float *top_val;              /* n_rows x k, the scores of top_idx */
    int64_t *top_count;          /* n_rows: how many of the k slots hold an item */
    double *log_norm;            /* n_rows: log(sum(exp(score))) over the catalogue (or NULL) */
    float *scores;               /* n_rows x n_items: every score, written out (or NULL) */
} fk_job;

/* ------------------------------------------------------------------ running top-k (scalar) */

/* The heap's root is the worst kept entry: the lowest score, and of equal scores the highest index, so
 * the k kept are the best by (score descending, index ascending). */
static inline int fk_worse(float va, int64_t ia, float vb, int64_t ib) {
    return va < vb || (va == vb && ia > ib);
}

static inline void fk_sift_down(float *val, int64_t *idx, int64_t n, int64_t i) {
    float v = val[i];
    int64_t x = idx[i];
    for (;;) {
        int64_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && fk_worse(val[child + 1], idx[child + 1], val[child], idx[child])) child++;
        if (!fk_worse(val[child], idx[child], v, x)) break;
        val[i] = val[child];
        idx[i] = idx[child];
        i = child;
    }
    val[i] = v;
    idx[i] = x;
}

static inline void fk_sift_up(float *val, int64_t *idx, int64_t i) {
    float v = val[i];
    int64_t x = idx[i];
    while (i > 0) {
        int64_t parent = (i - 1) / 2;
        if (!fk_worse(v, x, val[parent], idx[parent])) break;
        val[i] = val[parent];
        idx[i] = idx[parent];
        i = parent;
    }
    val[i] = v;
    idx[i] = x;
}

/* Heap sort into best-first order (the heap's root is the worst entry, so it goes last). */
static void fk_sort_best_first(float *val, int64_t *idx, int64_t n) {
    for (int64_t end = n - 1; end > 0; end--) {
        float v = val[0];
        int64_t x = idx[0];
        val[0] = val[end];
        idx[0] = idx[end];
        val[end] = v;
        idx[end] = x;
        fk_sift_down(val, idx, end, 0);
    }
}

/* ------------------------------------------------------------------ vector pieces */

static inline fk_v8 fk_load(const float *p) { return *(const fk_v8 *)p; }
static inline void fk_store(float *p, fk_v8 v) { *(fk_v8 *)p = v; }
/* x in every lane (x - 0 is x for every float, and compiles to one broadcast). */
static inline fk_v8 fk_splat(float x) { return x - (fk_v8){0}; }

static inline fk_v8 fk_select(fk_v8i mask, fk_v8 a, fk_v8 b) {
    return (fk_v8)(((fk_v8i)a & mask) | ((fk_v8i)b & ~mask));
}

static inline fk_v8 fk_max(fk_v8 a, fk_v8 b) { return fk_select(a > b, a, b); }

/* exp(x) for x <= 0, within 2 ulp; 0 below -87.3 (where float32 runs out of normal numbers).
 * Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2, and a degree-6 polynomial for exp(r). */
static inline fk_v8 fk_exp_nonpositive(fk_v8 x) {
    const fk_v8 low = fk_splat(-87.3f);
    fk_v8i underflow = x < low;
    x = fk_max(x, low);
    const fk_v8 shifter = fk_splat(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
    fk_v8 t = x * fk_splat(1.44269504088896341f) + shifter;
    fk_v8 n = t - shifter;
    fk_v8 r = x - n * fk_splat(0.693359375f);
    r = r - n * fk_splat(-2.12194440e-4f);
    fk_v8 p = fk_splat(1.9875691500e-4f);
    p = p * r + fk_splat(1.3981999507e-3f);
    p = p * r + fk_splat(8.3334519073e-3f);
    p = p * r + fk_splat(4.1665795894e-2f);
    p = p * r + fk_splat(1.6666665459e-1f);
    p = p * r + fk_splat(5.0000001201e-1f);
    p = p * (r * r) + r + fk_splat(1.0f);
    fk_v8i bits = (__builtin_convertvector(n, fk_v8i) + 127) << 23;
    return (fk_v8)((fk_v8i)(p * (fk_v8)bits) & ~underflow);
}

static inline float fk_hmax(fk_v8 v) {
    float m = v[0];
    for (int i = 1; i < 8; i++) m = v[i] > m ? v[i] : m;
    return m;
}

static inline float fk_hsum(fk_v8 v) {
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

/* ------------------------------------------------------------------ the kernel body */

/* Scores of FK_MR users (factors interleaved: a[f * FK_MR + r]) against one packed panel of 16 items. */
static inline __attribute__((always_inline)) void fk_micro(const float *a, const float *b, int64_t dim,
                                                           float *c, int64_t ldc) {
    fk_v8 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
    fk_v8 c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
    for (int64_t f = 0; f < dim; f++) {
        fk_v8 b0 = fk_load(b + f * FK_NR), b1 = fk_load(b + f * FK_NR + 8);
        const float *af = a + f * FK_MR;
        c00 += af[0] * b0; c01 += af[0] * b1;
        c10 += af[1] * b0; c11 += af[1] * b1;
        c20 += af[2] * b0; c21 += af[2] * b1;
        c30 += af[3] * b0; c31 += af[3] * b1;
        c40 += af[4] * b0; c41 += af[4] * b1;
        c50 += af[5] * b0; c51 += af[5] * b1;
    }
    fk_store(c, c00); fk_store(c + 8, c01);
    fk_store(c + ldc, c10); fk_store(c + ldc + 8, c11);
    fk_store(c + 2 * ldc, c20); fk_store(c + 2 * ldc + 8, c21);
    fk_store(c + 3 * ldc, c30); fk_store(c + 3 * ldc + 8, c31);
    fk_store(c + 4 * ldc, c40); fk_store(c + 4 * ldc + 8, c41);
    fk_store(c + 5 * ldc, c50); fk_store(c + 5 * ldc + 8, c51);
}

typedef struct {
    int64_t add_at, excl_at; /* cursors into the row's CSR entries, moving with the tiles */
    double max, sum;         /* running softmax denominator: sum(exp(score - max)) */
} fk_row_state;

/* One row's scores over items [j0, j0 + n) (x holds n scores padded with -inf to a multiple of 16). */
static inline __attribute__((always_inline)) void fk_row(const fk_job *job, int64_t row, float *x, int64_t j0,
                                                         int64_t n, fk_row_state *st) {
    if (job->add_indptr) {
        int64_t end = job->add_indptr[row + 1];
        while (st->add_at < end && job->add_indices[st->add_at] < j0 + n) {
            x[job->add_indices[st->add_at] - j0] += job->add_values[st->add_at];
            st->add_at++;
        }
    }
    if (job->scores) memcpy(job->scores + row * job->n_items + j0, x, n * sizeof(float));
    int64_t n_padded = (n + FK_NR - 1) / FK_NR * FK_NR;
    fk_v8 m0 = fk_splat(-INFINITY), m1 = m0;
    for (int64_t j = 0; j < n_padded; j += FK_NR) {
        m0 = fk_max(fk_load(x + j), m0);
        m1 = fk_max(fk_load(x + j + 8), m1);
    }
    float tile_max = fk_hmax(fk_max(m0, m1));

    if (job->log_norm && tile_max > -INFINITY) {
        fk_v8 shift = fk_splat(tile_max), s0 = {0}, s1 = {0};
        for (int64_t j = 0; j < n_padded; j += FK_NR) {
            s0 += fk_exp_nonpositive(fk_load(x + j) - shift);
            s1 += fk_exp_nonpositive(fk_load(x + j + 8) - shift);
        }
        double tile_sum = (double)fk_hsum(s0 + s1);
        if (tile_max > st->max) {
            st->sum = st->sum * exp(st->max - (double)tile_max) + tile_sum;
            st->max = tile_max;
        } else {
            st->sum += tile_sum * exp((double)tile_max - st->max);
        }
    }

    int64_t k = job->k;
    if (k == 0) return;
    float *val = job->top_val + row * k;
    int64_t *idx = job->top_idx + row * k;
    int64_t count = job->top_count[row];
    float threshold = count < k ? -INFINITY : val[0];
    if (!(tile_max > threshold)) return;
    const uint8_t *allowed = job->allowed ? job->allowed + row * job->n_items : NULL;
    int64_t excl_end = job->excl_indptr ? job->excl_indptr[row + 1] : 0;
    fk_v8 t = fk_splat(threshold);
    for (int64_t j = 0; j < n_padded; j += FK_NR) {
        fk_v8i hit = (fk_load(x + j) > t) | (fk_load(x + j + 8) > t);
        if (!(hit[0] | hit[1] | hit[2] | hit[3] | hit[4] | hit[5] | hit[6] | hit[7])) continue;
        for (int64_t jj = j; jj < j + FK_NR; jj++) {
            float v = x[jj];
            if (!(v > threshold)) continue;
            int64_t item = j0 + jj;
            if (job->blocked && job->blocked[item]) continue;
            if (allowed && !allowed[item]) continue;
            if (job->excl_indptr) {
                while (st->excl_at < excl_end && job->excl_indices[st->excl_at] < item) st->excl_at++;
                if (st->excl_at < excl_end && job->excl_indices[st->excl_at] == item) continue;
            }
            if (count < k) {
                val[count] = v;
                idx[count] = item;
                fk_sift_up(val, idx, count);
                count++;
            } else {
                val[0] = v;
                idx[0] = item;
                fk_sift_down(val, idx, k, 0);
            }
            if (count == k) {
                threshold = val[0];
                t = fk_splat(threshold);
            }
        }
    }
    job->top_count[row] = count;
}

static inline size_t fk_round64(size_t bytes) { return (bytes + 63) / 64 * 64; }

static inline __attribute__((always_inline)) int fk_run_body(const fk_job *job, int64_t row0, int64_t row1) {
    const int64_t dim = job->dim, tile = job->tile_items;
    float *a = aligned_alloc(64, fk_round64(FK_USER_BLOCK * dim * sizeof(float)));
    float *c = aligned_alloc(64, fk_round64(FK_MR * tile * sizeof(float)));
    fk_row_state *state = malloc(FK_USER_BLOCK * sizeof(fk_row_state));
    if (!a || !c || !state) {
        free(a);
        free(c);
        free(state);
        return -1;
    }
    for (int64_t block0 = row0; block0 < row1; block0 += FK_USER_BLOCK) {
        int64_t rows = row1 - block0 < FK_USER_BLOCK ? row1 - block0 : FK_USER_BLOCK;
        int64_t groups = (rows + FK_MR - 1) / FK_MR;
        /* Each group of 6 users with its factors interleaved; missing users are zeros. */
        memset(a, 0, (size_t)(groups * FK_MR * dim * sizeof(float)));
        for (int64_t r = 0; r < rows; r++) {
            const float *u = job->users + (block0 + r) * dim;
            float *g = a + (r / FK_MR) * FK_MR * dim + r % FK_MR;
            for (int64_t f = 0; f < dim; f++) g[f * FK_MR] = u[f];
            int64_t row = block0 + r;
            state[r].add_at = job->add_indptr ? job->add_indptr[row] : 0;
            state[r].excl_at = job->excl_indptr ? job->excl_indptr[row] : 0;
            state[r].max = -INFINITY;
            state[r].sum = 0.0;
            if (job->k) job->top_count[row] = 0;
        }
        for (int64_t j0 = 0; j0 < job->n_items; j0 += tile) {
            int64_t n = job->n_items - j0 < tile ? job->n_items - j0 : tile;
            int64_t panels = (n + FK_NR - 1) / FK_NR;
            const float *b = job->packed + (j0 / FK_NR) * dim * FK_NR;
            for (int64_t g = 0; g < groups; g++) {
                for (int64_t p = 0; p < panels; p++) fk_micro(a + g * FK_MR * dim, b + p * dim * FK_NR, dim, c + p * FK_NR, tile);
                for (int64_t r = 0; r < FK_MR && g * FK_MR + r < rows; r++) {
                    float *x = c + r * tile;
                    for (int64_t j = n; j < panels * FK_NR; j++) x[j] = -INFINITY;
                    fk_row(job, block0 + g * FK_MR + r, x, j0, n, &state[g * FK_MR + r]);
                }
            }
        }
        for (int64_t r = 0; r < rows; r++) {
            int64_t row = block0 + r;
            if (job->k) fk_sort_best_first(job->top_val + row * job->k, job->top_idx + row * job->k, job->top_count[row]);
            if (job->log_norm) job->log_norm[row] = state[r].max + log(state[r].sum);
        }
    }
    free(a);
    free(c);
    free(state);
    return 0;
}

/* Set to run the baseline build even where AVX2 is there (tests check both builds on one machine). */
static int fk_baseline_only = 0;

/* Which build of the kernels this CPU runs: "avx2" or "baseline". */
static const char *fk_variant(void) {
#if defined(__x86_64__) || defined(__i386__)
    if (fk_baseline_only) return "baseline";
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
#endif
    return "baseline";
}

/* Defines `static int name(const job_type *job, int64_t row0, int64_t row1)` running `body` (an
 * always-inline function of the same arguments) compiled for AVX2+FMA when the CPU has them, else for
 * the build's baseline instruction set. */
#if defined(__x86_64__) || defined(__i386__)
#define FK_DISPATCHED(name, job_type, body)                                                                   \
    __attribute__((target("avx2,fma"))) static int name##_avx2(const job_type *job, int64_t r0, int64_t r1) { \
        return body(job, r0, r1);                                                                             \
    }                                                                                                         \
    static int name##_baseline(const job_type *job, int64_t r0, int64_t r1) { return body(job, r0, r1); }     \
    static int name(const job_type *job, int64_t r0, int64_t r1) {                                            \
        return fk_variant()[0] == 'a' ? name##_avx2(job, r0, r1) : name##_baseline(job, r0, r1);              \
    }
#else
#define FK_DISPATCHED(name, job_type, body) \
    static int name(const job_type *job, int64_t r0, int64_t r1) { return body(job, r0, r1); }
#endif

/* fk_run(job, row0, row1): scores rows [row0, row1) of the job; 0, or -1 when memory ran out. */
FK_DISPATCHED(fk_run, fk_job, fk_run_body)

#endif
