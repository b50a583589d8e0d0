/* SPDX-License-Identifier: Apache-2.0 */
/* nsa_compress: per-segment windows of l tokens every d tokens, each summarised per head by a
 * learned weighted sum (Huawei aclnnNsaCompress; spec nsa-research.md section 2). */
#include <stddef.h>
#include <string.h>

#include "nsa/nsa_compress.h"

#include "core/internal.h"
#include "dtype/convert.h"
#include "kernel/simd.h"
#include "ops/compress.h"
#include "ops/compress_avx2.h"
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

/* T' = sum of W_b over the segments (the prefix sums and l, d already checked). */
static int64_t output_rows(const nsa_compress_params *p)
{
    int64_t b, total = 0;
    for (b = 0; b < p->actual_seq_len_count; b++) {
        int64_t prev = b ? p->actual_seq_len[b - 1] : 0;
        total += windows_of(p->actual_seq_len[b] - prev, p->compress_block_size,
                            p->compress_stride);
    }
    return total;
}

nsa_status nsa_compress_output_rows(const nsa_compress_params *params, int64_t *rows)
{
    nsa_status st;
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
    *rows = output_rows(params);
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
    *out_rows = output_rows(p); /* check_seq and check_block_params ran above */
    return NSA_SUCCESS;
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
 * heads of one group, [l][group][D]), the weights [N][l], the tree buffer (on the fused path
 * the second output row of a window pair) and one output row, plus the l row pointers of the
 * current window. Rows are converted once, read in memory order (whole rows, so the hardware
 * prefetchers stream them), and reused by the l/d windows that share them. */
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
#define HAVE_X86_KERNELS 1
#include <immintrin.h>
/* The same loops compiled for AVX-512 and for AVX2 (the library's baseline is SSE2); no "fma"
 * so the arithmetic is identical to the portable path. */
__attribute__((target("avx512f"))) static void
window_tree_avx512(const float *const *x, int64_t col, const float *w, int32_t l, int32_t D,
                   float *tmp, float *out)
{
    window_tree_body(x, col, w, l, D, tmp, out);
}

__attribute__((target("avx2"))) static void
window_tree_avx2(const float *const *x, int64_t col, const float *w, int32_t l, int32_t D,
                 float *tmp, float *out)
{
    window_tree_body(x, col, w, l, D, tmp, out);
}

/* Fused strip kernel: each 32-channel strip of a window's l rows is loaded from the caller's
 * memory, widened in registers and reduced in the same ReduceBlock pairing, with no ring and
 * no tree buffer. No "fma" target: products and sums stay separate roundings. */
#define FAST_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
/* Forced inlining keeps the tree in registers. Unoptimised and AddressSanitizer builds (debug,
 * CI, fuzzing) skip it: instrumenting the 24 fully inlined kernel instances took 150-220 s
 * of compile time for this one file. */
#if defined(__SANITIZE_ADDRESS__)
#define NSA_COMPRESS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NSA_COMPRESS_ASAN 1
#endif
#endif
#if defined(__OPTIMIZE__) && !defined(NSA_COMPRESS_ASAN)
#define FAST_INLINE static inline __attribute__((always_inline)) FAST_TARGET
#else
#define FAST_INLINE static FAST_TARGET
#endif

/* GCC 12 gives each _mm512_slli_epi32 an undefined pass-through value that IRA keeps live
 * across the loop (spilling the tree): shift with the vector extension instead. */
typedef unsigned int fast_u32x16 __attribute__((vector_size(64)));

/* 32 channels as two vectors of fp32. For bf16 they are the even and the odd channels (one load,
 * a shift and an and widen them); for f16 and f32 the first and the second 16. */
typedef struct fast_pair {
    __m512 a, b;
} fast_pair;

/* 32 channels of one row widened exactly (channels outside the mask k read as 0). */
FAST_INLINE fast_pair fast_load(const char *p, __mmask32 k, int masked, int dt)
{
    fast_pair r;
    if (dt == NSA_DTYPE_BF16) {
        const __m512i v = masked ? _mm512_maskz_loadu_epi16(k, p) : _mm512_loadu_si512(p);
        r.a = _mm512_castsi512_ps((__m512i)((fast_u32x16)v << 16));
        r.b = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(-65536)));
    } else if (dt == NSA_DTYPE_F16) {
        r.a = _mm512_cvtph_ps(masked ? _mm256_maskz_loadu_epi16((__mmask16)k, p)
                                     : _mm256_loadu_si256((const __m256i *)(const void *)p));
        r.b = _mm512_cvtph_ps(masked ? _mm256_maskz_loadu_epi16((__mmask16)(k >> 16), p + 32)
                                     : _mm256_loadu_si256((const __m256i *)(const void *)(p + 32)));
    } else {
        r.a = masked ? _mm512_maskz_loadu_ps((__mmask16)k, p) : _mm512_loadu_ps(p);
        r.b = masked ? _mm512_maskz_loadu_ps((__mmask16)(k >> 16), p + 64)
                     : _mm512_loadu_ps(p + 64);
    }
    return r;
}

/* Pins a partial sum where it is computed: GCC's TER would otherwise fold the whole
 * single-use tree of products and sums into one expression at the root, after every load. */
#define FAST_KEEP(p) __asm__("" : "+v"((p).a), "+v"((p).b))

/* w * x, one rounding per product. */
FAST_INLINE fast_pair fast_scale(__m512 w, fast_pair x)
{
    x.a = _mm512_mul_ps(w, x.a);
    x.b = _mm512_mul_ps(w, x.b);
    return x;
}

/* u + v, pinned (FAST_KEEP). */
FAST_INLINE fast_pair fast_join(fast_pair u, fast_pair v)
{
    u.a = _mm512_add_ps(u.a, v.a);
    u.b = _mm512_add_ps(u.b, v.b);
    FAST_KEEP(u);
    return u;
}

/* Level 0 of the tree: t_i = w_i x_i + w_{i+a} x_{i+a} (just w_i x_i when i + a >= l). */
FAST_INLINE fast_pair fast_leaf(const char *x, ptrdiff_t rs, const float *w, __mmask32 k,
                                int masked, int i, int a, int l, int dt)
{
    fast_pair p = fast_scale(_mm512_set1_ps(w[i]), fast_load(x + i * rs, k, masked, dt));
    if (i + a < l)
        return fast_join(p, fast_scale(_mm512_set1_ps(w[i + a]),
                                       fast_load(x + (i + a) * rs, k, masked, dt)));
    FAST_KEEP(p);
    return p;
}

/* Two windows d = a rows apart (l = 2d, as in NSA's l = 32, d = 16): the second window's row i is
 * the first's row i + a, so leaf i of both reads rows i, i + a and i + 2a, and row i + a is
 * loaded and widened once for both (a third fewer rows read from L2, a quarter fewer widened).
 * Each window's own tree is unchanged, so are its sums. */
typedef struct fast_two {
    fast_pair p, q; /* the first window's partial sum, the second's */
} fast_two;

FAST_INLINE fast_two fast_join2(fast_two u, fast_two v)
{
    u.p = fast_join(u.p, v.p);
    u.q = fast_join(u.q, v.q);
    return u;
}

FAST_INLINE fast_two fast_leaf2(const char *x, ptrdiff_t rs, const float *w, __mmask32 k,
                                int masked, int i, int a, int l, int dt)
{
    const __m512 wi = _mm512_set1_ps(w[i]);
    const fast_pair x1 = fast_load(x + (i + a) * rs, k, masked, dt);
    fast_two t;
    t.p = fast_scale(wi, fast_load(x + i * rs, k, masked, dt));
    t.q = fast_scale(wi, x1);
    if (i + a < l) {
        const __m512 wj = _mm512_set1_ps(w[i + a]);
        fast_two u;
        u.p = fast_scale(wj, x1);
        u.q = fast_scale(wj, fast_load(x + (i + 2 * a) * rs, k, masked, dt));
        return fast_join2(t, u);
    }
    FAST_KEEP(t.p);
    FAST_KEEP(t.q);
    return t;
}

/* Node (i, s): t_i after the level that adds t_{i+s}, i.e. node(i, 2s) + node(i + s, 2s); nodes
 * with s >= a are leaves. Depth first, so about log2(a) partial sums are live at once and the
 * tree stays in registers (a, l, dt and masked are constants once inlined). One family per
 * partial-sum type T (a window, a window pair), named NODE##s. */
#define FAST_NODE(T, NODE, LEAF, JOIN, s, s2)                                                    \
    FAST_INLINE T NODE##s(const char *x, ptrdiff_t rs, const float *w, __mmask32 k, int masked,  \
                          int i, int a, int l, int dt)                                           \
    {                                                                                            \
        T u, v;                                                                                  \
        if (s >= a)                                                                              \
            return LEAF(x, rs, w, k, masked, i, a, l, dt);                                       \
        u = NODE##s2(x, rs, w, k, masked, i, a, l, dt);                                          \
        v = NODE##s2(x, rs, w, k, masked, i + s, a, l, dt);                                      \
        return JOIN(u, v);                                                                       \
    }
#define FAST_NODES(T, NODE, LEAF, JOIN)                                                          \
    FAST_INLINE T NODE##64(const char *x, ptrdiff_t rs, const float *w, __mmask32 k, int masked, \
                           int i, int a, int l, int dt)                                          \
    {                                                                                            \
        return LEAF(x, rs, w, k, masked, i, a, l, dt);                                           \
    }                                                                                            \
    FAST_NODE(T, NODE, LEAF, JOIN, 32, 64)                                                       \
    FAST_NODE(T, NODE, LEAF, JOIN, 16, 32)                                                       \
    FAST_NODE(T, NODE, LEAF, JOIN, 8, 16)                                                        \
    FAST_NODE(T, NODE, LEAF, JOIN, 4, 8)                                                         \
    FAST_NODE(T, NODE, LEAF, JOIN, 2, 4)                                                         \
    FAST_NODE(T, NODE, LEAF, JOIN, 1, 2)
FAST_NODES(fast_pair, fast_node, fast_leaf, fast_join)
FAST_NODES(fast_two, fast_node2_, fast_leaf2, fast_join2)

/* Store the 32 sums of a strip in channel order (bf16 pairs are interleaved back). */
FAST_INLINE void fast_store(float *out, fast_pair r, __mmask32 k, int masked, int dt)
{
    if (dt == NSA_DTYPE_BF16) {
        const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
        const __m512 a = _mm512_permutex2var_ps(r.a, lo, r.b);
        r.b = _mm512_permutex2var_ps(r.a, hi, r.b);
        r.a = a;
    }
    if (masked) {
        _mm512_mask_storeu_ps(out, (__mmask16)k, r.a);
        _mm512_mask_storeu_ps(out + 16, (__mmask16)(k >> 16), r.b);
    } else {
        _mm512_storeu_ps(out, r.a);
        _mm512_storeu_ps(out + 16, r.b);
    }
}

/* Hides a pointer's value from the optimiser: otherwise GCC hoists the l weight broadcasts out
 * of the strip loop and spills them (a 512-bit load and store each, per strip). */
#define FAST_OPAQUE(p) __asm__("" : "+r"(p))

#define FAST_WINDOW(L, A, DT, ES)                                                                \
    FAST_TARGET static void fast_window_##L##_##DT(const char *x, ptrdiff_t rs, const float *w, \
                                                   int32_t D, float *out)                       \
    {                                                                                            \
        const int dt = NSA_DTYPE_##DT;                                                           \
        int32_t e;                                                                               \
        for (e = 0; e + 32 <= D; e += 32) {                                                      \
            const float *wv = w;                                                                 \
            FAST_OPAQUE(wv);                                                                     \
            fast_store(out + e, fast_node1(x + e * ES, rs, wv, 0, 0, 0, A, L, dt), 0, 0, dt);    \
        }                                                                                        \
        if (e < D) {                                                                             \
            const __mmask32 k = (__mmask32)((1u << (D - e)) - 1u);                               \
            fast_store(out + e, fast_node1(x + e * ES, rs, w, k, 1, 0, A, L, dt), k, 1, dt);     \
        }                                                                                        \
    }
/* Two windows a rows apart (fast_leaf2); out2 takes the second's sums. */
#define FAST_WINDOW2(L, A, DT, ES)                                                               \
    FAST_TARGET static void fast_window2_##L##_##DT(const char *x, ptrdiff_t rs, const float *w,\
                                                    int32_t D, float *out, float *out2)         \
    {                                                                                            \
        const int dt = NSA_DTYPE_##DT;                                                           \
        fast_two t;                                                                              \
        int32_t e;                                                                               \
        for (e = 0; e + 32 <= D; e += 32) {                                                      \
            const float *wv = w;                                                                 \
            FAST_OPAQUE(wv);                                                                     \
            t = fast_node2_1(x + e * ES, rs, wv, 0, 0, 0, A, L, dt);                             \
            fast_store(out + e, t.p, 0, 0, dt);                                                  \
            fast_store(out2 + e, t.q, 0, 0, dt);                                                 \
        }                                                                                        \
        if (e < D) {                                                                             \
            const __mmask32 k = (__mmask32)((1u << (D - e)) - 1u);                               \
            t = fast_node2_1(x + e * ES, rs, w, k, 1, 0, A, L, dt);                              \
            fast_store(out + e, t.p, k, 1, dt);                                                  \
            fast_store(out2 + e, t.q, k, 1, dt);                                                 \
        }                                                                                        \
    }
#define FAST_WINDOWS(L, A)                                                                       \
    FAST_WINDOW(L, A, BF16, 2) FAST_WINDOW(L, A, F16, 2) FAST_WINDOW(L, A, F32, 4)
/* l = 16 has a = 8, which no stride (a multiple of 16) equals: no pair kernel. */
#define FAST_WINDOWS_AND_PAIRS(L, A)                                                             \
    FAST_WINDOWS(L, A)                                                                           \
    FAST_WINDOW2(L, A, BF16, 2) FAST_WINDOW2(L, A, F16, 2) FAST_WINDOW2(L, A, F32, 4)
FAST_WINDOWS(16, 8)
FAST_WINDOWS_AND_PAIRS(32, 16)
FAST_WINDOWS_AND_PAIRS(48, 32)
FAST_WINDOWS_AND_PAIRS(64, 32)
FAST_WINDOWS_AND_PAIRS(80, 64)
FAST_WINDOWS_AND_PAIRS(96, 64)
FAST_WINDOWS_AND_PAIRS(112, 64)
FAST_WINDOWS_AND_PAIRS(128, 64)

/* [l / 16 - 1][bf16, f16, f32] */
#define FAST_ROW(L) {fast_window_##L##_BF16, fast_window_##L##_F16, fast_window_##L##_F32}
static const nsa_compress_window_fn fast_windows[8][3] = {
    FAST_ROW(16), FAST_ROW(32), FAST_ROW(48),  FAST_ROW(64),
    FAST_ROW(80), FAST_ROW(96), FAST_ROW(112), FAST_ROW(128)};
/* [l / 16 - 2][bf16, f16, f32], l >= 32 */
#define FAST_ROW2(L) {fast_window2_##L##_BF16, fast_window2_##L##_F16, fast_window2_##L##_F32}
static const nsa_compress_window2_fn fast_windows2[7][3] = {
    FAST_ROW2(32), FAST_ROW2(48),  FAST_ROW2(64), FAST_ROW2(80),
    FAST_ROW2(96), FAST_ROW2(112), FAST_ROW2(128)};
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

/* One output row of one head: orow in the output's dtype. */
static void store_window(const compress_job *job, int64_t row, int64_t head, const float *orow)
{
    const nsa_tensor *out = job->output;
    nsa_store_f32(orow, nsa_tensor_at(out, nsa_tensor_offset(out, row, head, 0, 0)), out->dtype,
                  out->stride[2], job->D, NSA_ROUND_NEAREST_AWAY);
}

static int g_force_portable;

void nsa_compress_force_portable(int on)
{
    g_force_portable = on;
}

#ifdef HAVE_X86_KERNELS
/* The column of the kernel tables (fast_windows, fast_windows2, and compress_avx2.c's) for an
 * input dtype. */
static int fast_column(nsa_dtype dt)
{
    return dt == NSA_DTYPE_BF16 ? 0 : dt == NSA_DTYPE_F16 ? 1 : 2;
}

/* The fused kernel for this input, or NULL where it does not apply (neither AVX-512 nor AVX2,
 * channels not contiguous, or the portable path forced). l is a multiple of 16 in [16, 128]. */
static nsa_compress_window_fn fast_window_for(const nsa_tensor *in, int64_t l)
{
    if (g_force_portable || in->stride[2] != 1)
        return NULL;
    if (!nsa_cpu_has_avx512())
        return nsa_compress_avx2_window(l, fast_column(in->dtype));
    return fast_windows[l / 16 - 1][fast_column(in->dtype)];
}

/* The pair kernel for this input (its single-window kernel applies and d equals the tree's
 * first half a, the largest power of two below l), or NULL. */
static nsa_compress_window2_fn fast_window2_for(const nsa_tensor *in, int64_t l, int64_t d)
{
    int64_t a = 1;
    while (a < l)
        a <<= 1;
    if (!fast_window_for(in, l) || d != a / 2)
        return NULL;
    if (!nsa_cpu_has_avx512())
        return nsa_compress_avx2_window2(l, fast_column(in->dtype));
    return fast_windows2[l / 16 - 2][fast_column(in->dtype)];
}

/* One task on the fused kernel: windows (in pairs where fn2 applies) -> heads -> strips,
 * straight from the caller's rows (a window's rows stay in L2 for the next one, which shares
 * l - d of them). No software prefetch: the hardware prefetchers alone measured fastest
 * (per-head, sequential and two-window-ahead prefetches were 0-15 % slower), as was running
 * several windows per head. */
static void fast_task(const compress_job *job, const compress_task *task,
                      nsa_compress_window_fn fn, nsa_compress_window2_fn fn2, const float *w,
                      float *orow, float *orow2)
{
    const nsa_tensor *in = job->input;
    const int64_t es = (int64_t)nsa_dtype_size(in->dtype), l = job->l, d = job->d;
    const ptrdiff_t rs = (ptrdiff_t)(in->stride[0] * es), hs = (ptrdiff_t)(in->stride[1] * es);
    const int64_t h0 = task->head0, nh = job->N - h0 < job->group ? job->N - h0 : job->group;
    const char *base = (const char *)nsa_tensor_at(in, nsa_tensor_offset(in, task->row0, h0,
                                                                         0, 0));
    int32_t j, step;
    int64_t n;
    for (j = 0; j < task->count; j += step) {
        const char *x = base + (ptrdiff_t)j * d * rs;
        step = fn2 && j + 1 < task->count ? 2 : 1;
        for (n = 0; n < nh; n++) {
            if (step == 2) {
                fn2(x + n * hs, rs, w + (h0 + n) * l, (int32_t)job->D, orow, orow2);
                store_window(job, task->out0 + j + 1, h0 + n, orow2);
            } else
                fn(x + n * hs, rs, w + (h0 + n) * l, (int32_t)job->D, orow);
            store_window(job, task->out0 + j, h0 + n, orow);
        }
    }
}
#endif

static void compress_worker(void *arg, size_t worker)
{
    const compress_job *job = (const compress_job *)arg;
    const nsa_tensor *in = job->input, *wt = job->weight;
    const int32_t l = (int32_t)job->l, D = (int32_t)job->D;
    const int64_t N = job->N, d = job->d;
    compress_slice sl;
    size_t t;
    int64_t n;
    void (*tree_fn)(const float *const *, int64_t, const float *, int32_t, int32_t, float *,
                    float *) = window_tree_portable;
#ifdef HAVE_X86_KERNELS
    const nsa_compress_window_fn fast = fast_window_for(in, job->l);
    const nsa_compress_window2_fn fast2 = fast_window2_for(in, job->l, job->d);
    if (nsa_cpu_has_avx512() && !g_force_portable)
        tree_fn = window_tree_avx512;
    else if (nsa_cpu_has_avx2() && !g_force_portable)
        tree_fn = window_tree_avx2;
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
#ifdef HAVE_X86_KERNELS
        if (fast) {
            fast_task(job, task, fast, fast2, sl.w, sl.orow, sl.tree);
            continue;
        }
#endif
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
                store_window(job, task->out0 + j, h0 + n, sl.orow);
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
        n += (size_t)nsa_cdiv(W, WINDOWS_PER_TASK) * (size_t)nsa_cdiv(N, group);
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
    int64_t out_rows = 0, b, N, D;
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
