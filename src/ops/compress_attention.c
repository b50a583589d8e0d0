/* SPDX-License-Identifier: Apache-2.0 */
/* nsa_compress_attention: attention over the compressed keys on the shared kernel, then the
 * importance score of every selection block and the top-k blocks per query and kv head
 * (Huawei aclnnNsaCompressAttention; spec nsa-research.md section 3). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "nsa/nsa_compress.h"

#include "core/internal.h"
#include "dtype/convert.h"
#include "kernel/attn_tile.h"
#include "kernel/simd.h"
#include "tensor/tensor.h"

/* Tile height target (query positions x G heads) and keys per kernel chunk. */
#define ROWS_PER_TILE 128
#define KV_CHUNK 128
/* Cap of the per-worker buffer holding a tile's scaled scores (floats). */
#define SCORE_BUFFER_FLOATS ((int64_t)1 << 21)
/* Largest importance window m + n - 1 (m, n <= 128 / 16). */
#define MAX_INNER 15

nsa_compress_attention_params nsa_compress_attention_params_default(void)
{
    nsa_compress_attention_params p = NSA_COMPRESS_ATTENTION_PARAMS_INIT;
    return p;
}

/* Everything derived from the arguments once they are valid. */
typedef struct cattn_dims {
    int64_t B, T1, T2, N1, N2, G, D, Dv;
    int64_t sm, cn;      /* m = l'/d and n = l/d of the importance score */
    int64_t k;           /* select_block_count */
    int64_t maxS1, maxS2, maxSel;
    int64_t qc;          /* query positions per tile */
    int64_t ntasks;
    int widen_kv;        /* K/V are converted to fp32 once, shared by every tile */
} cattn_dims;

static int64_t seg(const int64_t *cum, int64_t b)
{
    return cum[b] - (b ? cum[b - 1] : 0);
}

static nsa_status check_params(const nsa_compress_attention_params *p)
{
    const int64_t l = p->compress_block_size, d = p->compress_stride;
    const int64_t ls = p->select_block_size, k = p->select_block_count;
    if (l < 16 || l > 128 || l % 16)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "compress_block_size must be a multiple of 16 in [16, 128], got %lld",
                         (long long)l);
    if (d < 16 || d > 64 || d % 16)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "compress_stride must be a multiple of 16 in [16, 64], got %lld",
                         (long long)d);
    if (ls < 16 || ls > 128 || ls % 16)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "select_block_size must be a multiple of 16 in [16, 128], got %lld",
                         (long long)ls);
    if (l < d)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "compress_block_size (%lld) must be >= compress_stride (%lld)",
                         (long long)l, (long long)d);
    if (ls < l)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "select_block_size (%lld) must be >= compress_block_size (%lld)",
                         (long long)ls, (long long)l);
    if (ls % d)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "select_block_size (%lld) must be a multiple of compress_stride (%lld)",
                         (long long)ls, (long long)d);
    if (k < 1 || k > 32)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "select_block_count must be in [1, 32], got %lld", (long long)k);
    return NSA_SUCCESS;
}

static nsa_status check_seq_arrays(const nsa_compress_attention_params *p, const cattn_dims *dm)
{
    nsa_status st;
    int64_t b;
    if (!p->actual_seq_qlen)
        return nsa_error(NSA_ERR_NULL_POINTER, "actual_seq_qlen must not be NULL (TND layout)");
    if (!p->actual_cmp_seq_kvlen)
        return nsa_error(NSA_ERR_NULL_POINTER,
                         "actual_cmp_seq_kvlen must not be NULL (TND layout)");
    if (p->actual_seq_qlen_count < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "actual_seq_qlen_count must be >= 1, got %lld",
                         (long long)p->actual_seq_qlen_count);
    if (p->actual_cmp_seq_kvlen_count != p->actual_seq_qlen_count)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "actual_cmp_seq_kvlen_count (%lld) must equal actual_seq_qlen_count "
                         "(%lld)",
                         (long long)p->actual_cmp_seq_kvlen_count,
                         (long long)p->actual_seq_qlen_count);
    if ((st = nsa_check_prefix_sums(p->actual_seq_qlen, p->actual_seq_qlen_count,
                                    "actual_seq_qlen", dm->T1, "query.shape[0]")) != NSA_SUCCESS)
        return st;
    if ((st = nsa_check_prefix_sums(p->actual_cmp_seq_kvlen, p->actual_cmp_seq_kvlen_count,
                                    "actual_cmp_seq_kvlen", dm->T2, "key.shape[0]")) !=
        NSA_SUCCESS)
        return st;
    if (p->actual_sel_seq_kvlen) {
        if (p->actual_sel_seq_kvlen_count != p->actual_seq_qlen_count)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "actual_sel_seq_kvlen_count (%lld) must equal actual_seq_qlen_count "
                             "(%lld)", (long long)p->actual_sel_seq_kvlen_count,
                             (long long)p->actual_seq_qlen_count);
        for (b = 0; b < p->actual_seq_qlen_count; b++) {
            int64_t want = nsa_cdiv(seg(p->actual_cmp_seq_kvlen, b), dm->sm);
            int64_t got = seg(p->actual_sel_seq_kvlen, b);
            if (got != want)
                return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                                 "actual_sel_seq_kvlen: batch %lld has %lld selection blocks, "
                                 "must be ceil(compressed length %lld / (select_block_size / "
                                 "compress_stride = %lld)) = %lld",
                                 (long long)b, (long long)got,
                                 (long long)seg(p->actual_cmp_seq_kvlen, b), (long long)dm->sm,
                                 (long long)want);
        }
    }
    for (b = 0; b < p->actual_seq_qlen_count; b++) {
        int64_t s2 = seg(p->actual_cmp_seq_kvlen, b);
        int64_t sel = nsa_cdiv(s2, dm->sm);
        if (s2 > INT32_MAX)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "actual_cmp_seq_kvlen: batch %lld has %lld compressed keys, more "
                             "than 2^31 - 1", (long long)b, (long long)s2);
        if (p->select_block_count > sel)
            return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                             "select_block_count (%lld) must be <= the selection blocks of every "
                             "batch; batch %lld has ceil(%lld / %lld) = %lld",
                             (long long)p->select_block_count, (long long)b, (long long)s2,
                             (long long)dm->sm, (long long)sel);
    }
    return NSA_SUCCESS;
}

/* A mask is (rows, cols), bool or uint8. */
static nsa_status check_mask(const nsa_tensor *m, const char *name, int64_t rows,
                             const char *rows_what, int64_t cols, const char *cols_what)
{
    nsa_status st;
    if (!m)
        return NSA_SUCCESS;
    if ((st = nsa_check_tensor(m, name, 2, NSA_DT(NSA_DTYPE_BOOL) | NSA_DT(NSA_DTYPE_U8))) !=
        NSA_SUCCESS)
        return st;
    if ((st = nsa_check_dim(m, name, 0, rows, rows_what)) != NSA_SUCCESS)
        return st;
    return nsa_check_dim(m, name, 1, cols, cols_what);
}

static nsa_status check_strict(const cattn_dims *dm, const nsa_tensor *query,
                               const nsa_compress_attention_params *p)
{
    int64_t b;
    if (query->dtype == NSA_DTYPE_F32)
        return nsa_error(NSA_ERR_UNSUPPORTED,
                         "query dtype must be f16 or bf16 under strict validation, got f32");
    if (dm->D % 16 || dm->Dv % 16)
        return nsa_error(NSA_ERR_UNSUPPORTED,
                         "head dims must be multiples of 16 under strict validation, got D = "
                         "%lld, D2 = %lld", (long long)dm->D, (long long)dm->Dv);
    if (p->compress_block_size != 32 || p->compress_stride != 16 ||
        p->select_block_size != 64 || p->select_block_count != 16)
        return nsa_error(NSA_ERR_UNSUPPORTED,
                         "strict validation supports only compress_block_size 32, "
                         "compress_stride 16, select_block_size 64, select_block_count 16; got "
                         "%lld, %lld, %lld, %lld", (long long)p->compress_block_size,
                         (long long)p->compress_stride, (long long)p->select_block_size,
                         (long long)p->select_block_count);
    for (b = 0; b < dm->B; b++)
        if (seg(p->actual_cmp_seq_kvlen, b) > 14000)
            return nsa_error(NSA_ERR_UNSUPPORTED,
                             "actual_cmp_seq_kvlen: batch %lld has %lld compressed keys; strict "
                             "validation allows at most 14000", (long long)b,
                             (long long)seg(p->actual_cmp_seq_kvlen, b));
    return NSA_SUCCESS;
}

/* Checks of the inputs and parameters (not the outputs); fills dims. */
static nsa_status check_inputs(const nsa_tensor *query, const nsa_tensor *key,
                               const nsa_tensor *value, const nsa_compress_attention_params *p,
                               cattn_dims *dm)
{
    nsa_status st;
    nsa_attn_tile like; /* a tile's shape, for the kernel's answers */
    nsa_kv_block blk;
    int64_t b;
    if (!p)
        return nsa_error(NSA_ERR_NULL_POINTER, "params must not be NULL");
    if ((st = nsa_check_tensor(query, "query", 3, NSA_DT_FLOAT)) != NSA_SUCCESS ||
        (st = nsa_check_tensor(key, "key", 3, NSA_DT_FLOAT)) != NSA_SUCCESS ||
        (st = nsa_check_tensor(value, "value", 3, NSA_DT_FLOAT)) != NSA_SUCCESS)
        return st;
    if (key->dtype != query->dtype || value->dtype != query->dtype)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "query, key and value must have one dtype, got %s, %s, %s",
                         nsa_dtype_name(query->dtype), nsa_dtype_name(key->dtype),
                         nsa_dtype_name(value->dtype));
    memset(dm, 0, sizeof *dm);
    dm->T1 = query->shape[0];
    dm->N1 = query->shape[1];
    dm->D = query->shape[2];
    dm->T2 = key->shape[0];
    dm->N2 = key->shape[1];
    dm->Dv = value->shape[2];
    if (p->head_num < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "head_num must be >= 1, got %lld",
                         (long long)p->head_num);
    if (p->head_num != dm->N1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "head_num (%lld) must equal query.shape[1] (%lld)",
                         (long long)p->head_num, (long long)dm->N1);
    if (dm->N2 < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "key.shape[1] (N2) must be >= 1, got %lld",
                         (long long)dm->N2);
    if (dm->N1 % dm->N2)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "query heads N1 (%lld) must be a multiple of key heads N2 (%lld)",
                         (long long)dm->N1, (long long)dm->N2);
    dm->G = dm->N1 / dm->N2;
    if (dm->G > 64 || (dm->G & (dm->G - 1)))
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "the group size N1/N2 must be a power of two <= 64 (the kernel's "
                         "pairwise GQA sum), got %lld", (long long)dm->G);
    if (dm->D < 1 || dm->D > 768)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "query.shape[2] (D) must be in [1, 768], got %lld", (long long)dm->D);
    if ((st = nsa_check_dim(key, "key", 2, dm->D, "query.shape[2]")) != NSA_SUCCESS ||
        (st = nsa_check_dim(value, "value", 0, dm->T2, "key.shape[0]")) != NSA_SUCCESS ||
        (st = nsa_check_dim(value, "value", 1, dm->N2, "key.shape[1]")) != NSA_SUCCESS)
        return st;
    if (dm->Dv < 1 || dm->Dv > dm->D)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "value.shape[2] (D2) must be in [1, D = %lld], got %lld",
                         (long long)dm->D, (long long)dm->Dv);
    if ((st = check_params(p)) != NSA_SUCCESS)
        return st;
    dm->sm = p->select_block_size / p->compress_stride;
    dm->cn = p->compress_block_size / p->compress_stride;
    dm->k = p->select_block_count;
    if ((st = check_seq_arrays(p, dm)) != NSA_SUCCESS)
        return st;
    dm->B = p->actual_seq_qlen_count;
    for (b = 0; b < dm->B; b++) {
        int64_t s1 = seg(p->actual_seq_qlen, b), s2 = seg(p->actual_cmp_seq_kvlen, b);
        if (s1 > dm->maxS1)
            dm->maxS1 = s1;
        if (s2 > dm->maxS2)
            dm->maxS2 = s2;
    }
    dm->maxSel = nsa_cdiv(dm->maxS2, dm->sm);
    if (p->validation == NSA_VALIDATE_STRICT && (st = check_strict(dm, query, p)) != NSA_SUCCESS)
        return st;

    /* Tiles: qc query positions x G heads, as many rows as pay on the kernel's path for them,
     * sized so the score buffer stays bounded. */
    memset(&blk, 0, sizeof blk);
    blk.k_row_stride = key->stride[0];
    blk.k_col_stride = key->stride[2];
    blk.v_row_stride = value->stride[0];
    blk.v_col_stride = value->stride[2];
    like = nsa_attn_tile_shape((int32_t)dm->G, (int32_t)dm->D, (int32_t)dm->Dv, query->dtype,
                               key->dtype, &blk); /* one position's rows; G <= 64, checked above */
    dm->qc = nsa_attn_tile_rows(&like, ROWS_PER_TILE) / dm->G;
    if (dm->qc < 1)
        dm->qc = 1;
    while (dm->qc > 1 && dm->qc * dm->G * dm->maxS2 > SCORE_BUFFER_FLOATS)
        dm->qc /= 2;
    if (dm->maxS1 > 0 && dm->qc > dm->maxS1)
        dm->qc = dm->maxS1;
    for (b = 0; b < dm->B; b++)
        dm->ntasks += nsa_cdiv(seg(p->actual_seq_qlen, b), dm->qc) * dm->N2;
    /* K/V the kernel would convert for every tile of the batch are converted once up front */
    like.m = (int32_t)(dm->qc * dm->G);
    dm->widen_kv = !nsa_attn_tile_reads_in_place(&like);
    return NSA_SUCCESS;
}

/* ---- work ------------------------------------------------------------------------------- */

typedef struct cattn_task {
    int64_t batch, n2, s0; /* s0: first query-local position */
} cattn_task;

typedef struct cattn_job {
    const nsa_tensor *q, *k, *v, *amask, *tmask, *out, *topk, *smax, *ssum;
    const nsa_compress_attention_params *p;
    cattn_dims dm;
    float scale;
    float w[MAX_INNER]; /* importance weights w_i */
    int32_t inner;
    const cattn_task *tasks;
    float *kf, *vf; /* fp32 copies [T2][N2][D] / [T2][N2][Dv] when dm.widen_kv */
    size_t nworkers;
    char *scratch;
    size_t slice_bytes;
    size_t kernel_bytes; /* leading part of a slice */
    int64_t ldx;         /* leading dim of the score buffer */
} cattn_job;

/* Per-tile state the score hook sees through tile->user. */
typedef struct cattn_tile_state {
    const cattn_job *job;
    int64_t s0; /* query-local position of row 0 */
    float *x;   /* [m][ldx] the tile's scaled, masked scores */
} cattn_tile_state;

/* The kernel's score hook: replace masked scores by -FLT_MAX (after scaling, as the vendor
 * kernel does) and keep a copy of the row for the importance score. */
static void score_hook(const nsa_attn_tile *tile, int32_t block, int64_t kv0, int32_t n,
                       float *s, int64_t lds)
{
    const cattn_tile_state *ts = (const cattn_tile_state *)tile->user;
    const cattn_job *job = ts->job;
    const nsa_tensor *am = job->amask;
    const int64_t G = job->dm.G;
    int32_t r, j;
    (void)block;
    for (r = 0; r < tile->m; r++) {
        float *srow = s + r * lds;
        if (am) {
            const unsigned char *mrow =
                (const unsigned char *)am->data + (ts->s0 + r / G) * am->stride[0];
            for (j = 0; j < n; j++)
                if (mrow[(kv0 + j) * am->stride[1]])
                    srow[j] = -FLT_MAX;
        }
        memcpy(ts->x + r * job->ldx + kv0, srow, (size_t)n * sizeof(float));
    }
}

/* Importance of the Sel selection blocks from one row of probabilities P[0..S2):
 * I[J] = sum over ascending i of w_i * P[(J+1)m - i], out-of-range p skipped. Each term is an
 * fp32 multiply then an fp32 add, in ascending i for every J, as the vendor kernel; looping
 * over J inside keeps the bounds out of the inner loop. */
static void importance_row(const float *P, int64_t S2, int64_t sel, int64_t sm, const float *w,
                           int32_t inner, float *out)
{
    int64_t J;
    int32_t i;
    for (J = 0; J < sel; J++)
        out[J] = 0.0f;
    for (i = 0; i < inner; i++) {
        /* J with 0 <= (J+1)m - i <= S2 - 1 */
        const int64_t lo = i > sm ? nsa_cdiv(i, sm) - 1 : 0;
        const int64_t hi_p = (S2 - 1 + i) / sm - 1;
        const int64_t hi = hi_p < sel - 1 ? hi_p : sel - 1;
        const float wi = w[i];
        for (J = lo; J <= hi; J++) {
            float t = wi * P[(J + 1) * sm - i];
            out[J] = out[J] + t;
        }
    }
}

/* The k largest of score[0..n) (n >= k) by descending value, ties to the lower index; NaN
 * ranks as -inf. Insertion into a sorted list of k: a later equal score never moves ahead. */
static void topk_select(const float *score, int64_t n, int32_t k, int32_t *idx, float *val)
{
    int32_t cnt = 0, pos;
    int64_t J;
    for (J = 0; J < n; J++) {
        float v = score[J] != score[J] ? -INFINITY : score[J];
        if (cnt == k && !(v > val[k - 1]))
            continue;
        pos = cnt < k ? cnt++ : k - 1;
        while (pos > 0 && v > val[pos - 1]) {
            val[pos] = val[pos - 1];
            idx[pos] = idx[pos - 1];
            pos--;
        }
        val[pos] = v;
        idx[pos] = (int32_t)J;
    }
}

/* Write one row's statistic 8 times at the vendor's per-batch [N1, S1_b, 8] position. */
static void store_stat(const nsa_tensor *t, int64_t flat_row, int64_t N1, float value)
{
    int64_t c, off = nsa_tensor_offset(t, flat_row / N1, flat_row % N1, 0, 0);
    float *dst = (float *)t->data;
    for (c = 0; c < 8; c++)
        dst[off + c * t->stride[2]] = value;
}

/* Byte sizes of the parts of one worker's scratch after the kernel's part. */
typedef struct cattn_slice {
    size_t x, stats, ptrs, imp, topk, total;
} cattn_slice;

static cattn_slice slice_layout(const cattn_dims *dm, int64_t ldx, size_t kernel_bytes)
{
    cattn_slice s;
    const size_t m = (size_t)(dm->qc * dm->G);
    s.x = kernel_bytes;
    s.stats = s.x + nsa_align64(m * (size_t)ldx * sizeof(float));
    s.ptrs = s.stats + nsa_align64(2 * m * sizeof(float));
    s.imp = s.ptrs + nsa_align64(2 * m * sizeof(void *));
    s.topk = s.imp + nsa_align64((size_t)(dm->G * dm->maxSel) * sizeof(float));
    s.total = s.topk + nsa_align64((size_t)dm->k * (sizeof(float) + sizeof(int32_t)));
    return s;
}

static void run_task(const cattn_job *job, const cattn_task *task, char *slice)
{
    const cattn_dims *dm = &job->dm;
    const nsa_compress_attention_params *p = job->p;
    const cattn_slice sl = slice_layout(dm, job->ldx, job->kernel_bytes);
    const int64_t b = task->batch, n2 = task->n2, G = dm->G;
    const int64_t q_base = b ? p->actual_seq_qlen[b - 1] : 0;
    const int64_t k_base = b ? p->actual_cmp_seq_kvlen[b - 1] : 0;
    const int64_t S1 = seg(p->actual_seq_qlen, b), S2 = seg(p->actual_cmp_seq_kvlen, b);
    const int64_t sel = nsa_cdiv(S2, dm->sm);
    const int64_t npos = S1 - task->s0 < dm->qc ? S1 - task->s0 : dm->qc;
    const int32_t m = (int32_t)(npos * G);
    float *x = (float *)(slice + sl.x);
    float *rmax = (float *)(slice + sl.stats), *rsum = rmax + m;
    const void **qrows = (const void **)(void *)(slice + sl.ptrs);
    void **orows = (void **)(qrows + m);
    float *imp = (float *)(slice + sl.imp);
    float *tval = (float *)(slice + sl.topk);
    int32_t *tidx = (int32_t *)(tval + dm->k);
    const nsa_tensor *q = job->q, *k = job->k, *v = job->v, *out = job->out;
    cattn_tile_state ts;
    nsa_kv_block blk;
    nsa_attn_tile tile;
    int64_t si, g, r, gi, J;

    for (si = 0; si < npos; si++)
        for (g = 0; g < G; g++) {
            const int64_t t = q_base + task->s0 + si, h = n2 * G + g;
            qrows[si * G + g] = nsa_tensor_at(q, nsa_tensor_offset(q, t, h, 0, 0));
            orows[si * G + g] = nsa_tensor_at(out, nsa_tensor_offset(out, t, h, 0, 0));
        }
    memset(&blk, 0, sizeof blk);
    if (job->kf) {
        blk.k = job->kf + (k_base * dm->N2 + n2) * dm->D;
        blk.v = job->vf + (k_base * dm->N2 + n2) * dm->Dv;
        blk.k_row_stride = dm->N2 * dm->D;
        blk.v_row_stride = dm->N2 * dm->Dv;
        blk.k_col_stride = blk.v_col_stride = 1;
    } else {
        blk.k = nsa_tensor_at(k, nsa_tensor_offset(k, k_base, n2, 0, 0));
        blk.v = nsa_tensor_at(v, nsa_tensor_offset(v, k_base, n2, 0, 0));
        blk.k_row_stride = k->stride[0];
        blk.k_col_stride = k->stride[2];
        blk.v_row_stride = v->stride[0];
        blk.v_col_stride = v->stride[2];
    }
    blk.kv_start = 0;
    blk.len = (int32_t)S2;

    ts.job = job;
    ts.s0 = task->s0;
    ts.x = x;
    memset(&tile, 0, sizeof tile);
    tile.m = m;
    tile.q_rows = qrows;
    tile.q_col_stride = q->stride[2];
    tile.q_dtype = q->dtype;
    tile.d = (int32_t)dm->D;
    tile.dv = (int32_t)dm->Dv;
    tile.scale = job->scale;
    tile.kv_dtype = job->kf ? NSA_DTYPE_F32 : k->dtype;
    tile.blocks = &blk;
    tile.nblocks = 1;
    tile.kv_chunk = KV_CHUNK;
    tile.score_hook = score_hook;
    tile.user = &ts;
    tile.q_start = task->s0;
    tile.o_rows = orows;
    tile.o_col_stride = out->stride[2];
    tile.o_dtype = out->dtype;
    tile.row_max = rmax;
    tile.row_sum = rsum;
    nsa_attn_tile_run(&tile, slice);

    for (si = 0; si < npos; si++) {
        const int64_t s = task->s0 + si, t = q_base + s;
        for (g = 0; g < G; g++) {
            const int64_t h = n2 * G + g;
            float *xr = x + (si * G + g) * job->ldx;
            const float M = rmax[si * G + g], Z = rsum[si * G + g];
            /* P = exp(x - M) / Z with the final M and Z, as the vendor formula */
            (void)nsa_vexp_sum(xr, S2, M);
            for (r = 0; r < S2; r++)
                xr[r] = xr[r] / Z;
            importance_row(xr, S2, sel, dm->sm, job->w, job->inner, imp + g * sel);
            store_stat(job->smax, q_base * dm->N1 + h * S1 + s, dm->N1, M);
            store_stat(job->ssum, q_base * dm->N1 + h * S1 + s, dm->N1, Z);
        }
        /* GQA: the kernel's pairwise tree over the G heads */
        for (gi = 1; gi < G; gi *= 2)
            for (g = 0; g + gi < G; g += 2 * gi)
                for (J = 0; J < sel; J++)
                    imp[g * sel + J] = imp[(g + gi) * sel + J] + imp[g * sel + J];
        if (job->tmask) {
            const nsa_tensor *tm = job->tmask;
            const unsigned char *mrow = (const unsigned char *)tm->data + s * tm->stride[0];
            for (J = 0; J < sel; J++)
                if (mrow[J * tm->stride[1]])
                    imp[J] = FLT_MAX;
        }
        topk_select(imp, sel, (int32_t)dm->k, tidx, tval);
        for (J = 0; J < dm->k; J++)
            ((int32_t *)job->topk->data)[nsa_tensor_offset(job->topk, t, n2, J, 0)] = tidx[J];
    }
}

/* Rows of K and V converted to fp32 per parallel item. */
#define WIDEN_ROWS 64

static void widen_kv_item(void *arg, size_t item)
{
    const cattn_job *job = (const cattn_job *)arg;
    const cattn_dims *dm = &job->dm;
    const int64_t t0 = (int64_t)item * WIDEN_ROWS;
    const int64_t t1 = t0 + WIDEN_ROWS < dm->T2 ? t0 + WIDEN_ROWS : dm->T2;
    int64_t t, n2;
    for (t = t0; t < t1; t++)
        for (n2 = 0; n2 < dm->N2; n2++) {
            nsa_load_f32(nsa_tensor_at(job->k, nsa_tensor_offset(job->k, t, n2, 0, 0)),
                         job->k->dtype, job->k->stride[2], job->kf + (t * dm->N2 + n2) * dm->D,
                         dm->D);
            nsa_load_f32(nsa_tensor_at(job->v, nsa_tensor_offset(job->v, t, n2, 0, 0)),
                         job->v->dtype, job->v->stride[2], job->vf + (t * dm->N2 + n2) * dm->Dv,
                         dm->Dv);
        }
}

static void cattn_worker(void *arg, size_t worker)
{
    const cattn_job *job = (const cattn_job *)arg;
    char *slice = job->scratch + worker * job->slice_bytes;
    size_t t;
    for (t = worker; t < (size_t)job->dm.ntasks; t += job->nworkers)
        run_task(job, &job->tasks[t], slice);
}

/* Bytes of the fp32 K and V copies (0 when K/V are used in place). */
static size_t widened_bytes(const cattn_dims *dm, size_t *v_offset)
{
    size_t kb = dm->widen_kv ? nsa_align64((size_t)(dm->T2 * dm->N2 * dm->D) * sizeof(float)) : 0;
    size_t vb = dm->widen_kv ? nsa_align64((size_t)(dm->T2 * dm->N2 * dm->Dv) * sizeof(float)) : 0;
    *v_offset = kb;
    return kb + vb;
}

/* Total workspace: task list, fp32 K/V copies, per-worker slices. */
static size_t workspace_bytes(const cattn_dims *dm, size_t nworkers, size_t *slice_bytes,
                              size_t *kernel_bytes, int64_t *ldx)
{
    size_t voff;
    *ldx = (dm->maxS2 + 15) & ~(int64_t)15;
    if (*ldx < 16)
        *ldx = 16;
    *kernel_bytes = nsa_align64(nsa_attn_scratch_size((int32_t)(dm->qc * dm->G), (int32_t)dm->D,
                                                      (int32_t)dm->Dv, KV_CHUNK));
    *slice_bytes = slice_layout(dm, *ldx, *kernel_bytes).total;
    return nsa_align64((size_t)dm->ntasks * sizeof(cattn_task)) + widened_bytes(dm, &voff) +
           nworkers * *slice_bytes;
}

nsa_status nsa_compress_attention_workspace_size(nsa_context *ctx, const nsa_tensor *query,
                                                 const nsa_tensor *key, const nsa_tensor *value,
                                                 const nsa_compress_attention_params *params,
                                                 size_t *size)
{
    nsa_status st;
    cattn_dims dm;
    size_t slice, kb;
    int64_t ldx;
    nsa_clear_error();
    if (!size)
        return nsa_error(NSA_ERR_NULL_POINTER, "size must not be NULL");
    if ((st = check_inputs(query, key, value, params, &dm)) != NSA_SUCCESS)
        return st;
    ctx = nsa_context_resolve(ctx);
    if (!ctx)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "cannot create the default context");
    *size = workspace_bytes(&dm, nsa_worker_count(ctx, dm.ntasks), &slice, &kb, &ldx);
    return NSA_SUCCESS;
}

static nsa_status check_outputs(const cattn_dims *dm, const nsa_tensor *query,
                                const nsa_tensor *key, const nsa_tensor *value,
                                const nsa_tensor *out, const nsa_tensor *topk,
                                const nsa_tensor *smax, const nsa_tensor *ssum)
{
    nsa_status st;
    const nsa_tensor *outs[4];
    const char *names[4] = {"attention_out", "topk_indices", "softmax_max", "softmax_sum"};
    const nsa_tensor *ins[3];
    const char *in_names[3] = {"query", "key", "value"};
    int i, j;
    if ((st = nsa_check_output(out, "attention_out", 3, NSA_DT_FLOAT)) != NSA_SUCCESS ||
        (st = nsa_check_dim(out, "attention_out", 0, dm->T1, "query.shape[0]")) != NSA_SUCCESS ||
        (st = nsa_check_dim(out, "attention_out", 1, dm->N1, "query.shape[1]")) != NSA_SUCCESS ||
        (st = nsa_check_dim(out, "attention_out", 2, dm->Dv, "value.shape[2]")) != NSA_SUCCESS)
        return st;
    if ((st = nsa_check_output(topk, "topk_indices", 3, NSA_DT(NSA_DTYPE_I32))) != NSA_SUCCESS ||
        (st = nsa_check_dim(topk, "topk_indices", 0, dm->T1, "query.shape[0]")) != NSA_SUCCESS ||
        (st = nsa_check_dim(topk, "topk_indices", 1, dm->N2, "key.shape[1]")) != NSA_SUCCESS ||
        (st = nsa_check_dim(topk, "topk_indices", 2, dm->k, "select_block_count")) != NSA_SUCCESS)
        return st;
    for (i = 2; i < 4; i++) {
        const nsa_tensor *t = i == 2 ? smax : ssum;
        if ((st = nsa_check_output(t, names[i], 3, NSA_DT(NSA_DTYPE_F32))) != NSA_SUCCESS ||
            (st = nsa_check_dim(t, names[i], 0, dm->T1, "query.shape[0]")) != NSA_SUCCESS ||
            (st = nsa_check_dim(t, names[i], 1, dm->N1, "query.shape[1]")) != NSA_SUCCESS ||
            (st = nsa_check_dim(t, names[i], 2, 8, "8")) != NSA_SUCCESS)
            return st;
    }
    outs[0] = out;
    outs[1] = topk;
    outs[2] = smax;
    outs[3] = ssum;
    ins[0] = query;
    ins[1] = key;
    ins[2] = value;
    for (i = 0; i < 4; i++) {
        for (j = i + 1; j < 4; j++)
            if ((st = nsa_check_no_overlap(outs[i], names[i], outs[j], names[j])) != NSA_SUCCESS)
                return st;
        for (j = 0; j < 3; j++)
            if ((st = nsa_check_no_overlap(outs[i], names[i], ins[j], in_names[j])) !=
                NSA_SUCCESS)
                return st;
    }
    return NSA_SUCCESS;
}

nsa_status nsa_compress_attention(nsa_context *ctx, const nsa_tensor *query,
                                  const nsa_tensor *key, const nsa_tensor *value,
                                  const nsa_tensor *atten_mask, const nsa_tensor *topk_mask,
                                  const nsa_compress_attention_params *params,
                                  const nsa_tensor *attention_out,
                                  const nsa_tensor *topk_indices, const nsa_tensor *softmax_max,
                                  const nsa_tensor *softmax_sum)
{
    nsa_status st;
    cattn_job job;
    cattn_task *tasks;
    void *ws;
    size_t bytes;
    int64_t b, n2, s0, t = 0;
    int32_t i;

    nsa_clear_error();
    memset(&job, 0, sizeof job);
    if ((st = check_inputs(query, key, value, params, &job.dm)) != NSA_SUCCESS)
        return st;
    if ((st = check_mask(atten_mask, "atten_mask", job.dm.maxS1, "max query length maxS1",
                         job.dm.maxS2, "max compressed kv length maxS2")) != NSA_SUCCESS ||
        (st = check_mask(topk_mask, "topk_mask", job.dm.maxS1, "max query length maxS1",
                         job.dm.maxSel, "ceil(maxS2 / (select_block_size / compress_stride))")) !=
            NSA_SUCCESS)
        return st;
    if ((st = check_outputs(&job.dm, query, key, value, attention_out, topk_indices, softmax_max,
                            softmax_sum)) != NSA_SUCCESS)
        return st;
    if (job.dm.ntasks == 0)
        return NSA_SUCCESS;

    ctx = nsa_context_resolve(ctx);
    if (!ctx)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "cannot create the default context");
    job.nworkers = nsa_worker_count(ctx, job.dm.ntasks);
    bytes = workspace_bytes(&job.dm, job.nworkers, &job.slice_bytes, &job.kernel_bytes, &job.ldx);
    if ((st = nsa_workspace_acquire(ctx, bytes, &ws)) != NSA_SUCCESS)
        return st;
    tasks = (cattn_task *)ws;
    for (b = 0; b < job.dm.B; b++)
        for (n2 = 0; n2 < job.dm.N2; n2++)
            for (s0 = 0; s0 < seg(params->actual_seq_qlen, b); s0 += job.dm.qc) {
                tasks[t].batch = b;
                tasks[t].n2 = n2;
                tasks[t].s0 = s0;
                t++;
            }

    /* Importance weights: w_i = #{(a, c) : a < m, c < n, a + c = i} (m >= n). */
    job.inner = (int32_t)(job.dm.sm + job.dm.cn - 1);
    for (i = 0; i < job.inner; i++)
        job.w[i] = (float)(i < job.inner / 2 ? (i + 1 < job.dm.cn ? i + 1 : job.dm.cn)
                                             : (job.inner - i < job.dm.cn ? job.inner - i
                                                                         : job.dm.cn));
    job.q = query;
    job.k = key;
    job.v = value;
    job.amask = atten_mask;
    job.tmask = topk_mask;
    job.out = attention_out;
    job.topk = topk_indices;
    job.smax = softmax_max;
    job.ssum = softmax_sum;
    job.p = params;
    job.scale = (float)params->scale_value;
    job.tasks = tasks;
    {
        char *base = (char *)ws + nsa_align64((size_t)job.dm.ntasks * sizeof(cattn_task));
        size_t voff, wb = widened_bytes(&job.dm, &voff);
        if (job.dm.widen_kv) {
            job.kf = (float *)(void *)base;
            job.vf = (float *)(void *)(base + voff);
        }
        job.scratch = base + wb;
    }
    if (job.kf)
        nsa_parallel_for(ctx, widen_kv_item, &job,
                         (size_t)nsa_cdiv(job.dm.T2, WIDEN_ROWS));
    nsa_parallel_for(ctx, cattn_worker, &job, job.nworkers);
    nsa_workspace_release(ctx, ws);
    return NSA_SUCCESS;
}
