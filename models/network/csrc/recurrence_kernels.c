/* The ON-LSTM gate arithmetic of one time step, fused: one pass over each row instead of
 * about fifteen tensor operations.  Loaded through ctypes by models/network/native.py; the pure
 * PyTorch path of models/network/recurrence.py computes the same and is used when this library
 * cannot be built.  The equations are those of models/network/cell.py (ONLSTMCell.step).
 *
 * Layout of a gate row (G = 4H + 2n values): [master input (n), master forget (n), o, c_hat, i, f (H each)].
 * The forward activates a row in place (the master columns become their softmax), writes the
 * cumulative sums [cumsum(softmax(input)), cumsum(softmax(forget))] (2n per row), c and h.
 * The backward takes those activations back and returns the gradient of the gate
 * pre-activations, and the gradient of the previous cell state.  Strides count elements
 * between rows; within a row values are contiguous.  No value here is ever infinite:
 * exponentials only see arguments <= 0, which is what keeps -ffast-math safe.
 */
#include <math.h>

#define DEFINE_KERNELS(T, SUFFIX, EXP)                                                          \
    static inline T sigmoid_##SUFFIX(T x) {                                                     \
        T e = EXP(-(x < 0 ? -x : x));                                                           \
        T s = (T)1 / ((T)1 + e);                                                                \
        return x >= 0 ? s : e * s;                                                              \
    }                                                                                           \
    static inline T tanh_##SUFFIX(T x) {                                                        \
        T e = EXP((T)-2 * (x < 0 ? -x : x));                                                    \
        T t = ((T)1 - e) / ((T)1 + e);                                                          \
        return x >= 0 ? t : -t;                                                                 \
    }                                                                                           \
    static void softmax_cumsum_##SUFFIX(T *logits, T *cumulative, long n) {                     \
        T top = logits[0];                                                                      \
        for (long k = 1; k < n; k++) top = logits[k] > top ? logits[k] : top;                   \
        T total = 0;                                                                            \
        for (long k = 0; k < n; k++) {                                                          \
            logits[k] = EXP(logits[k] - top);                                                   \
            total += logits[k];                                                                 \
        }                                                                                       \
        T running = 0;                                                                          \
        for (long k = 0; k < n; k++) {                                                          \
            logits[k] /= total;                                                                 \
            running += logits[k];                                                               \
            cumulative[k] = running;                                                            \
        }                                                                                       \
    }                                                                                           \
    void onlstm_step_forward_##SUFFIX(long rows, long hidden, long chunk, T *gates, long gates_stride,  \
                                      const T *c_prev, long c_prev_stride, T *c_out, long c_stride,     \
                                      T *h_out, long h_stride, T *masters, long masters_stride) {       \
        long n = hidden / chunk;                                                                \
        T master_forget[hidden], master_input[hidden];                                          \
        for (long r = 0; r < rows; r++) {                                                       \
            T *g = gates + r * gates_stride, *m = masters + r * masters_stride;                 \
            const T *cp = c_prev + r * c_prev_stride;                                           \
            T *c = c_out + r * c_stride, *h = h_out + r * h_stride;                             \
            softmax_cumsum_##SUFFIX(g, m, n);                                                   \
            softmax_cumsum_##SUFFIX(g + n, m + n, n);                                           \
            for (long k = 0; k < n; k++) /* no division per value: it cost more than the exps */ \
                for (long j = k * chunk; j < (k + 1) * chunk; j++) {                            \
                    master_forget[j] = m[n + k];                                                \
                    master_input[j] = (T)1 - m[k];                                              \
                }                                                                               \
            T *o = g + 2 * n, *cell = o + hidden, *in = cell + hidden, *forget = in + hidden;   \
            /* one activation per loop: loops this simple are vectorised, with libmvec's exp   \
             * (one loop doing all of them ran the exponentials one at a time, 5x slower) */    \
            for (long j = 0; j < hidden; j++) o[j] = sigmoid_##SUFFIX(o[j]);                    \
            for (long j = 0; j < hidden; j++) cell[j] = tanh_##SUFFIX(cell[j]);                 \
            for (long j = 0; j < 2 * hidden; j++) in[j] = sigmoid_##SUFFIX(in[j]); /* i, f */   \
            for (long j = 0; j < hidden; j++) {                                                 \
                T overlap = master_forget[j] * master_input[j];                                 \
                T forget_hat = forget[j] * overlap + (master_forget[j] - overlap);              \
                T input_hat = in[j] * overlap + (master_input[j] - overlap);                    \
                c[j] = forget_hat * cp[j] + input_hat * cell[j];                                \
            }                                                                                   \
            for (long j = 0; j < hidden; j++) h[j] = o[j] * tanh_##SUFFIX(c[j]);                \
        }                                                                                       \
    }                                                                                           \
    void onlstm_step_backward_##SUFFIX(                                                         \
        long rows, long hidden, long chunk, const T *acts, long acts_stride, const T *masters, \
        long masters_stride, const T *c_prev, long c_prev_stride, const T *c_now, long c_stride, \
        const T *d_h, long d_h_stride, T *d_c, long d_c_stride, const T *d_input_distance,      \
        const T *d_forget_distance, T *d_gates, long d_gates_stride) {                          \
        long n = hidden / chunk;                                                                \
        T master_forget[hidden], master_input[hidden];                                          \
        T sum_forget[hidden], sum_input[hidden], sum_overlap[hidden], tanh_cs[hidden];          \
        T d_cumulative[2 * n];                                                                  \
        for (long r = 0; r < rows; r++) {                                                       \
            const T *g = acts + r * acts_stride, *m = masters + r * masters_stride;             \
            const T *cp = c_prev + r * c_prev_stride, *c = c_now + r * c_stride;                \
            const T *dh = d_h + r * d_h_stride;                                                 \
            T *dc = d_c + r * d_c_stride, *dg = d_gates + r * d_gates_stride;                   \
            for (long k = 0; k < n; k++) /* no division per value: it cost more than the exps */ \
                for (long j = k * chunk; j < (k + 1) * chunk; j++) {                            \
                    master_forget[j] = m[n + k];                                                \
                    master_input[j] = (T)1 - m[k];                                              \
                }                                                                               \
            const T *o = g + 2 * n, *cell = o + hidden, *in = cell + hidden, *forget = in + hidden; \
            T *d_o = dg + 2 * n, *d_cell = d_o + hidden, *d_in = d_cell + hidden, *d_forget = d_in + hidden; \
            for (long j = 0; j < hidden; j++) tanh_cs[j] = tanh_##SUFFIX(c[j]); /* vectorised */ \
            for (long j = 0; j < hidden; j++) {                                                 \
                T overlap = master_forget[j] * master_input[j];                                 \
                T tanh_c = tanh_cs[j];                                                          \
                T forget_hat = forget[j] * overlap + (master_forget[j] - overlap);              \
                T input_hat = in[j] * overlap + (master_input[j] - overlap);                    \
                T dc_total = dc[j] + dh[j] * o[j] * ((T)1 - tanh_c * tanh_c);                   \
                d_o[j] = dh[j] * tanh_c * o[j] * ((T)1 - o[j]);                                 \
                d_cell[j] = dc_total * input_hat * ((T)1 - cell[j] * cell[j]);                  \
                d_in[j] = dc_total * cell[j] * overlap * in[j] * ((T)1 - in[j]);                \
                d_forget[j] = dc_total * cp[j] * overlap * forget[j] * ((T)1 - forget[j]);      \
                /* f^ = f w + (f~ - w), i^ = i w + (i~ - w), w = f~ i~: chunk sums below */      \
                sum_forget[j] = dc_total * cp[j];                                               \
                sum_input[j] = dc_total * cell[j];                                              \
                sum_overlap[j] = dc_total * (cp[j] * (forget[j] - (T)1) + cell[j] * (in[j] - (T)1)); \
                dc[j] = dc_total * forget_hat;                                                  \
            }                                                                                   \
            T input_term = d_input_distance ? -d_input_distance[r] / (T)n : (T)0;               \
            T forget_term = d_forget_distance ? -d_forget_distance[r] / (T)n : (T)0;            \
            for (long k = 0; k < n; k++) {                                                      \
                T s_forget = 0, s_input = 0, s_overlap = 0;                                     \
                for (long j = k * chunk; j < (k + 1) * chunk; j++) {                            \
                    s_forget += sum_forget[j];                                                  \
                    s_input += sum_input[j];                                                    \
                    s_overlap += sum_overlap[j];                                                \
                }                                                                               \
                T mf = m[n + k], mi = (T)1 - m[k];                                              \
                /* i~ = 1 - cumsum(input probs): its gradient enters the cumsum negated */      \
                d_cumulative[k] = -(s_input + s_overlap * mf) + input_term;                     \
                d_cumulative[n + k] = s_forget + s_overlap * mi + forget_term;                  \
            }                                                                                   \
            for (long half = 0; half < 2; half++) {                                             \
                const T *p = g + half * n;                                                      \
                T *dp = d_cumulative + half * n, *dl = dg + half * n;                           \
                T running = 0, dot = 0;                                                         \
                for (long k = n - 1; k >= 0; k--) { /* cumsum backward: reverse cumulative sum */ \
                    running += dp[k];                                                           \
                    dp[k] = running;                                                            \
                    dot += p[k] * running;                                                      \
                }                                                                               \
                for (long k = 0; k < n; k++) dl[k] = p[k] * (dp[k] - dot);                      \
            }                                                                                   \
        }                                                                                       \
    }

DEFINE_KERNELS(float, f32, expf)
DEFINE_KERNELS(double, f64, exp)

/* The softmax cross-entropy over the vocabulary, without its (tokens, V) log-probabilities:
 * the forward needs each row's log-sum-exp, the backward turns the saved logits into
 * (softmax - one-hot) * grad in place.  Used by models/network/loss.py. */
#define DEFINE_LOSS_KERNELS(T, SUFFIX, EXP, LOG)                                                \
    /* the bias, when given, is added to the scores in place first: the same sums as addmm's  \
     * (x W^T, then + b), without its copy of the bias into a (rows, width) matrix */           \
    void onlstm_logsumexp_##SUFFIX(long rows, long width, T *logits, long stride, const T *bias, T *out) { \
        for (long r = 0; r < rows; r++) {                                                       \
            T *x = logits + r * stride;                                                         \
            if (bias)                                                                           \
                for (long j = 0; j < width; j++) x[j] += bias[j];                               \
            T top = x[0];                                                                       \
            for (long j = 1; j < width; j++) top = x[j] > top ? x[j] : top;                     \
            T total = 0;                                                                        \
            for (long j = 0; j < width; j++) total += EXP(x[j] - top);                          \
            out[r] = top + LOG(total);                                                          \
        }                                                                                       \
    }                                                                                           \
    void onlstm_softmax_nll_backward_##SUFFIX(long rows, long width, T *logits, long stride,   \
                                             const T *lse, const long *targets, const T *grad) { \
        for (long r = 0; r < rows; r++) {                                                       \
            T *x = logits + r * stride, shift = lse[r], g = grad[r];                            \
            for (long j = 0; j < width; j++) x[j] = EXP(x[j] - shift) * g;                      \
            x[targets[r]] -= g;                                                                 \
        }                                                                                       \
    }

DEFINE_LOSS_KERNELS(float, f32, expf, logf)
DEFINE_LOSS_KERNELS(double, f64, exp, log)

/* DropConnect's mask on a weight (or, in the backward, on its gradient): out[i] = in[i] * scale
 * where element i's draw falls under the threshold (keep * 2^32), else 0.  The draw is
 * splitmix64 of (seed, first + i): counter-based, so any split of the elements over threads,
 * and the backward, see the same mask, and a torch-drawn seed makes it follow torch's seeding.
 * About 0.3 ns an element here, against about 10 for torch's CPU bernoulli_. */
static inline unsigned long long dropconnect_draw(unsigned long long seed, unsigned long long index) {
    unsigned long long z = seed + (index + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (z ^ (z >> 31)) >> 32;
}

#define DEFINE_DROPCONNECT(T, SUFFIX)                                                           \
    void onlstm_dropconnect_##SUFFIX(long count, long first, const T *in, T *out,              \
                                     unsigned long long seed, unsigned long long threshold, T scale) { \
        for (long i = 0; i < count; i++)                                                        \
            out[i] = dropconnect_draw(seed, (unsigned long long)(first + i)) < threshold ? in[i] * scale : (T)0; \
    }

DEFINE_DROPCONNECT(float, f32)
DEFINE_DROPCONNECT(double, f64)
