/* ecgedge INT8 kernels; see ecgedge_kernels.h. C99; uses the ARMv7E-M DSP instructions where the
 * compiler says they exist (__ARM_FEATURE_DSP) and the same integer arithmetic in plain C elsewhere:
 * both give identical int32 accumulators, so host and device outputs are identical. */
#include "ecgedge_kernels.h"

#include <math.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define ECGEDGE_DSP 1
/* SXTB16 of the word rotated right by 8 (bytes 1 and 3), one instruction: GCC 12 neither has
 * __ror in arm_acle.h nor folds a rotate into SXTB16's operand. */
static inline uint32_t sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
#endif

/* x >> s rounded to nearest, ties to even (s in 1..63). */
static uint64_t shift_rne(uint64_t x, uint32_t s)
{
    uint64_t q, r, half;
    if (s == 0) return x;
    if (s > 63) return 0;
    q = x >> s;
    r = x & ((((uint64_t)1) << s) - 1u);
    half = ((uint64_t)1) << (s - 1u);
    if (r > half || (r == half && (q & 1u))) q++;
    return q;
}

static uint32_t bit_length64(uint64_t x)
{
    uint32_t n = 0;
    uint32_t hi = (uint32_t)(x >> 32);
    if (hi) {
        x = hi;
        n = 32;
    }
#if defined(__GNUC__)
    return (uint32_t)x ? n + 32u - (uint32_t)__builtin_clz((uint32_t)x) : n;
#else
    while (x) { n++; x >>= 1; }
    return n;
#endif
}

/* Round x to 24 significant bits, ties to even: what converting to or multiplying in float32 does. */
static uint64_t round_to_float24(uint64_t x)
{
    uint32_t n;
    if (x < (1u << 24)) return x;  /* exact in float32 already */
    n = bit_length64(x);
    if (n <= 24) return x;
    return shift_rne(x, n - 24u) << (n - 24u);
}

int32_t ecgedge_requantize(int32_t acc, uint32_t mult, uint32_t shift, int32_t zp, int32_t lo, int32_t hi)
{
    uint64_t mag = acc < 0 ? (uint64_t)(-(int64_t)acc) : (uint64_t)acc;
    int64_t q;
    mag = round_to_float24(mag);                       /* (float)acc */
    mag = round_to_float24(mag * (uint64_t)mult);      /* (float)acc * scale, float32 product */
    q = (int64_t)shift_rne(mag, shift);                /* cvtps2dq: nearest, ties to even */
    if (q > 0x7fff) q = 0x7fff;
    q = (acc < 0 ? -q : q) + zp;
    if (q < lo) q = lo;
    if (q > hi) q = hi;
    return (int32_t)q;
}

int8_t ecgedge_quantize_f32(float x, float scale, int32_t zp, int32_t lo)
{
    float v = x / scale;                 /* MlasQuantizeLinear divides */
    float f;
    int32_t i;
    if (v != v) v = 0.0f;                /* NaN: the zero point (the cast below would be undefined) */
    if (v > 1024.0f) v = 1024.0f;        /* saturates below anyway; keeps the cast defined */
    if (v < -1024.0f) v = -1024.0f;
    i = (int32_t)v;                      /* truncation toward zero */
    f = (float)i;
    if (f > v) { i--; f -= 1.0f; }       /* floor */
    if (v - f > 0.5f || (v - f == 0.5f && (i & 1))) i++;
    i += zp;
    if (i < lo) i = lo;
    if (i > 127) i = 127;
    return (int8_t)i;
}

void ecgedge_conv_f32(const ecgedge_conv_f32_t *c, const float *in, int8_t *out)
{
    int32_t t, o, k, ic;
    for (t = 0; t < c->l_out; t++) {
        /* the taps that fall inside the input at this position (the rest read zero padding) */
        int32_t base = t * c->stride - c->pad_left, k0 = 0, k1 = c->kernel;
        while (k0 < k1 && base + k0 * c->dilation < 0) k0++;
        while (k1 > k0 && base + (k1 - 1) * c->dilation >= c->l_in) k1--;
        for (o = 0; o < c->c_out; o++) {
            const float *w = c->weights + o * c->kernel * c->c_in;
            float acc = 0.0f;
            /* ONNX Runtime's im2col + SGEMM order: input channel outer, tap inner, one fused
             * multiply-add each (MLAS's FMA kernels); the bias is added after. */
            for (ic = 0; ic < c->c_in; ic++) {
                const float *x = in + (base + k0 * c->dilation) * c->c_in + ic;
                for (k = k0; k < k1; k++, x += c->dilation * c->c_in) acc = fmaf(w[k * c->c_in + ic], *x, acc);
            }
            if (acc - acc != 0.0f) {
                /* NaN or +-Inf: a non-finite input value (or an overflow). Defined behaviour, in the
                 * header: a non-finite input value is read as 0, the window's mean after z-scoring.
                 * Only this slow path tests each value, so finite windows cost nothing more. */
                acc = 0.0f;
                for (ic = 0; ic < c->c_in; ic++) {
                    const float *x = in + (base + k0 * c->dilation) * c->c_in + ic;
                    for (k = k0; k < k1; k++, x += c->dilation * c->c_in)
                        acc = fmaf(w[k * c->c_in + ic], *x - *x == 0.0f ? *x : 0.0f, acc);
                }
            }
            acc = acc + c->bias[o];
            out[t * c->out_stride + o] = ecgedge_quantize_f32(acc, c->out_scale, c->out_zp, c->out_min);
        }
    }
}

/* Four output channels against one column. Weights of a block of four channels are interleaved
 * per group of four values: w[(g * 4 + ch) * 4 + j], each group stored (0, 2, 1, 3). */
static void dot_block4(const int16_t *col, const int8_t *w, int32_t n, int32_t acc[4])
{
    int32_t i;
#ifdef ECGEDGE_DSP
    int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3];
    const int16_t *end = col + n;
    (void)i;
    for (; col < end; col += 4, w += 16) {  /* pointers, not an index: keeps every operand in a register */
        uint32_t x01, x23, wq;
        memcpy(&x01, col, 4);
        memcpy(&x23, col + 2, 4);
        memcpy(&wq, w, 4);
        s0 = __smlad(x01, __sxtb16(wq), s0);
        s0 = __smlad(x23, sxtb16_ror8(wq), s0);
        memcpy(&wq, w + 4, 4);
        s1 = __smlad(x01, __sxtb16(wq), s1);
        s1 = __smlad(x23, sxtb16_ror8(wq), s1);
        memcpy(&wq, w + 8, 4);
        s2 = __smlad(x01, __sxtb16(wq), s2);
        s2 = __smlad(x23, sxtb16_ror8(wq), s2);
        memcpy(&wq, w + 12, 4);
        s3 = __smlad(x01, __sxtb16(wq), s3);
        s3 = __smlad(x23, sxtb16_ror8(wq), s3);
    }
    acc[0] = s0;
    acc[1] = s1;
    acc[2] = s2;
    acc[3] = s3;
#else
    int32_t ch;
    for (i = 0; i < n; i += 4, w += 16) {
        for (ch = 0; ch < 4; ch++) {
            const int8_t *v = w + ch * 4;
            acc[ch] += col[i] * v[0] + col[i + 1] * v[2] + col[i + 2] * v[1] + col[i + 3] * v[3];
        }
    }
#endif
}

void ecgedge_conv(const ecgedge_conv_t *c, const int8_t *in, int8_t *out, int16_t *col)
{
    int32_t t, o, k, ic, ch;
    for (t = 0; t < c->l_out; t++) {
        int16_t *dst = col;
        int8_t *y = out + t * c->out_stride;
        /* im2col of one output position, the input's zero point removed (padding is zero) */
        for (k = 0; k < c->kernel; k++) {
            int32_t pos = t * c->stride + k * c->dilation - c->pad_left;
            if (pos < 0 || pos >= c->l_in) {
                for (ic = 0; ic < c->c_in; ic++) *dst++ = 0;
            } else {
                const int8_t *x = in + pos * c->c_in;
                for (ic = 0; ic < c->c_in; ic++) *dst++ = (int16_t)(x[ic] + c->in_offset);
            }
        }
        while (dst < col + c->row) *dst++ = 0;
        /* channels in blocks of four (weights, bias and scales padded to a multiple of four) */
        for (o = 0; o < c->c_out; o += 4) {
            int32_t acc[4];
            for (ch = 0; ch < 4; ch++) acc[ch] = c->bias[o + ch];
            dot_block4(col, c->weights + o * c->row, c->row, acc);
            for (ch = 0; ch < 4 && o + ch < c->c_out; ch++) {
                y[o + ch] = (int8_t)ecgedge_requantize(acc[ch], c->mult[o + ch], c->shift[o + ch], c->out_zp, c->out_min, 127);
            }
        }
    }
}

void ecgedge_mean_time(int32_t l, int32_t c, const int8_t *in, int32_t in_zp, uint32_t mult, uint32_t shift,
                       int32_t out_zp, int8_t *out)
{
    int32_t ch, t;
    for (ch = 0; ch < c; ch++) {
        int32_t sum = 0;
        for (t = 0; t < l; t++) sum += in[t * c + ch] - in_zp;
        out[ch] = (int8_t)ecgedge_requantize(sum, mult, shift, out_zp, -128, 127);
    }
}

void ecgedge_max_time(int32_t l, int32_t c, const int8_t *in, const int8_t *table, int8_t *out)
{
    int32_t ch, t;
    for (ch = 0; ch < c; ch++) {
        int8_t m = in[ch];
        for (t = 1; t < l; t++) {
            if (in[t * c + ch] > m) m = in[t * c + ch];
        }
        out[ch] = table ? table[(uint8_t)(m + 128)] : m;
    }
}

void ecgedge_requantize_table(int32_t n, const int8_t *in, const int8_t *table, int8_t *out)
{
    int32_t i;
    for (i = 0; i < n; i++) out[i] = table ? table[(uint8_t)(in[i] + 128)] : in[i];
}
