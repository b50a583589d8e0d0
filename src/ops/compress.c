/* SPDX-License-Identifier: Apache-2.0 */
/* nsa_compress: per-segment windows of l tokens every d tokens, each summarised per head by a
 * learned weighted sum (Huawei aclnnNsaCompress; spec nsa-research.md section 2). */
#include <string.h>

#include "nsa/nsa_compress.h"

#include "core/internal.h"
#include "dtype/convert.h"
#include "kernel/simd.h"
#include "tensor/tensor.h"

/* Windows per task: a task converts the rows its windows span once (the l - d overlap between
 * neighbouring windows comes from fp32 scratch; only a task's first window loads l rows). */
#define WINDOWS_PER_TASK 32
/* Cap of a worker's ring of converted rows (floats): wider rows are split into head groups. */
#define RING_FLOATS ((int64_t)1 << 21)

nsa_compress_params nsa_compress_params_default(void)
{
    nsa_compress_params p = NSA_COMPRESS_PARAMS_INIT;
    return p;
}

/* W_b for a segment of `len` tokens. */
static int64_t windows_of(int64_t len, int64_t l, int64_t d)
{
    return len >= l ? (len - l) / d + 1 : 0;
}

static nsa_status check_seq(const nsa_compress_params *p)
{
    if (!p)
        return nsa_error(NSA_ERR_NULL_POINTER, "params must not be NULL");
    if (!p->actual_seq_len)
        return nsa_error(NSA_ERR_NULL_POINTER, "actual_seq_len must not be NULL");
    if (p->actual_seq_len_count < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "actual_seq_len_count must be >= 1 (one prefix sum per segment), got %lld",
                         (long long)p->actual_seq_len_count);
    return nsa_check_prefix_sums(p->actual_seq_len, p->actual_seq_len_count, "actual_seq_len",
                                 -1, NULL);
}

static nsa_status check_block_params(const nsa_compress_params *p)
{
    const int64_t l = p->compress_block_size, d = p->compress_stride;
    if (l % 16 != 0)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "compress_block_size must be a multiple of 16, got %lld", (long long)l);
    if (d % 16 != 0)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "compress_stride must be a multiple of 16, got %lld", (long long)d);
    if (d < 16)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "compress_stride must be >= 16, got %lld",
                         (long long)d);
    if (l > 128)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT, "compress_block_size must be <= 128, got %lld",
                         (long long)l);
    if (d > l)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "compress_stride (%lld) must be <= compress_block_size (%lld)",
                         (long long)d, (long long)l);
    return NSA_SUCCESS;
}

nsa_status nsa_compress_output_rows(const nsa_compress_params *params, int64_t *rows)
{
    nsa_status st;
    int64_t b, total = 0;
    nsa_clear_error();
    if (!rows)
        return nsa_error(NSA_ERR_NULL_POINTER, "rows must not be NULL");
    if ((st = check_seq(params)) != NSA_SUCCESS)
        return st;
    if (params->compress_block_size < 1 || params->compress_stride < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "compress_block_size and compress_stride must be >= 1, got %lld and %lld",
                         (long long)params->compress_block_size,
                         (long long)params->compress_stride);
    for (b = 0; b < params->actual_seq_len_count; b++) {
        int64_t prev = b ? params->actual_seq_len[b - 1] : 0;
        total += windows_of(params->actual_seq_len[b] - prev, params->compress_block_size,
                            params->compress_stride);
    }
    *rows = total;
    return NSA_SUCCESS;
}

/* Every check of nsa_compress except the output; on success *out_rows = T'. */
static nsa_status check_inputs(const nsa_tensor *input, const nsa_tensor *weight,
                               const nsa_compress_params *p, int64_t *out_rows)
{
    nsa_status st;
    int64_t T, N, D, b;
    if ((st = check_seq(p)) != NSA_SUCCESS)
        return st;
    if ((st = nsa_check_tensor(input, "input", 3, NSA_DT_FLOAT)) != NSA_SUCCESS)
        return st;
    if ((st = nsa_check_tensor(weight, "weight", 2, NSA_DT_FLOAT)) != NSA_SUCCESS)
        return st;
    if (weight->dtype != input->dtype)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "weight dtype (%s) must equal input dtype (%s)",
                         nsa_dtype_name(weight->dtype), nsa_dtype_name(input->dtype));
    T = input->shape[0];
    N = input->shape[1];
    D = input->shape[2];
    if (N < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "input.shape[1] (head count N) must be >= 1, got %lld", (long long)N);
    if (D < 1)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "input.shape[2] (head dim D) must be >= 1, got %lld", (long long)D);
    if ((st = check_block_params(p)) != NSA_SUCCESS)
        return st;
    if ((st = nsa_check_dim(weight, "weight", 0, p->compress_block_size,
                            "compress_block_size")) != NSA_SUCCESS)
        return st;
    if ((st = nsa_check_dim(weight, "weight", 1, N, "input.shape[1]")) != NSA_SUCCESS)
        return st;
    if (p->actual_seq_len[p->actual_seq_len_count - 1] != T)
        return nsa_error(NSA_ERR_INVALID_ARGUMENT,
                         "actual_seq_len[%lld] (the last) must equal input.shape[0] (%lld), "
                         "got %lld",
                         (long long)(p->actual_seq_len_count - 1), (long long)T,
                         (long long)p->actual_seq_len[p->actual_seq_len_count - 1]);
    if (p->validation == NSA_VALIDATE_STRICT) {
        if (input->dtype == NSA_DTYPE_F32)
            return nsa_error(NSA_ERR_UNSUPPORTED,
                             "input dtype must be f16 or bf16 under strict validation, got f32");
        if (D % 16 != 0)
            return nsa_error(NSA_ERR_UNSUPPORTED,
                             "input.shape[2] (D) must be a multiple of 16 under strict "
                             "validation, got %lld", (long long)D);
        if (D > 256)
            return nsa_error(NSA_ERR_UNSUPPORTED,
                             "input.shape[2] (D) must be <= 256 under strict validation, got %lld",
                             (long long)D);
        if (N > 128)
            return nsa_error(NSA_ERR_UNSUPPORTED,
                             "input.shape[1] (N) must be <= 128 under strict validation, got %lld",
                             (long long)N);
        for (b = 0; b < p->actual_seq_len_count; b++) {
            int64_t prev = b ? p->actual_seq_len[b - 1] : 0;
            if (p->actual_seq_len[b] == prev)
                return nsa_error(NSA_ERR_UNSUPPORTED,
                                 "actual_seq_len segment %lld is empty; strict validation "
                                 "requires positive lengths", (long long)b);
        }
    }
    return nsa_compress_output_rows(p, out_rows);
}

/* A task: WINDOWS_PER_TASK windows (fewer at a segment's end) of one segment, one group of
 * heads (all heads unless l rows of them exceed RING_FLOATS). */
typedef struct compress_task {
    int64_t row0;  /* global input row of the first window */
    int64_t out0;  /* output row of the first window */
    int64_t head0; /* first head of the group */
    int32_t count; /* windows */
} compress_task;

/* Heads per group: as many as fit the ring, at least one. */
static int64_t heads_per_group(int64_t l, int64_t N, int64_t D)
{
    int64_t g = RING_FLOATS / (l * D);
    return g < 1 ? 1 : g > N ? N : g;
}

typedef struct compress_job {
    const nsa_tensor *input, *weight, *output;
    int64_t l, d, N, D, group;
    const compress_task *tasks;
    size_t ntasks, nworkers;
    char *scratch; /* nworkers slices of slice_bytes */
    size_t slice_bytes;
} compress_job;

/* One worker's scratch, carved in floats: a ring of the last l converted input rows (the
 * heads of one group, [l][group][D]), the weights [N][l], the tree buffer and one output row,
 * plus the l row pointers of the current window. Rows are converted once, read in memory order (whole rows,
 * so the hardware prefetchers stream them), and reused by the l/d windows that share them. */
typedef struct compress_slice {
    float *ring, *w, *tree, *orow;
    const float **rows;
} compress_slice;

/* Byte offsets of the parts of a slice (ring, w, tree, orow, rows); returns its size. */
static size_t slice_offsets(int64_t l, int64_t group, int64_t N, int64_t D, size_t off[5])
{
    off[0] = 0;
    off[1] = off[0] + nsa_align64((size_t)(l * group * D) * sizeof(float));
    off[2] = off[1] + nsa_align64((size_t)(N * l) * sizeof(float));
    off[3] = off[2] + nsa_align64((size_t)(l * D) * sizeof(float));
    off[4] = off[3] + nsa_align64((size_t)D * sizeof(float));
    return off[4] + nsa_align64((size_t)l * sizeof(float *));
}

static compress_slice carve_slice(char *base, int64_t l, int64_t group, int64_t N, int64_t D)
{
    compress_slice s;
    size_t off[5];
    slice_offsets(l, group, N, D, off);
    s.ring = (float *)(void *)(base + off[0]);
    s.w = (float *)(void *)(base + off[1]);
    s.tree = (float *)(void *)(base + off[2]);
    s.orow = (float *)(void *)(base + off[3]);
    s.rows = (const float **)(void *)(base + off[4]);
    return s;
}

/* The kernel's ReduceBlock order over the l rows of one window (row pointers x[i]): fold the
 * non-power-of-two tail onto the head, then halve. Products are exact for f16/bf16 (and kept
 * as separate statements so no compiler fuses them into an FMA for f32). */
static inline void window_tree_body(const float *const *x, int64_t col, const float *w, int32_t l,
                                    int32_t D, float *tmp, float *out)
{
    int32_t a = 1, i, e;
    while (a < l)
        a <<= 1;
    a >>= 1;
    for (i = 0; i < a; i++) {
        const float wi = w[i];
        const float *xi = x[i] + col;
        float *ti = tmp + (int64_t)i * D;
        if (i + a < l) {
            const float wj = w[i + a];
            const float *xj = x[i + a] + col;
            for (e = 0; e < D; e++) {
                float p = wi * xi[e];
                float q = wj * xj[e];
                ti[e] = p + q;
            }
        } else {
            for (e = 0; e < D; e++)
                ti[e] = wi * xi[e];
        }
    }
    while (a > 1) {
        a >>= 1;
        for (i = 0; i < a; i++) {
            float *ti = tmp + (int64_t)i * D;
            const float *tj = tmp + (int64_t)(i + a) * D;
            for (e = 0; e < D; e++)
                ti[e] += tj[e];
        }
    }
    memcpy(out, tmp, (size_t)D * sizeof(float)); /* l >= 16, so the tree ran */
}

static void window_tree_portable(const float *const *x, int64_t col, const float *w, int32_t l,
                                 int32_t D, float *tmp, float *out)
{
    window_tree_body(x, col, w, l, D, tmp, out);
}

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX512_CLONE 1
/* The same loops compiled for AVX-512 (the library's baseline is SSE2); no "fma" so the
 * arithmetic is identical to the portable path. */
__attribute__((target("avx512f"))) static void
window_tree_avx512(const float *const *x, int64_t col, const float *w, int32_t l, int32_t D,
                   float *tmp, float *out)
{
    window_tree_body(x, col, w, l, D, tmp, out);
}
#endif

/* Convert heads [h0, h0 + nh) of input row `row` into dst ([nh][D]). */
static void load_input_row(const nsa_tensor *in, int64_t row, int64_t h0, int64_t nh, int64_t D,
                           float *dst)
{
    int64_t n;
    if (in->stride[2] == 1 && in->stride[1] == D) { /* heads contiguous: one run */
        nsa_load_f32(nsa_tensor_at(in, nsa_tensor_offset(in, row, h0, 0, 0)), in->dtype, 1, dst,
                     nh * D);
        return;
    }
    for (n = 0; n < nh; n++)
        nsa_load_f32(nsa_tensor_at(in, nsa_tensor_offset(in, row, h0 + n, 0, 0)), in->dtype,
                     in->stride[2], dst + n * D, D);
}

/* Ask for the rows the next window will load while this window's trees run (measured a few
 * per cent faster on one thread than leaving it to the hardware prefetchers). */
static void prefetch_rows(const nsa_tensor *in, int64_t row0, int64_t count, int64_t h0,
                          int64_t nh)
{
#if defined(__GNUC__) || defined(__clang__)
    const size_t es = nsa_dtype_size(in->dtype);
    const int whole_rows = in->stride[2] == 1 && in->stride[1] == in->shape[2];
    const size_t bytes = whole_rows ? (size_t)(nh * in->shape[2]) * es
                                    : (size_t)((in->shape[2] - 1) * in->stride[2] + 1) * es;
    int64_t r, n;
    for (r = 0; r < count; r++)
        for (n = 0; n < (whole_rows ? 1 : nh); n++) {
            const char *p = (const char *)nsa_tensor_at(
                in, nsa_tensor_offset(in, row0 + r, h0 + n, 0, 0));
            size_t off;
            for (off = 0; off < bytes; off += 64)
                __builtin_prefetch(p + off, 0, 0);
        }
#else
    (void)in, (void)row0, (void)count, (void)h0, (void)nh;
#endif
}

static void compress_worker(void *arg, size_t worker)
{
    const compress_job *job = (const compress_job *)arg;
    const nsa_tensor *in = job->input, *wt = job->weight, *out = job->output;
    const int32_t l = (int32_t)job->l, D = (int32_t)job->D;
    const int64_t N = job->N, d = job->d;
    compress_slice sl;
    size_t t;
    int64_t n;
    void (*tree_fn)(const float *const *, int64_t, const float *, int32_t, int32_t, float *,
                    float *) = window_tree_portable;
#ifdef HAVE_AVX512_CLONE
    if (nsa_cpu_has_avx512())
        tree_fn = window_tree_avx512;
#endif
    sl = carve_slice(job->scratch + worker * job->slice_bytes, job->l, job->group, N, job->D);
    for (n = 0; n < N; n++)
        nsa_load_f32(nsa_tensor_at(wt, nsa_tensor_offset(wt, 0, n, 0, 0)), wt->dtype,
                     wt->stride[0], sl.w + n * l, l);

    for (t = worker; t < job->ntasks; t += job->nworkers) {
        const compress_task *task = &job->tasks[t];
        const int64_t h0 = task->head0, nh = N - h0 < job->group ? N - h0 : job->group;
        const int64_t row_floats = nh * D;
        int64_t next = 0; /* rows [0, next) of the task are in the ring, slot = row % l */
        int32_t j, i;
        for (j = 0; j < task->count; j++) {
            const int64_t first = (int64_t)j * d;
            for (; next < first + l; next++)
                load_input_row(in, task->row0 + next, h0, nh, job->D,
                               sl.ring + (next % l) * row_floats);
            if (j + 1 < task->count)
                prefetch_rows(in, task->row0 + next, d, h0, nh);
            for (i = 0; i < l; i++)
                sl.rows[i] = sl.ring + ((first + i) % l) * row_floats;
            for (n = 0; n < nh; n++) {
                tree_fn(sl.rows, n * D, sl.w + (h0 + n) * l, l, D, sl.tree, sl.orow);
                nsa_store_f32(sl.orow,
                              nsa_tensor_at(out, nsa_tensor_offset(out, task->out0 + j, h0 + n,
                                                                   0, 0)),
                              out->dtype, out->stride[2], D, NSA_ROUND_NEAREST_AWAY);
            }
        }
    }
}

/* Number of tasks (without building them). */
static size_t count_tasks(const nsa_compress_params *p, int64_t N, int64_t D)
{
    const int64_t group = heads_per_group(p->compress_block_size, N, D);
    size_t n = 0;
    int64_t b;
    for (b = 0; b < p->actual_seq_len_count; b++) {
        int64_t prev = b ? p->actual_seq_len[b - 1] : 0;
        int64_t W = windows_of(p->actual_seq_len[b] - prev, p->compress_block_size,
                               p->compress_stride);
        n += (size_t)((W + WINDOWS_PER_TASK - 1) / WINDOWS_PER_TASK) *
             (size_t)((N + group - 1) / group);
    }
    return n;
}

/* Workspace layout: task list, then one scratch slice per worker. */
static size_t workspace_bytes(size_t ntasks, size_t nworkers, int64_t l, int64_t N, int64_t D,
                              size_t *slice_bytes)
{
    size_t off[5];
    *slice_bytes = slice_offsets(l, heads_per_group(l, N, D), N, D, off);
    return nsa_align64(ntasks * sizeof(compress_task)) + nworkers * *slice_bytes;
}

nsa_status nsa_compress_workspace_size(nsa_context *ctx, const nsa_tensor *input,
                                       const nsa_compress_params *params, size_t *size)
{
    nsa_status st;
    size_t ntasks, slice;
    nsa_clear_error();
    if (!size)
        return nsa_error(NSA_ERR_NULL_POINTER, "size must not be NULL");
    if ((st = check_seq(params)) != NSA_SUCCESS)
        return st;
    if ((st = nsa_check_tensor(input, "input", 3, NSA_DT_FLOAT)) != NSA_SUCCESS)
        return st;
    if ((st = check_block_params(params)) != NSA_SUCCESS)
        return st;
    ctx = nsa_context_resolve(ctx);
    if (!ctx)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "cannot create the default context");
    ntasks = count_tasks(params, input->shape[1], input->shape[2]);
    *size = workspace_bytes(ntasks, nsa_worker_count(ctx, ntasks), params->compress_block_size,
                            input->shape[1], input->shape[2], &slice);
    return NSA_SUCCESS;
}

nsa_status nsa_compress(nsa_context *ctx, const nsa_tensor *input, const nsa_tensor *weight,
                        const nsa_compress_params *params, const nsa_tensor *output)
{
    nsa_status st;
    int64_t out_rows, b, N, D;
    size_t ntasks, nworkers, slice, bytes, t = 0;
    void *ws;
    compress_task *tasks;
    compress_job job;

    nsa_clear_error();
    if ((st = check_inputs(input, weight, params, &out_rows)) != NSA_SUCCESS)
        return st;
    if ((st = nsa_check_output(output, "output", 3, NSA_DT_FLOAT)) != NSA_SUCCESS)
        return st;
    N = input->shape[1];
    D = input->shape[2];
    if ((st = nsa_check_dim(output, "output", 0, out_rows,
                            "the window count T' of actual_seq_len")) != NSA_SUCCESS ||
        (st = nsa_check_dim(output, "output", 1, N, "input.shape[1]")) != NSA_SUCCESS ||
        (st = nsa_check_dim(output, "output", 2, D, "input.shape[2]")) != NSA_SUCCESS)
        return st;
    if ((st = nsa_check_no_overlap(output, "output", input, "input")) != NSA_SUCCESS ||
        (st = nsa_check_no_overlap(output, "output", weight, "weight")) != NSA_SUCCESS)
        return st;
    if (out_rows == 0)
        return NSA_SUCCESS;

    ctx = nsa_context_resolve(ctx);
    if (!ctx)
        return nsa_error(NSA_ERR_OUT_OF_MEMORY, "cannot create the default context");
    ntasks = count_tasks(params, N, D);
    nworkers = nsa_worker_count(ctx, ntasks);
    bytes = workspace_bytes(ntasks, nworkers, params->compress_block_size, N, D, &slice);
    if ((st = nsa_workspace_acquire(ctx, bytes, &ws)) != NSA_SUCCESS)
        return st;

    /* Tasks in output order: segment, window chunk, head group. */
    job.group = heads_per_group(params->compress_block_size, N, D);
    tasks = (compress_task *)ws;
    out_rows = 0;
    for (b = 0; b < params->actual_seq_len_count; b++) {
        int64_t start = b ? params->actual_seq_len[b - 1] : 0;
        int64_t W = windows_of(params->actual_seq_len[b] - start, params->compress_block_size,
                               params->compress_stride);
        int64_t j0, h0;
        for (j0 = 0; j0 < W; j0 += WINDOWS_PER_TASK)
            for (h0 = 0; h0 < N; h0 += job.group) {
                tasks[t].row0 = start + j0 * params->compress_stride;
                tasks[t].out0 = out_rows + j0;
                tasks[t].head0 = h0;
                tasks[t].count = (int32_t)(W - j0 < WINDOWS_PER_TASK ? W - j0 : WINDOWS_PER_TASK);
                t++;
            }
        out_rows += W;
    }

    job.input = input;
    job.weight = weight;
    job.output = output;
    job.l = params->compress_block_size;
    job.d = params->compress_stride;
    job.N = N;
    job.D = D;
    job.tasks = tasks;
    job.ntasks = ntasks;
    job.nworkers = nworkers;
    job.scratch = (char *)ws + nsa_align64(ntasks * sizeof(compress_task));
    job.slice_bytes = slice;
    nsa_parallel_for(ctx, compress_worker, &job, nworkers);
    nsa_workspace_release(ctx, ws);
    return NSA_SUCCESS;
}
