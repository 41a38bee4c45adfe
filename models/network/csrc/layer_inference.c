/* One ON-LSTM layer's whole time loop at inference, with the recurrent weight U in float16.
 *
 * Why: a step multiplies a few rows of h by U, and for the batches a service sees, reading U is
 * most of that step's cost.  A release's weights are float16 values (models/checkpoint.py), so
 * U in float16 holds exactly the same numbers in half the bytes, and split between two cores
 * each half stays in that core's L2 cache for the whole loop instead of being read again from
 * L3 at every step (on the 2-core Xeon a 600-unit layer's step at batch 1 took 103 us with
 * MKL's float32 product on two threads).  The sums are float32, so the results are those of the
 * float32 path up to the order of the additions.
 *
 * Threads come from OpenMP: linked against libgomp.so.1, this library shares the runtime, and
 * so the thread pool, that torch already loaded; two runtimes spinning on two cores make every
 * step wait for the scheduler.  Built without OpenMP the loop runs on one thread.
 *
 * Layout: gates (P, G) hold W x + b of every packed position on entry (P = offsets[steps]; row
 * offsets[t] + r is row r of step t; step t has active[t] rows, never more than step t - 1) and
 * are activated in place; panels (G / PANEL rounded up, H, PANEL) is U packed as ``panel_``
 * reads it; hs (P, H), masters (P, 2n); h0, c0 (active[0], H); final_h, final_c (B, H) receive
 * the state of each row at its last step within the call; cs (2, B, H) is scratch.
 */
#include <stdint.h>
#include <string.h>

#include "openmp_team.h"
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif
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

/* gates[r][j] += sum_k h[r][k] U[g + j][k] for the PANEL gates g + j of one panel of U, packed
 * (H, PANEL): U's row k of those gates side by side.  Each row's sums are PANEL / 16 registers;
 * at each k, h broadcast times U's row k is added: no horizontal sums, and each value of U is
 * converted from float16 once for all ROWS rows.  ``valid`` gates of the panel are written (the
 * last panel of U is cut short). */
#define PANEL 32
#define PANEL_ROWS 8
#ifdef __AVX512F__
static inline __m512 load_half(const _Float16 *values) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)values));
}

static inline void add_sums(float *out, __m512 low, __m512 high, long valid) {
    __mmask16 low_mask = valid >= 16 ? 0xFFFF : (__mmask16)((1u << valid) - 1);
    __mmask16 high_mask = valid >= 32 ? 0xFFFF : valid <= 16 ? 0 : (__mmask16)((1u << (valid - 16)) - 1);
    _mm512_mask_storeu_ps(out, low_mask, _mm512_add_ps(_mm512_maskz_loadu_ps(low_mask, out), low));
    _mm512_mask_storeu_ps(out + 16, high_mask, _mm512_add_ps(_mm512_maskz_loadu_ps(high_mask, out + 16), high));
}

#define DEFINE_PANEL(ROWS)                                                                       \
    static void panel_##ROWS(const _Float16 *panel, long hidden, const float *h, long h_stride, \
                             float *gates, long gate_stride, long valid) {                      \
        __m512 low[ROWS], high[ROWS];                                                           \
        for (int r = 0; r < ROWS; r++) low[r] = high[r] = _mm512_setzero_ps();                  \
        for (long k = 0; k < hidden; k++) {                                                     \
            __m512 u_low = load_half(panel + k * PANEL), u_high = load_half(panel + k * PANEL + 16); \
            for (int r = 0; r < ROWS; r++) {                                                    \
                __m512 x = _mm512_set1_ps(h[r * h_stride + k]);                                 \
                low[r] = _mm512_fmadd_ps(x, u_low, low[r]);                                     \
                high[r] = _mm512_fmadd_ps(x, u_high, high[r]);                                  \
            }                                                                                   \
        }                                                                                       \
        for (int r = 0; r < ROWS; r++) add_sums(gates + r * gate_stride, low[r], high[r], valid); \
    }

/* One row: its two sums would wait on each other at every k (a 4-cycle add), so four pairs
 * take every fourth k and are added at the end. */
static void panel_1(const _Float16 *panel, long hidden, const float *h, long h_stride, float *gates,
                    long gate_stride, long valid) {
    (void)h_stride;
    (void)gate_stride;
    __m512 low[4], high[4];
    for (int phase = 0; phase < 4; phase++) low[phase] = high[phase] = _mm512_setzero_ps();
    long k = 0;
    for (; k + 4 <= hidden; k += 4)
        for (int phase = 0; phase < 4; phase++) {
            __m512 x = _mm512_set1_ps(h[k + phase]);
            low[phase] = _mm512_fmadd_ps(x, load_half(panel + (k + phase) * PANEL), low[phase]);
            high[phase] = _mm512_fmadd_ps(x, load_half(panel + (k + phase) * PANEL + 16), high[phase]);
        }
    for (; k < hidden; k++) {
        __m512 x = _mm512_set1_ps(h[k]);
        low[0] = _mm512_fmadd_ps(x, load_half(panel + k * PANEL), low[0]);
        high[0] = _mm512_fmadd_ps(x, load_half(panel + k * PANEL + 16), high[0]);
    }
    add_sums(gates, _mm512_add_ps(_mm512_add_ps(low[0], low[1]), _mm512_add_ps(low[2], low[3])),
             _mm512_add_ps(_mm512_add_ps(high[0], high[1]), _mm512_add_ps(high[2], high[3])), valid);
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
DEFINE_PANEL(1)
#endif
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

/* csrc/amx_product.c */
void onlstm_amx_begin(void);
void onlstm_amx_end(void);
void onlstm_amx_split(long rows, long width, const float *x, long x_stride, uint16_t *parts, long part_stride,
                      long k_pad, long n_parts);
void onlstm_amx_product(long rows, long k_tiles, long pair_first, long pair_last, const uint16_t *a,
                        long a_part_stride, const uint16_t *b, long b_part_stride, long passes, float *out,
                        long out_stride, long n_valid);

/* Rows [first, last) of `rows` for this thread of the team; all of them on thread 0 below a row each. */
static void row_share(long rows, long thread, long team, long *first, long *last) {
    *first = rows < team ? 0 : rows * thread / team;
    *last = rows < team ? (thread == 0 ? rows : 0) : rows * (thread + 1) / team;
}

/* With ``amx_weights`` (U packed for csrc/amx_product.c, its panels those of ``panels``), a step of
 * at least ``amx_min_rows`` rows takes U h on the AMX units (float32 in five passes), reading h
 * from ``amx_inputs`` (3, active[0] rounded up to 16, H rounded up to 32), which each thread fills
 * with the bfloat16 parts of the rows of h it has just computed. */
void onlstm_layer_inference_f16(long steps, const long *active, const long *offsets, long hidden, long chunk,
                                long threads, float *gates, const _Float16 *panels, const float *h0,
                                const float *c0, float *hs, float *masters, float *final_h, float *final_c,
                                float *cs, const uint16_t *amx_weights, uint16_t *amx_inputs, long amx_min_rows) {
    long gate_size = 4 * hidden + 2 * (hidden / chunk), masters_size = 2 * (hidden / chunk);
    long batch = steps > 0 ? active[0] : 0;
    long k_tiles = (hidden + 31) / 32, k_pad = k_tiles * 32;
    long panel_count = (gate_size + PANEL - 1) / PANEL;
    long input_part = (batch + 15) / 16 * 16 * k_pad, weight_part = panel_count * 2 * k_tiles * 512;
    (void)threads;  /* unused without OpenMP */
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        ONLSTM_TEAM(thread, team);
        /* this thread's share of U: the same panels at every step, so they stay in its core's cache */
        long panel_first = panel_count * thread / team, panel_last = panel_count * (thread + 1) / team;
        if (amx_weights) {
            onlstm_amx_begin();
            if (batch >= amx_min_rows) {
                long first, last;
                row_share(batch, thread, team, &first, &last);
                if (last > first)
                    onlstm_amx_split(last - first, hidden, h0 + first * hidden, hidden, amx_inputs + first * k_pad,
                                     input_part, k_pad, 3);
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
        for (long t = 0; t < steps; t++) {
            long rows = active[t], start = offsets[t];
            if (rows == 0) continue;
            float *step_gates = gates + start * gate_size;
            const float *h_prev = t == 0 ? h0 : hs + offsets[t - 1] * hidden;
            if (amx_weights && rows >= amx_min_rows)
                onlstm_amx_product(rows, k_tiles, panel_first, panel_last, amx_inputs, input_part, amx_weights,
                                   weight_part, 5, step_gates, gate_size, gate_size);
            else
                panel_product(panels, hidden, gate_size, panel_first, panel_last, h_prev, rows, step_gates);
#ifdef _OPENMP
#pragma omp barrier
#endif
            /* the gate arithmetic, a share of the rows each */
            long row_first, row_last;
            row_share(rows, thread, team, &row_first, &row_last);
            if (row_last > row_first) {
                const float *c_prev = t == 0 ? c0 : cs + ((t - 1) % 2) * batch * hidden;
                float *c_now = cs + (t % 2) * batch * hidden;
                onlstm_step_forward_f32(row_last - row_first, hidden, chunk, step_gates + row_first * gate_size,
                                        gate_size, c_prev + row_first * hidden, hidden, c_now + row_first * hidden,
                                        hidden, hs + (start + row_first) * hidden, hidden,
                                        masters + (start + row_first) * masters_size, masters_size);
                long next = t + 1 < steps ? active[t + 1] : 0;
                for (long r = (row_first > next ? row_first : next); r < row_last; r++) {
                    /* the row's sequence ends at this step (or the call's last step) */
                    memcpy(final_h + r * hidden, hs + (start + r) * hidden, hidden * sizeof(float));
                    memcpy(final_c + r * hidden, c_now + r * hidden, hidden * sizeof(float));
                }
                long converted = row_last < next ? row_last : next;  /* the rows that go on */
                if (amx_weights && next >= amx_min_rows && converted > row_first)
                    onlstm_amx_split(converted - row_first, hidden, hs + (start + row_first) * hidden, hidden,
                                     amx_inputs + row_first * k_pad, input_part, k_pad, 3);
            }
#ifdef _OPENMP
#pragma omp barrier
#endif
        }
        if (amx_weights) onlstm_amx_end();
    }
}

/* Flush-to-zero and denormals-are-zero (the MXCSR bits 0x8000 and 0x0040) on or off in the calling
 * thread and in every thread of an OpenMP team of `threads`: the pool that torch's parallel loops
 * and MKL's products run on.  torch.set_flush_denormal changes the calling thread only, and the
 * pool's threads keep their own MXCSR.  Returns 0 (and changes nothing) off x86. */
int onlstm_set_flush_subnormals(int on, int threads) {
#if defined(__x86_64__) || defined(__i386__)
#pragma omp parallel num_threads(threads)
    {
        unsigned int csr = _mm_getcsr();
        _mm_setcsr(on ? (csr | 0x8040u) : (csr & ~0x8040u));
    }
    return 1;
#else
    (void)on;
    (void)threads;
    return 0;
#endif
}
