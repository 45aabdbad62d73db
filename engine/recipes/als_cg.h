/* One half-sweep of implicit ALS (Hu, Koren & Volinsky) with conjugate-gradient steps (Takacs et al.):
 * each row's factors x_u take cg_steps CG steps towards the solution of
 *     (Y'Y + reg I + sum_i (c_ui - 1) y_i y_i') x_u = sum_i c_ui y_i,
 * starting from their current value, the update implicit's least_squares_cg makes. Rows are independent
 * and every sum runs in a fixed order, so the result does not depend on how rows are shared out among
 * threads. Factors are padded with zeros to a multiple of 8 (the padding stays zero throughout).
 */
#ifndef ENGINE_ALS_CG_H
#define ENGINE_ALS_CG_H

#include "fused_top_k.h"

typedef struct {
    const int64_t *indptr;  /* CSR rows of the confidence matrix, one per row of x */
    const int32_t *indices;
    const float *data;      /* confidences c_ui (> 0) */
    float *x;               /* n_rows x dim, updated in place */
    const float *y;         /* n_cols x dim */
    const float *gram;      /* dim x dim: Y'Y + reg I */
    int64_t dim;            /* a multiple of 8 */
    int64_t cg_steps;
} als_job;

static inline __attribute__((always_inline)) float als_dot(const float *a, const float *b, int64_t dim) {
    fk_v8 s0 = {0}, s1 = {0};
    int64_t f = 0;
    for (; f + 16 <= dim; f += 16) {
        s0 += fk_load(a + f) * fk_load(b + f);
        s1 += fk_load(a + f + 8) * fk_load(b + f + 8);
    }
    if (f < dim) s0 += fk_load(a + f) * fk_load(b + f);
    return fk_hsum(s0 + s1);
}

static inline __attribute__((always_inline)) void als_axpy(float alpha, const float *x, float *y, int64_t dim) {
    for (int64_t f = 0; f < dim; f += 8) fk_store(y + f, fk_load(y + f) + alpha * fk_load(x + f));
}

/* out = gram p, eight rows of the (symmetric) gram matrix at a time: eight independent sums keep both
 * FMA units busy. */
static inline __attribute__((always_inline)) void als_gram_times(const float *gram, const float *p, float *out,
                                                                 int64_t dim) {
    for (int64_t j = 0; j < dim; j += 8) {
        const float *g = gram + j * dim;
        fk_v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
        for (int64_t f = 0; f < dim; f += 8) {
            fk_v8 pv = fk_load(p + f);
            a0 += fk_load(g + f) * pv;
            a1 += fk_load(g + dim + f) * pv;
            a2 += fk_load(g + 2 * dim + f) * pv;
            a3 += fk_load(g + 3 * dim + f) * pv;
            a4 += fk_load(g + 4 * dim + f) * pv;
            a5 += fk_load(g + 5 * dim + f) * pv;
            a6 += fk_load(g + 6 * dim + f) * pv;
            a7 += fk_load(g + 7 * dim + f) * pv;
        }
        out[j] = fk_hsum(a0);
        out[j + 1] = fk_hsum(a1);
        out[j + 2] = fk_hsum(a2);
        out[j + 3] = fk_hsum(a3);
        out[j + 4] = fk_hsum(a4);
        out[j + 5] = fk_hsum(a5);
        out[j + 6] = fk_hsum(a6);
        out[j + 7] = fk_hsum(a7);
    }
}

static inline __attribute__((always_inline)) int als_run_body(const als_job *job, int64_t row0, int64_t row1) {
    const int64_t dim = job->dim;
    float *r = aligned_alloc(64, fk_round64(3 * dim * sizeof(float)));
    if (!r) return -1;
    float *p = r + dim, *ap = p + dim;
    for (int64_t u = row0; u < row1; u++) {
        float *x = job->x + u * dim;
        int64_t start = job->indptr[u], end = job->indptr[u + 1];
        if (start == end) {
            memset(x, 0, dim * sizeof(float));
            continue;
        }
        /* r = b - A x */
        als_gram_times(job->gram, x, r, dim);
        for (int64_t f = 0; f < dim; f++) r[f] = -r[f];
        for (int64_t e = start; e < end; e++) {
            const float *yi = job->y + (int64_t)job->indices[e] * dim;
            float c = job->data[e];
            als_axpy(c - (c - 1.0f) * als_dot(yi, x, dim), yi, r, dim);
        }
        memcpy(p, r, dim * sizeof(float));
        float rs_old = als_dot(r, r, dim);
        if (rs_old < 1e-20f) continue;
        for (int64_t step = 0; step < job->cg_steps; step++) {
            als_gram_times(job->gram, p, ap, dim);
            for (int64_t e = start; e < end; e++) {
                const float *yi = job->y + (int64_t)job->indices[e] * dim;
                als_axpy((job->data[e] - 1.0f) * als_dot(yi, p, dim), yi, ap, dim);
            }
            float alpha = rs_old / als_dot(p, ap, dim);
            als_axpy(alpha, p, x, dim);
            als_axpy(-alpha, ap, r, dim);
            float rs_new = als_dot(r, r, dim);
            if (rs_new < 1e-20f) break;
            float beta = rs_new / rs_old;
            for (int64_t f = 0; f < dim; f += 8) fk_store(p + f, fk_load(r + f) + beta * fk_load(p + f));
            rs_old = rs_new;
        }
    }
    free(r);
    return 0;
}

/* als_run(job, row0, row1): updates rows [row0, row1) of x; 0, or -1 when memory ran out. */
FK_DISPATCHED(als_run, als_job, als_run_body)

#endif
