/* Matrix products on the AMX tile units (Intel Xeon, Sapphire Rapids and later), float32 results.
 *
 * Why: a core's AMX unit multiplies bfloat16 tiles with float32 sums several times faster than its
 * AVX-512 float32 FMAs (one core, a 200 x 600 by 600 x 2520 product: MKL's float32 3.3 ms, one
 * bfloat16 pass here 0.48 ms, the five below 1.5 ms).  bfloat16 keeps 8 bits of a value, so the
 * float32 product is split into exact pieces: a release's weights are float16 values
 * (models/checkpoint.py), 11 bits, and each is the sum of two bfloat16 values, w = w_hi + w_lo;
 * a float32 activation is the sum of three, x = x_hi + x_mid + x_lo.  Every product of two
 * bfloat16 values is exact in float32, so
 *     x . w = x_hi w_hi + x_mid w_hi + x_lo w_hi + x_hi w_lo + x_mid w_lo    (+ x_lo w_lo)
 * with the last term under 2^-24 of the sum and left out: five passes give the float32 product
 * up to the order of the additions (tests/models/test_amx.py holds it to float64).  One pass,
 * x_hi w_hi, is the bfloat16 product, about 2^-9 relative.
 *
 * Layout.  A (activations): parts (n_parts, row_tiles * 16, k_tiles * 32) bfloat16, row-major,
 * zero beyond the real columns (``onlstm_amx_split``).  B (weights): parts (2, pairs * 2,
 * k_tiles, 16, 16, 2), packed by ``models.network.native.amx_panels``: tile (n, k) holds, at row r and
 * column c, the pair w[16 n + c][32 k + 2 r + {0, 1}], as TDPBF16PS reads it.  Out (rows, n_valid)
 * float32 with any row stride: the products are ADDED to it.  Columns are taken 32 at a time
 * (a pair of 16-column tiles), rows 32 at a time (two 16-row tiles): four accumulator tiles.
 *
 * Linux hands out the tile registers only after a request (arch_prctl), made once per process
 * by ``onlstm_amx_available``; each thread loads its tile configuration (``onlstm_amx_begin``)
 * before its first product and releases it after (``onlstm_amx_end``).  Built for a CPU or with
 * a compiler without AMX, every function here is a stub and ``onlstm_amx_available`` says 0.
 */
#include <stdint.h>
#include <string.h>

#include "openmp_team.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__) && defined(__linux__)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MATMUL_BLOCK_ROWS 128
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

int onlstm_amx_available(void) {
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

typedef struct {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t bytes_per_row[16];
    uint8_t rows[16];
} __attribute__((packed)) tile_config;

void onlstm_amx_begin(void) {
    tile_config config;
    memset(&config, 0, sizeof config);
    config.palette_id = 1;
    for (int tile = 0; tile < 8; tile++) {
        config.rows[tile] = 16;
        config.bytes_per_row[tile] = 64;
    }
    /* not _tile_loadconfig: GCC 12 declares its operand as 8 bytes and drops the stores after them */
    __asm__ volatile("ldtilecfg %0" : : "m"(config));
}

void onlstm_amx_end(void) { _tile_release(); }

/* rows of x (float32) into n_parts bfloat16 parts: part p holds what parts 0..p-1 left, rounded
 * to nearest; columns from ``width`` to k_pad are zero. */
void onlstm_amx_split(long rows, long width, const float *x, long x_stride, uint16_t *parts, long part_stride,
                      long k_pad, long n_parts) {
    for (long r = 0; r < rows; r++)
        for (long k = 0; k < k_pad; k += 16) {
            __mmask16 mask = k + 16 <= width ? 0xFFFF : k >= width ? 0 : (__mmask16)((1u << (width - k)) - 1);
            __m512 rest = _mm512_maskz_loadu_ps(mask, x + r * x_stride + k);
            for (long part = 0; part < n_parts; part++) {
                __m256i bits = (__m256i)_mm512_cvtneps_pbh(rest);
                _mm256_storeu_si256((__m256i *)(parts + part * part_stride + r * k_pad + k), bits);
                rest = _mm512_sub_ps(rest, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16)));
            }
        }
}

static void add_block(float *out, long out_stride, const float *block, long rows, long cols) {
    for (long r = 0; r < rows; r++)
        for (long c = 0; c < cols; c++) out[r * out_stride + c] += block[r * 32 + c];
}

/* The A parts that multiply each B part: B hi meets A hi, mid, lo; B lo meets A hi, mid. */
#define PRODUCTS(TWO)                                                                              \
    for (long kb = 0; kb < k_tiles; kb++)                                                          \
        for (long b_part = 0; b_part < (passes > 1 ? 2 : 1); b_part++) {                           \
            const uint16_t *b_tiles = b_pair + b_part * b_part_stride + kb * 512;                       \
            _tile_loadd(6, b_tiles, 64);                                                           \
            _tile_loadd(7, b_tiles + k_tiles * 512, 64);                                           \
            for (long a_part = 0; a_part < (passes > 1 ? 3 - b_part : 1); a_part++) {              \
                const uint16_t *a_tiles = a_rows + a_part * a_part_stride + kb * 32;               \
                _tile_loadd(4, a_tiles, k_pad * 2);                                                \
                _tile_dpbf16ps(0, 4, 6);                                                           \
                _tile_dpbf16ps(1, 4, 7);                                                           \
                if (TWO) {                                                                         \
                    _tile_loadd(5, a_tiles + 16 * k_pad, k_pad * 2);                               \
                    _tile_dpbf16ps(2, 5, 6);                                                       \
                    _tile_dpbf16ps(3, 5, 7);                                                       \
                }                                                                                  \
            }                                                                                      \
        }

/* out[r][32 pair + c] += x[r] . w[32 pair + c] for the column pairs [pair_first, pair_last) and
 * rows [0, rows); passes 5 (float32) or 1 (bfloat16).  Between onlstm_amx_begin and _end. */
void onlstm_amx_product(long rows, long k_tiles, long pair_first, long pair_last, const uint16_t *a,
                        long a_part_stride, const uint16_t *b, long b_part_stride, long passes, float *out,
                        long out_stride, long n_valid) {
    float block[32 * 32];
    long k_pad = k_tiles * 32, row_tiles = (rows + 15) / 16;
    for (long pair = pair_first; pair < pair_last; pair++) {
        long cols = n_valid - pair * 32 < 32 ? n_valid - pair * 32 : 32;
        const uint16_t *b_pair = b + 2 * pair * k_tiles * 512;
        for (long tile = 0; tile < row_tiles; tile += 2) {
            const uint16_t *a_rows = a + tile * 16 * k_pad;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            if (tile + 1 < row_tiles) {
                PRODUCTS(1)
                _tile_stored(2, block + 16 * 32, 128);
                _tile_stored(3, block + 16 * 32 + 16, 128);
            } else {
                PRODUCTS(0)
            }
            _tile_stored(0, block, 128);
            _tile_stored(1, block + 16, 128);
            long left = rows - tile * 16;
            add_block(out + tile * 16 * out_stride + pair * 32, out_stride, block, left < 32 ? left : 32, cols);
        }
    }
}

/* out (rows, n_valid) += x (rows, width) . w^T, w given as ``pairs`` column pairs of tiles; on
 * ``threads`` OpenMP threads (the pool torch uses), each a share of the column pairs.  scratch
 * holds x's parts: 3 * (rows rounded up to 16) * k_tiles * 32 values. */
void onlstm_amx_matmul(long rows, long width, const float *x, long x_stride, long k_tiles, const uint16_t *w,
                       long pairs, long passes, float *out, long out_stride, long n_valid, uint16_t *scratch,
                       long threads) {
    long k_pad = k_tiles * 32, part = (rows + 15) / 16 * 16 * k_pad, weight_part = pairs * 2 * k_tiles * 512;
    long n_parts = passes > 1 ? 3 : 1;
    (void)threads;  /* unused without OpenMP */
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        ONLSTM_TEAM(thread, team);
        long first = rows * thread / team, last = rows * (thread + 1) / team;
        onlstm_amx_split(last - first, width, x + first * x_stride, x_stride, scratch + first * k_pad, part, k_pad,
                         n_parts);
#ifdef _OPENMP
#pragma omp barrier
#endif
        onlstm_amx_begin();
        /* rows a block at a time: the block's parts and a column pair's tiles stay in the core's L2 */
        for (long block = 0; block < rows; block += MATMUL_BLOCK_ROWS)
            onlstm_amx_product(rows - block < MATMUL_BLOCK_ROWS ? rows - block : MATMUL_BLOCK_ROWS, k_tiles,
                               pairs * thread / team, pairs * (thread + 1) / team, scratch + block * k_pad, part, w,
                               weight_part, passes, out + block * out_stride, out_stride, n_valid);
        onlstm_amx_end();
    }
}

#else
int onlstm_amx_available(void) { return 0; }
void onlstm_amx_matmul(long rows, long width, const float *x, long x_stride, long k_tiles, const uint16_t *w,
                       long pairs, long passes, float *out, long out_stride, long n_valid, uint16_t *scratch,
                       long threads) {
    (void)rows, (void)width, (void)x, (void)x_stride, (void)k_tiles, (void)w, (void)pairs, (void)passes, (void)out;
    (void)out_stride, (void)n_valid, (void)scratch, (void)threads;
}
void onlstm_amx_begin(void) {}
void onlstm_amx_end(void) {}
void onlstm_amx_split(long rows, long width, const float *x, long x_stride, uint16_t *parts, long part_stride,
                      long k_pad, long n_parts) {
    (void)rows, (void)width, (void)x, (void)x_stride, (void)parts, (void)part_stride, (void)k_pad, (void)n_parts;
}
void onlstm_amx_product(long rows, long k_tiles, long pair_first, long pair_last, const uint16_t *a,
                        long a_part_stride, const uint16_t *b, long b_part_stride, long passes, float *out,
                        long out_stride, long n_valid) {
    (void)rows, (void)k_tiles, (void)pair_first, (void)pair_last, (void)a, (void)a_part_stride, (void)b;
    (void)b_part_stride, (void)passes, (void)out, (void)out_stride, (void)n_valid;
}
#endif
