/* One ON-LSTM layer's whole time loop for inference on a few rows (service requests, small
 * batches), with the recurrent weight U stored in float16.
 *
 * Why: at batch 1 a step is a matrix-vector product, and reading U is all of its cost.  A
 * release's weights are float16 values (models/release.py), so U in float16 holds exactly the
 * same numbers in half the bytes, and split between two cores each half stays in that core's L2
 * cache for the whole loop instead of being read again from L3 at every step (measured on the
 * 2-core Xeon: a 600-unit layer's step 103 us with MKL's float32 product on two threads).
 * The products accumulate in float32, so the results are those of the float32 path up to the
 * order of the sums.
 *
 * Threads come from OpenMP: linked against libgomp.so.1, this library shares the runtime, and
 * so the thread pool, that torch already loaded; two runtimes spinning on two cores make every
 * step wait for the scheduler.  Built without OpenMP the loop runs on one thread.
 *
 * Layout: gates (P, G) hold W x + b of every packed position on entry (P = offsets[steps]; row
 * offsets[t] + r is row r of step t; step t has active[t] rows, never more than step t - 1) and
 * are activated in place; weight (G, padded) is U with each row zero-padded to ``padded`` values;
 * hs (P, H), masters (P, 2n); h0, c0, final_h, final_c (B, H); cs (2, B, H) is scratch, and so is
 * h_padded (B, padded), which must be zero beyond H.
 */
#ifdef _OPENMP
#include <omp.h>
#endif
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

void onlstm_step_forward_f32(long rows, long hidden, long chunk, float *gates, long gates_stride,
                             const float *c_prev, long c_prev_stride, float *c_out, long c_stride,
                             float *h_out, long h_stride, float *masters, long masters_stride);

int onlstm_layer_threads_shared(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

#define GATE_BLOCK 4 /* gate rows per block: 4 chains of sums at batch 1, U read once per block */
#define ROW_BLOCK 4  /* h rows per block: 16 accumulators, with 4 values of U and 1 of h in registers */

/* gates[r][g + j] += sum_k weight[g + j][k] * h[r][k] for j < GATE_BLOCK, r < ROWS. */
#ifdef __AVX512F__
#define DEFINE_BLOCK(ROWS)                                                                       \
    static void gate_block_##ROWS(const _Float16 *weight, long padded, long g, const float *h,  \
                                  float *gates, long gate_stride) {                             \
        __m512 sums[ROWS][GATE_BLOCK];                                                          \
        for (int r = 0; r < ROWS; r++)                                                          \
            for (int j = 0; j < GATE_BLOCK; j++) sums[r][j] = _mm512_setzero_ps();              \
        for (long k = 0; k < padded; k += 16) {                                                 \
            __m512 u[GATE_BLOCK];                                                               \
            for (int j = 0; j < GATE_BLOCK; j++)                                                \
                u[j] = _mm512_cvtph_ps(_mm256_loadu_si256(                                      \
                    (const __m256i *)(weight + (g + j) * padded + k)));                         \
            for (int r = 0; r < ROWS; r++) {                                                    \
                __m512 x = _mm512_loadu_ps(h + r * padded + k);                                 \
                for (int j = 0; j < GATE_BLOCK; j++) sums[r][j] = _mm512_fmadd_ps(x, u[j], sums[r][j]); \
            }                                                                                   \
        }                                                                                       \
        for (int r = 0; r < ROWS; r++)                                                          \
            for (int j = 0; j < GATE_BLOCK; j++)                                                \
                gates[r * gate_stride + g + j] += _mm512_reduce_add_ps(sums[r][j]);             \
    }
#else
#define DEFINE_BLOCK(ROWS)                                                                       \
    static void gate_block_##ROWS(const _Float16 *weight, long padded, long g, const float *h,  \
                                  float *gates, long gate_stride) {                             \
        for (int r = 0; r < ROWS; r++)                                                          \
            for (int j = 0; j < GATE_BLOCK; j++) {                                              \
                const _Float16 *u = weight + (g + j) * padded;                                  \
                float sum = 0;                                                                  \
                for (long k = 0; k < padded; k++) sum += h[r * padded + k] * (float)u[k];       \
                gates[r * gate_stride + g + j] += sum;                                          \
            }                                                                                   \
    }
#endif
DEFINE_BLOCK(1)
DEFINE_BLOCK(2)
DEFINE_BLOCK(3)
DEFINE_BLOCK(4)

/* gates[r][g] += U[g] . h[r] for g in [first, last) (whole blocks; last may be G), r < rows. */
static void recurrent_product(const _Float16 *weight, long padded, long first, long last, const float *h,
                              long rows, float *gates, long gate_stride) {
    long g = first;
    for (; g + GATE_BLOCK <= last; g += GATE_BLOCK)
        for (long r = 0; r < rows; r += ROW_BLOCK) {
            long count = rows - r < ROW_BLOCK ? rows - r : ROW_BLOCK;
            const float *x = h + r * padded;
            float *out = gates + r * gate_stride;
            if (count == 4) gate_block_4(weight, padded, g, x, out, gate_stride);
            else if (count == 3) gate_block_3(weight, padded, g, x, out, gate_stride);
            else if (count == 2) gate_block_2(weight, padded, g, x, out, gate_stride);
            else gate_block_1(weight, padded, g, x, out, gate_stride);
        }
    for (; g < last; g++) /* G not a multiple of the block */
        for (long r = 0; r < rows; r++) {
            float sum = 0;
            for (long k = 0; k < padded; k++) sum += h[r * padded + k] * (float)weight[g * padded + k];
            gates[r * gate_stride + g] += sum;
        }
}

/* The same product for many rows, from U packed in panels of PANEL gates: panels (G / PANEL
 * rounded up, H, PANEL), zero beyond G.  A panel's gates are PANEL_VECTORS registers of sums per
 * row, broadcast h times U's row k added at each k: no horizontal sums, and each value of U
 * converted once for PANEL_ROWS rows.  The dot products above do better on a row or two, where
 * these sums would wait on each other. */
#define PANEL 32
#define PANEL_ROWS 8
#ifdef __AVX512F__
#define DEFINE_PANEL(ROWS)                                                                       \
    static void panel_##ROWS(const _Float16 *panel, long hidden, const float *h, long h_stride, \
                             float *gates, long gate_stride, long valid) {                      \
        __m512 low[ROWS], high[ROWS];                                                           \
        for (int r = 0; r < ROWS; r++) low[r] = high[r] = _mm512_setzero_ps();                  \
        for (long k = 0; k < hidden; k++) {                                                     \
            __m512 u_low = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(panel + k * PANEL))); \
            __m512 u_high = _mm512_cvtph_ps(                                                    \
                _mm256_loadu_si256((const __m256i *)(panel + k * PANEL + 16)));                 \
            for (int r = 0; r < ROWS; r++) {                                                    \
                __m512 x = _mm512_set1_ps(h[r * h_stride + k]);                                 \
                low[r] = _mm512_fmadd_ps(x, u_low, low[r]);                                     \
                high[r] = _mm512_fmadd_ps(x, u_high, high[r]);                                  \
            }                                                                                   \
        }                                                                                       \
        __mmask16 low_mask = valid >= 16 ? 0xFFFF : (__mmask16)((1u << valid) - 1);             \
        __mmask16 high_mask = valid >= 32 ? 0xFFFF : valid <= 16 ? 0 : (__mmask16)((1u << (valid - 16)) - 1); \
        for (int r = 0; r < ROWS; r++) {                                                        \
            float *out = gates + r * gate_stride;                                               \
            _mm512_mask_storeu_ps(out, low_mask,                                                \
                                  _mm512_add_ps(_mm512_maskz_loadu_ps(low_mask, out), low[r])); \
            _mm512_mask_storeu_ps(out + 16, high_mask,                                          \
                                  _mm512_add_ps(_mm512_maskz_loadu_ps(high_mask, out + 16), high[r])); \
        }                                                                                       \
    }
#else
#define DEFINE_PANEL(ROWS)                                                                       \
    static void panel_##ROWS(const _Float16 *panel, long hidden, const float *h, long h_stride, \
                             float *gates, long gate_stride, long valid) {                      \
        float sums[ROWS][PANEL] = {{0}};                                                        \
        for (long k = 0; k < hidden; k++)                                                       \
            for (int r = 0; r < ROWS; r++)                                                      \
                for (int j = 0; j < PANEL; j++) sums[r][j] += h[r * h_stride + k] * (float)panel[k * PANEL + j]; \
        for (int r = 0; r < ROWS; r++)                                                          \
            for (long j = 0; j < valid; j++) gates[r * gate_stride + j] += sums[r][j];          \
    }
#endif
DEFINE_PANEL(1)
DEFINE_PANEL(2)
DEFINE_PANEL(3)
DEFINE_PANEL(4)
DEFINE_PANEL(5)
DEFINE_PANEL(6)
DEFINE_PANEL(7)
DEFINE_PANEL(8)

typedef void (*panel_function)(const _Float16 *, long, const float *, long, float *, long, long);
static const panel_function PANEL_FUNCTIONS[PANEL_ROWS + 1] = {
    0, panel_1, panel_2, panel_3, panel_4, panel_5, panel_6, panel_7, panel_8};

/* gates[r][g] += U[g] . h[r] for the gates of panels [first, last), r < rows. */
static void panel_product(const _Float16 *panels, long hidden, long gate_size, long first, long last,
                          const float *h, long rows, float *gates) {
    for (long p = first; p < last; p++) {
        long valid = gate_size - p * PANEL < PANEL ? gate_size - p * PANEL : PANEL;
        for (long r = 0; r < rows; r += PANEL_ROWS) {
            long count = rows - r < PANEL_ROWS ? rows - r : PANEL_ROWS;
            PANEL_FUNCTIONS[count](panels + p * hidden * PANEL, hidden, h + r * hidden, hidden,
                                   gates + r * gate_size + p * PANEL, gate_size, valid);
        }
    }
}

void onlstm_layer_inference_f16(long steps, const long *active, const long *offsets, long hidden, long chunk,
                                long threads, long panel_rows, float *gates, const _Float16 *weight, long padded,
                                const _Float16 *panels,
                                const float *h0, const float *c0, float *hs, float *masters,
                                float *final_h, float *final_c, float *cs, float *h_padded) {
    long gate_size = 4 * hidden + 2 * (hidden / chunk), masters_size = 2 * (hidden / chunk);
    long batch = steps > 0 ? active[0] : 0;
    for (long r = 0; r < batch; r++) memcpy(h_padded + r * padded, h0 + r * hidden, hidden * sizeof(float));
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
#ifdef _OPENMP
        long thread = omp_get_thread_num(), team = omp_get_num_threads();
#else
        long thread = 0, team = 1;
        (void)threads;
#endif
        /* this thread's share of the gate rows, in whole blocks: the same rows of U at every step */
        long blocks = (gate_size + GATE_BLOCK - 1) / GATE_BLOCK;
        long first = blocks * thread / team * GATE_BLOCK, last = blocks * (thread + 1) / team * GATE_BLOCK;
        if (last > gate_size) last = gate_size;
        long panel_count = (gate_size + PANEL - 1) / PANEL;
        long panel_first = panel_count * thread / team, panel_last = panel_count * (thread + 1) / team;
        for (long t = 0; t < steps; t++) {
            long rows = active[t], start = offsets[t];
            if (rows == 0) continue;
            float *step_gates = gates + start * gate_size;
            if (rows >= panel_rows) {
                const float *h_prev = t == 0 ? h0 : hs + offsets[t - 1] * hidden;
                panel_product(panels, hidden, gate_size, panel_first, panel_last, h_prev, rows, step_gates);
            } else {
                recurrent_product(weight, padded, first, last, h_padded, rows, step_gates, gate_size);
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
            /* the gate arithmetic, a share of the rows each (all of them on thread 0 below a row each) */
            long row_first = rows < team ? 0 : rows * thread / team;
            long row_last = rows < team ? (thread == 0 ? rows : 0) : rows * (thread + 1) / team;
            if (row_last > row_first) {
                const float *c_prev = t == 0 ? c0 : cs + ((t - 1) % 2) * batch * hidden;
                float *c_now = cs + (t % 2) * batch * hidden;
                long count = row_last - row_first;
                onlstm_step_forward_f32(count, hidden, chunk, step_gates + row_first * gate_size, gate_size,
                                        c_prev + row_first * hidden, hidden, c_now + row_first * hidden, hidden,
                                        hs + (start + row_first) * hidden, hidden,
                                        masters + (start + row_first) * masters_size, masters_size);
                long next = t + 1 < steps ? active[t + 1] : 0;
                for (long r = row_first; r < row_last; r++) {
                    const float *h = hs + (start + r) * hidden;
                    memcpy(h_padded + r * padded, h, hidden * sizeof(float));
                    if (r >= next) { /* the row's sequence ends at this step */
                        memcpy(final_h + r * hidden, h, hidden * sizeof(float));
                        memcpy(final_c + r * hidden, c_now + r * hidden, hidden * sizeof(float));
                    }
                }
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
    }
}
