/* Fused scoring: user x item factor products, a per-user softmax denominator and a running top-k, tile by
 * tile, without writing the score matrix anywhere.
 *
 * Every score is computed by the same sequence of operations wherever its user and item sit in a batch
 * (one product per (user, item), summed over the factors in order 0..dim-1), so results depend on the
 * model and the user only: not on the other users of a batch, the tile sizes, or the number of threads.
 * The work is done by a register tile of users x items (the classic single-precision GEMM micro kernel:
 * 12 users x 32 items with AVX-512, 6 x 16 otherwise), written with GCC/Clang vector extensions and
 * compiled three times: for AVX-512 and for AVX2 (each chosen at run time when the CPU has it, FMA
 * included) and for the baseline instruction set of the build. The AVX-512 and AVX2 builds give the same
 * bits: every lane runs the same fused multiply-adds in the same order.
 */
#ifndef ENGINE_FUSED_TOP_K_H
#define ENGINE_FUSED_TOP_K_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FK_MR 6  /* users per register tile */
#define FK_MR_WIDE 12 /* users per register tile of the AVX-512 build (two panels of items each) */
#define FK_NR 16 /* items per packed panel: one register tile of the AVX2 build */
#define FK_USER_BLOCK 96 /* users that share one item tile while it is in the L2 cache */

/* Every function taking or returning vectors is inlined into the build that calls it: called across builds,
 * vectors would be passed by two different conventions. */
#define FK_INLINE static inline __attribute__((always_inline))

typedef float fk_v8 __attribute__((vector_size(32), aligned(4)));
typedef int32_t fk_v8i __attribute__((vector_size(32), aligned(4)));
/* One panel's scores, in one register of the AVX-512 build (only that build uses them). */
typedef float fk_v16 __attribute__((vector_size(64), aligned(4)));
typedef int32_t fk_v16i __attribute__((vector_size(64), aligned(4)));

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

/* The same pieces for 8 lanes (AVX2, suffix none) and 16 (AVX-512, suffix 16): load, store, broadcast,
 * lane select and max, and exp(x) for x <= 0 within 2 ulp, 0 below -87.3 (where float32 runs out of normal
 * numbers): Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2, and a degree-6 polynomial for exp(r). Lane
 * for lane both widths do the same operations, so they give the same bits. */
#define FK_VECTOR_PIECES(sfx, vt, vit)                                                                       \
    FK_INLINE vt fk_load##sfx(const float *p) { return *(const vt *)p; }                                     \
    FK_INLINE void fk_store##sfx(float *p, vt v) { *(vt *)p = v; }                                           \
    /* x in every lane (x - 0 is x for every float, and compiles to one broadcast). */                       \
    FK_INLINE vt fk_splat##sfx(float x) { return x - (vt){0}; }                                              \
    FK_INLINE vt fk_select##sfx(vit mask, vt a, vt b) { return (vt)(((vit)a & mask) | ((vit)b & ~mask)); }   \
    FK_INLINE vt fk_max##sfx(vt a, vt b) { return fk_select##sfx(a > b, a, b); }                             \
    FK_INLINE vt fk_exp_nonpositive##sfx(vt x) {                                                             \
        const vt low = fk_splat##sfx(-87.3f);                                                                \
        vit underflow = x < low;                                                                             \
        x = fk_max##sfx(x, low);                                                                             \
        const vt shifter = fk_splat##sfx(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */      \
        vt t = x * fk_splat##sfx(1.44269504088896341f) + shifter;                                            \
        vt n = t - shifter;                                                                                  \
        vt r = x - n * fk_splat##sfx(0.693359375f);                                                          \
        r = r - n * fk_splat##sfx(-2.12194440e-4f);                                                          \
        vt p = fk_splat##sfx(1.9875691500e-4f);                                                              \
        p = p * r + fk_splat##sfx(1.3981999507e-3f);                                                         \
        p = p * r + fk_splat##sfx(8.3334519073e-3f);                                                         \
        p = p * r + fk_splat##sfx(4.1665795894e-2f);                                                         \
        p = p * r + fk_splat##sfx(1.6666665459e-1f);                                                         \
        p = p * r + fk_splat##sfx(5.0000001201e-1f);                                                         \
        p = p * (r * r) + r + fk_splat##sfx(1.0f);                                                           \
        vit bits = (__builtin_convertvector(n, vit) + 127) << 23;                                            \
        return (vt)((vit)(p * (vt)bits) & ~underflow);                                                       \
    }

FK_VECTOR_PIECES(, fk_v8, fk_v8i)
FK_VECTOR_PIECES(16, fk_v16, fk_v16i)

FK_INLINE float fk_hmax(fk_v8 v) {
    float m = v[0];
    for (int i = 1; i < 8; i++) m = v[i] > m ? v[i] : m;
    return m;
}

FK_INLINE float fk_hsum(fk_v8 v) {
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

/* The two halves of 16 lanes. */
FK_INLINE fk_v8 fk_low8(fk_v16 v) { fk_v8 h; memcpy(&h, &v, sizeof h); return h; }
FK_INLINE fk_v8 fk_high8(fk_v16 v) { fk_v8 h; memcpy(&h, (const char *)&v + sizeof h, sizeof h); return h; }

/* ------------------------------------------------------------------ one row of a tile, either width */

/* The largest of a row's n_padded scores. */
FK_INLINE float fk_row_max(const float *x, int64_t n_padded, int wide) {
    if (wide) {
        fk_v16 m = fk_splat16(-INFINITY);
        for (int64_t j = 0; j < n_padded; j += FK_NR) m = fk_max16(fk_load16(x + j), m);
        return fk_hmax(fk_max(fk_low8(m), fk_high8(m)));
    }
    fk_v8 m0 = fk_splat(-INFINITY), m1 = m0;
    for (int64_t j = 0; j < n_padded; j += FK_NR) {
        m0 = fk_max(fk_load(x + j), m0);
        m1 = fk_max(fk_load(x + j + 8), m1);
    }
    return fk_hmax(fk_max(m0, m1));
}

/* sum(exp(x - shift)) over a row, lanes summed per 8 items of a panel, then across in one fixed order. */
FK_INLINE float fk_row_exp_sum(const float *x, int64_t n_padded, float shift, int wide) {
    if (wide) {
        fk_v16 by = fk_splat16(shift), sum = {0};
        for (int64_t j = 0; j < n_padded; j += FK_NR) sum += fk_exp_nonpositive16(fk_load16(x + j) - by);
        return fk_hsum(fk_low8(sum) + fk_high8(sum));
    }
    fk_v8 by = fk_splat(shift), s0 = {0}, s1 = {0};
    for (int64_t j = 0; j < n_padded; j += FK_NR) {
        s0 += fk_exp_nonpositive(fk_load(x + j) - by);
        s1 += fk_exp_nonpositive(fk_load(x + j + 8) - by);
    }
    return fk_hsum(s0 + s1);
}

/* Whether any of the panel's 16 scores at x is above the threshold. */
FK_INLINE int fk_panel_above(const float *x, float threshold, int wide) {
    fk_v8i hit;
    if (wide) {
        fk_v16i above = fk_load16(x) > fk_splat16(threshold);
        hit = (fk_v8i)fk_low8((fk_v16)above) | (fk_v8i)fk_high8((fk_v16)above);
    } else {
        hit = (fk_load(x) > fk_splat(threshold)) | (fk_load(x + 8) > fk_splat(threshold));
    }
    return (hit[0] | hit[1] | hit[2] | hit[3] | hit[4] | hit[5] | hit[6] | hit[7]) != 0;
}

/* ------------------------------------------------------------------ the kernel body */

/* Scores of FK_MR users (factors interleaved: a[f * FK_MR + r]) against one packed panel of 16 items. */
FK_INLINE void fk_micro(const float *a, const float *b, int64_t dim,
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

/* The AVX-512 tile: FK_MR_WIDE users (a[f * FK_MR_WIDE + r]) against two panels (b and the next), or one
 * when `two` is 0 (the last panel of an odd count). */
FK_INLINE void fk_micro_wide(const float *a, const float *b, int64_t dim, float *c, int64_t ldc, int two) {
    const float *b_next = b + dim * FK_NR;
    fk_v16 x[FK_MR_WIDE], y[FK_MR_WIDE];
#pragma GCC unroll 16
    for (int r = 0; r < FK_MR_WIDE; r++) x[r] = y[r] = (fk_v16){0};
    for (int64_t f = 0; f < dim; f++) {
        const float *af = a + f * FK_MR_WIDE;
        fk_v16 b0 = fk_load16(b + f * FK_NR), b1 = two ? fk_load16(b_next + f * FK_NR) : b0;
#pragma GCC unroll 16
        for (int r = 0; r < FK_MR_WIDE; r++) {
            x[r] += af[r] * b0;
            if (two) y[r] += af[r] * b1;
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < FK_MR_WIDE; r++) {
        fk_store16(c + r * ldc, x[r]);
        if (two) fk_store16(c + r * ldc + FK_NR, y[r]);
    }
}

typedef struct {
    int64_t add_at, excl_at; /* cursors into the row's CSR entries, moving with the tiles */
    double max, sum;         /* running softmax denominator: sum(exp(score - max)) */
} fk_row_state;

/* One row's scores over items [j0, j0 + n) (x holds n scores padded with -inf to a multiple of 16). */
FK_INLINE void fk_row(const fk_job *job, int64_t row, float *x, int64_t j0, int64_t n, fk_row_state *st,
                      int wide) {
    if (job->add_indptr) {
        int64_t end = job->add_indptr[row + 1];
        while (st->add_at < end && job->add_indices[st->add_at] < j0 + n) {
            x[job->add_indices[st->add_at] - j0] += job->add_values[st->add_at];
            st->add_at++;
        }
    }
    if (job->scores) memcpy(job->scores + row * job->n_items + j0, x, n * sizeof(float));
    int64_t n_padded = (n + FK_NR - 1) / FK_NR * FK_NR;
    float tile_max = fk_row_max(x, n_padded, wide);

    if (job->log_norm && tile_max > -INFINITY) {
        double tile_sum = (double)fk_row_exp_sum(x, n_padded, tile_max, wide);
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
    for (int64_t j = 0; j < n_padded; j += FK_NR) {
        if (!fk_panel_above(x + j, threshold, wide)) continue;
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
            if (count == k) threshold = val[0];
        }
    }
    job->top_count[row] = count;
}

static inline size_t fk_round64(size_t bytes) { return (bytes + 63) / 64 * 64; }

/* `wide`: the AVX-512 register tile (a constant: each build compiles one of the two). */
FK_INLINE int fk_run_rows(const fk_job *job, int64_t row0, int64_t row1, int wide) {
    const int64_t dim = job->dim, tile = job->tile_items, mr = wide ? FK_MR_WIDE : FK_MR;
    const int64_t block_groups = (FK_USER_BLOCK + mr - 1) / mr;
    float *a = aligned_alloc(64, fk_round64(block_groups * mr * dim * sizeof(float)));
    float *c = aligned_alloc(64, fk_round64(mr * tile * sizeof(float)));
    fk_row_state *state = malloc(FK_USER_BLOCK * sizeof(fk_row_state));
    if (!a || !c || !state) {
        free(a);
        free(c);
        free(state);
        return -1;
    }
    for (int64_t block0 = row0; block0 < row1; block0 += FK_USER_BLOCK) {
        int64_t rows = row1 - block0 < FK_USER_BLOCK ? row1 - block0 : FK_USER_BLOCK;
        int64_t groups = (rows + mr - 1) / mr;
        /* Each group of mr users with its factors interleaved; missing users are zeros. */
        memset(a, 0, (size_t)(groups * mr * dim * sizeof(float)));
        for (int64_t r = 0; r < rows; r++) {
            const float *u = job->users + (block0 + r) * dim;
            float *g = a + (r / mr) * mr * dim + r % mr;
            for (int64_t f = 0; f < dim; f++) g[f * mr] = u[f];
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
                const float *ag = a + g * mr * dim;
                if (wide) {
                    int64_t p = 0;
                    for (; p + 1 < panels; p += 2) fk_micro_wide(ag, b + p * dim * FK_NR, dim, c + p * FK_NR, tile, 1);
                    if (p < panels) fk_micro_wide(ag, b + p * dim * FK_NR, dim, c + p * FK_NR, tile, 0);
                } else {
                    for (int64_t p = 0; p < panels; p++) fk_micro(ag, b + p * dim * FK_NR, dim, c + p * FK_NR, tile);
                }
                for (int64_t r = 0; r < mr && g * mr + r < rows; r++) {
                    float *x = c + r * tile;
                    for (int64_t j = n; j < panels * FK_NR; j++) x[j] = -INFINITY;
                    fk_row(job, block0 + g * mr + r, x, j0, n, &state[g * mr + r], wide);
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

FK_INLINE int fk_run_body(const fk_job *job, int64_t row0, int64_t row1) {
    return fk_run_rows(job, row0, row1, 0);
}

FK_INLINE int fk_run_body_wide(const fk_job *job, int64_t row0, int64_t row1) {
    return fk_run_rows(job, row0, row1, 1);
}

/* The best build this process may run: 2 = AVX-512, 1 = AVX2, 0 = baseline (tests check each build on one
 * machine by lowering it). */
static int fk_variant_cap = 2;

/* Which build of the kernels this CPU runs, as a level (2 = AVX-512, 1 = AVX2, 0 = baseline) within the cap.
 * The AVX-512 build needs AVX-512F beside AVX2 and FMA. */
static int fk_level(void) {
    int level = 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        level = __builtin_cpu_supports("avx512f") ? 2 : 1;
#endif
    return level < fk_variant_cap ? level : fk_variant_cap;
}

/* The name of that build: "avx512", "avx2" or "baseline". */
static const char *fk_variant(void) {
    static const char *const names[] = {"baseline", "avx2", "avx512"};
    return names[fk_level()];
}

/* Defines `static int name(const job_type *job, int64_t row0, int64_t row1)` running `body` (an
 * always-inline function of the same arguments) compiled for AVX2+FMA when the CPU has them, else for
 * the build's baseline instruction set; FK_DISPATCHED_WIDE adds `wide_body` compiled for AVX-512. */
#if defined(__x86_64__) || defined(__i386__)
#define FK_DISPATCHED(name, job_type, body)                                                                   \
    __attribute__((target("avx2,fma"))) static int name##_avx2(const job_type *job, int64_t r0, int64_t r1) { \
        return body(job, r0, r1);                                                                             \
    }                                                                                                         \
    static int name##_baseline(const job_type *job, int64_t r0, int64_t r1) { return body(job, r0, r1); }     \
    static int name(const job_type *job, int64_t r0, int64_t r1) {                                            \
        return fk_level() == 0 ? name##_baseline(job, r0, r1) : name##_avx2(job, r0, r1);                     \
    }
#define FK_DISPATCHED_WIDE(name, job_type, body, wide_body)                                                   \
    FK_DISPATCHED(name##_narrow, job_type, body)                                                              \
    __attribute__((target("avx512f,avx2,fma"))) static int name##_avx512(const job_type *job, int64_t r0,     \
                                                                         int64_t r1) {                        \
        return wide_body(job, r0, r1);                                                                        \
    }                                                                                                         \
    static int name(const job_type *job, int64_t r0, int64_t r1) {                                            \
        return fk_level() == 2 ? name##_avx512(job, r0, r1) : name##_narrow(job, r0, r1);                     \
    }
#else
#define FK_DISPATCHED(name, job_type, body) \
    static int name(const job_type *job, int64_t r0, int64_t r1) { return body(job, r0, r1); }
#define FK_DISPATCHED_WIDE(name, job_type, body, wide_body) FK_DISPATCHED(name, job_type, body)
#endif

/* fk_run(job, row0, row1): scores rows [row0, row1) of the job; 0, or -1 when memory ran out. */
FK_DISPATCHED_WIDE(fk_run, fk_job, fk_run_body, fk_run_body_wide)

#endif
