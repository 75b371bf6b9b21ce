/*
 * Host unit tests of the ecgbridge library: `make -C firmware_bridge test`.
 * argv[1] is test_vectors/frames.json, which must equal what tools/vectors.c generates and
 * whose bytes must decode to the events stated there. Last line: "N passed, M failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ecgbridge.h"
#include "test_qrs.h"
#include "vectors.h"

static const char *vectors_path;
static const char *labels_path;
static const char *beats_path;
int failures;

/* Deterministic xorshift64*: the fuzz tests give the same bytes on every host. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static ecgb_frame make_frame(unsigned n_leads, unsigned n, unsigned fmt)
{
    ecgb_frame f;
    unsigned i;
    memset(&f, 0, sizeof f);
    f.stream_id = 3;
    f.seq = 17;
    f.samples_per_lead = (uint16_t)n;
    f.first_sample = 123456789ull;
    f.fs_mhz = 500000;
    f.gain_uv = 4.88f;
    f.baseline = 0;
    f.sample_format = (uint8_t)fmt;
    f.n_leads = (uint8_t)n_leads;
    for (i = 0; i < n_leads && i < ECGB_MAX_LEADS; ++i)
        f.lead_ids[i] = (uint8_t)((i % ECGB_LEAD_CODE_MAX) + 1);
    return f;
}

static void fill_samples(int32_t *s, size_t count, unsigned fmt)
{
    int32_t hi = fmt == ECGB_FMT_INT16 ? 32767 : 8388607;
    size_t i;
    for (i = 0; i < count; ++i)
        s[i] = (int32_t)(rnd() % ((uint32_t)hi * 2u + 1u)) - hi - (i == 0 ? 1 : 0);
}

/* Decode every event of a byte string; returns the number of frames decoded. */
static size_t decode_all(ecgb_decoder *dec, const uint8_t *data, size_t len, size_t chunk,
                         ecgb_frame *frames, size_t max_frames, int *errors)
{
    size_t pos = 0, n = 0, used;
    *errors = 0;
    while (pos < len) {
        size_t take = len - pos < chunk ? len - pos : chunk;
        ecgb_frame f;
        ecgb_status st = ecgb_decoder_feed(dec, data + pos, take, &used, &f);
        pos += used;
        if (st == ECGB_OK && n < max_frames)
            frames[n++] = f;
        else if (st < 0)
            (*errors)++;
    }
    return n;
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_crc32_check_value(void)
{
    CHECK(ecgb_crc32((const uint8_t *)"123456789", 9) == 0xCBF43926u);
    CHECK(ecgb_crc32((const uint8_t *)"", 0) == 0x00000000u);
}

static void cobs_case(const uint8_t *in, size_t n, const uint8_t *expect, size_t expect_n)
{
    uint8_t out[600];
    size_t len = ecgb_cobs_encode(in, n, out, sizeof out);
    CHECK(len == expect_n);
    CHECK(len == expect_n && memcmp(out, expect, len) == 0);
}

static void test_cobs_reference_examples(void)
{
    /* The examples of Cheshire & Baker's COBS as listed on Wikipedia. */
    uint8_t in[300], ex[300];
    unsigned i;
    cobs_case((const uint8_t *)"", 0, (const uint8_t *)"\x01", 1);
    cobs_case((const uint8_t *)"\x00", 1, (const uint8_t *)"\x01\x01", 2);
    cobs_case((const uint8_t *)"\x00\x00", 2, (const uint8_t *)"\x01\x01\x01", 3);
    cobs_case((const uint8_t *)"\x00\x11\x00", 3, (const uint8_t *)"\x01\x02\x11\x01", 4);
    cobs_case((const uint8_t *)"\x11\x22\x00\x33", 4, (const uint8_t *)"\x03\x11\x22\x02\x33", 5);
    cobs_case((const uint8_t *)"\x11\x22\x33\x44", 4, (const uint8_t *)"\x05\x11\x22\x33\x44", 5);
    cobs_case((const uint8_t *)"\x11\x00\x00\x00", 4, (const uint8_t *)"\x02\x11\x01\x01\x01", 5);
    /* 01..FE (254 bytes) -> FF 01..FE */
    for (i = 0; i < 254; ++i)
        in[i] = (uint8_t)(i + 1);
    ex[0] = 0xFF;
    memcpy(ex + 1, in, 254);
    cobs_case(in, 254, ex, 255);
    /* 00 01..FE (255 bytes) -> 01 FF 01..FE */
    in[0] = 0;
    for (i = 1; i < 255; ++i)
        in[i] = (uint8_t)i;
    ex[0] = 0x01;
    ex[1] = 0xFF;
    memcpy(ex + 2, in + 1, 254);
    cobs_case(in, 255, ex, 256);
    /* 01..FF (255 bytes) -> FF 01..FE 02 FF */
    for (i = 0; i < 255; ++i)
        in[i] = (uint8_t)(i + 1);
    ex[0] = 0xFF;
    memcpy(ex + 1, in, 254);
    ex[255] = 0x02;
    ex[256] = 0xFF;
    cobs_case(in, 255, ex, 257);
    /* 02..FF 00 (255 bytes) -> FF 02..FF 01 01 */
    for (i = 0; i < 254; ++i)
        in[i] = (uint8_t)(i + 2);
    in[254] = 0;
    ex[0] = 0xFF;
    memcpy(ex + 1, in, 254);
    ex[255] = 0x01;
    ex[256] = 0x01;
    cobs_case(in, 255, ex, 257);
    /* 03..FF 00 01 (255 bytes) -> FE 03..FF 02 01 */
    for (i = 0; i < 253; ++i)
        in[i] = (uint8_t)(i + 3);
    in[253] = 0;
    in[254] = 1;
    ex[0] = 0xFE;
    memcpy(ex + 1, in, 253);
    ex[254] = 0x02;
    ex[255] = 0x01;
    cobs_case(in, 255, ex, 256);
    CHECK(ecgb_cobs_encode(in, 255, ex, 10) == 0); /* too small: refused, not overrun */
}

static void test_round_trip_all_shapes(void)
{
    static int32_t s[ECGB_MAX_FRAME];
    uint8_t wire[ECGB_MAX_WIRE];
    unsigned fmt, leads, n;
    for (fmt = ECGB_FMT_INT16; fmt <= ECGB_FMT_INT24; ++fmt)
        for (leads = 1; leads <= ECGB_MAX_LEADS; ++leads) {
            unsigned max_n = ecgb_max_samples_per_lead(leads, fmt);
            CHECK(ecgb_frame_size(leads, max_n, fmt) <= ECGB_MAX_FRAME);
            CHECK(ecgb_frame_size(leads, max_n + 1, fmt) > ECGB_MAX_FRAME);
            for (n = 1; n <= max_n; n += (n < 8 ? 1 : 13)) {
                ecgb_frame f = make_frame(leads, n, fmt), g;
                ecgb_decoder dec;
                size_t len = 0, used = 0;
                unsigned i, t;
                ecgb_status st;
                int ok = 1;
                f.lead_off = (uint16_t)(rnd() & ((1u << leads) - 1u));
                f.device_flags = (uint16_t)rnd();
                fill_samples(s, (size_t)leads * n, fmt);
                CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_OK);
                CHECK(len <= ECGB_MAX_WIRE && wire[len - 1] == 0x00);
                CHECK(memchr(wire, 0, len - 1) == NULL);
                ecgb_decoder_init(&dec);
                st = ecgb_decoder_feed(&dec, wire, len, &used, &g);
                CHECK(st == ECGB_OK && used == len);
                if (st != ECGB_OK)
                    continue;
                CHECK(g.version == ECGB_VERSION_1 && g.stream_id == f.stream_id && g.seq == f.seq);
                CHECK(g.first_sample == f.first_sample && g.fs_mhz == f.fs_mhz);
                CHECK(g.gain_uv == f.gain_uv && g.baseline == f.baseline);
                CHECK(g.lead_off == f.lead_off && g.device_flags == f.device_flags);
                CHECK(g.n_leads == leads && g.samples_per_lead == n);
                CHECK(memcmp(g.lead_ids, f.lead_ids, leads) == 0);
                for (t = 0; t < n; ++t)
                    for (i = 0; i < leads; ++i)
                        ok &= ecgb_sample(&g, i, t) == s[t * leads + i];
                CHECK(ok);
            }
        }
}

static void test_round_trip_v2_all_shapes(void)
{
    static int32_t s[ECGB_MAX_FRAME];
    uint8_t wire[ECGB_MAX_WIRE];
    unsigned fmt, leads, n;
    for (fmt = ECGB_FMT_INT16; fmt <= ECGB_FMT_INT24; ++fmt)
        for (leads = 1; leads <= ECGB_MAX_LEADS; ++leads) {
            unsigned max_n = ecgb_max_samples_per_lead_v(ECGB_VERSION_2, leads, fmt);
            CHECK(ecgb_frame_size_v(ECGB_VERSION_2, leads, max_n, fmt) <= ECGB_MAX_FRAME);
            CHECK(ecgb_frame_size_v(ECGB_VERSION_2, leads, max_n + 1, fmt) > ECGB_MAX_FRAME);
            CHECK(ecgb_frame_size_v(ECGB_VERSION_2, leads, 1, fmt) ==
                  ecgb_frame_size(leads, 1, fmt) + ECGB_LEAD_CAL_SIZE * leads);
            for (n = 1; n <= max_n; n += (n < 8 ? 1 : 13)) {
                ecgb_frame f = make_frame(leads, n, fmt), g;
                ecgb_decoder dec;
                size_t len = 0, used = 0;
                unsigned i, t;
                ecgb_status st;
                int ok = 1;
                f.version = ECGB_VERSION_2;
                for (i = 0; i < leads; ++i) {
                    f.lead_gain_uv[i] = 0.5f + (float)(rnd() % 10000) / 7.0f;
                    f.lead_baseline[i] = (int32_t)(rnd() % 4096u) - 2048;
                }
                fill_samples(s, (size_t)leads * n, fmt);
                CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_OK);
                ecgb_decoder_init(&dec);
                st = ecgb_decoder_feed(&dec, wire, len, &used, &g);
                CHECK(st == ECGB_OK && used == len);
                if (st != ECGB_OK)
                    continue;
                CHECK(g.version == ECGB_VERSION_2 && g.gain_uv == 0.0f && g.baseline == 0);
                CHECK(g.n_leads == leads && g.samples_per_lead == n);
                for (i = 0; i < leads; ++i)
                    ok &= g.lead_gain_uv[i] == f.lead_gain_uv[i] &&
                          g.lead_baseline[i] == f.lead_baseline[i];
                for (t = 0; t < n; ++t)
                    for (i = 0; i < leads; ++i)
                        ok &= ecgb_sample(&g, i, t) == s[t * leads + i];
                CHECK(ok);
            }
        }
}

static void test_v1_decoder_output_has_per_lead_copies(void)
{
    int32_t s[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t wire[ECGB_MAX_WIRE];
    size_t len = 0, used = 0;
    ecgb_frame f = make_frame(2, 4, ECGB_FMT_INT16), g;
    ecgb_decoder dec;
    f.baseline = -7;
    CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_OK);
    CHECK(len == ecgb_frame_size(2, 4, ECGB_FMT_INT16) + 2); /* COBS byte and delimiter */
    ecgb_decoder_init(&dec);
    CHECK(ecgb_decoder_feed(&dec, wire, len, &used, &g) == ECGB_OK);
    CHECK(g.lead_gain_uv[0] == f.gain_uv && g.lead_gain_uv[1] == f.gain_uv);
    CHECK(g.lead_baseline[0] == -7 && g.lead_baseline[1] == -7);
}

static void test_byte_and_chunk_feeds_agree(void)
{
    static uint8_t stream[64 * ECGB_MAX_WIRE];
    static ecgb_frame frames[3][64];
    int32_t s[64];
    size_t len = 0, k, chunk_sizes[3] = {1, 7, sizeof stream};
    unsigned i;
    int errors[3];
    size_t n[3];
    for (i = 0; i < 40; ++i) {
        ecgb_frame f = make_frame(2, 16, ECGB_FMT_INT16);
        size_t flen = 0;
        f.seq = (uint16_t)i;
        f.first_sample = 16u * i;
        fill_samples(s, 32, ECGB_FMT_INT16);
        CHECK(ecgb_encode(&f, s, stream + len, sizeof stream - len, &flen) == ECGB_OK);
        len += flen;
    }
    for (k = 0; k < 3; ++k) {
        ecgb_decoder dec;
        ecgb_decoder_init(&dec);
        n[k] = decode_all(&dec, stream, len, chunk_sizes[k], frames[k], 64, &errors[k]);
        CHECK(n[k] == 40 && errors[k] == 0);
        CHECK(dec.stats.frames == 40 && dec.stats.bytes == len);
    }
    for (i = 0; i < 40; ++i)
        CHECK(frames[0][i].seq == i && frames[1][i].seq == i && frames[2][i].seq == i);
}

static void test_encoder_rejects_bad_input(void)
{
    static int32_t big[2 * 243];
    int32_t s[16] = {0};
    uint8_t wire[ECGB_MAX_WIRE];
    size_t len = 0;
    ecgb_frame f = make_frame(2, 4, ECGB_FMT_INT16);

    s[3] = 32768;
    CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_ERR_RANGE);
    s[3] = -32769;
    CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_ERR_RANGE);
    f.sample_format = ECGB_FMT_INT24;
    CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_OK);
    s[3] = 8388608;
    CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_ERR_RANGE);
    s[3] = 0;
    CHECK(ecgb_encode(&f, s, wire, 20, &len) == ECGB_ERR_BUFFER);
    f = make_frame(2, 4, ECGB_FMT_INT16);
    f.samples_per_lead = 300;
    CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_ERR_OVERSIZE);
    f = make_frame(2, 4, 3);
    CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_ERR_BAD_FIELD);
    f = make_frame(17, 1, ECGB_FMT_INT16);
    CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_ERR_BAD_FIELD);
    f = make_frame(2, 4, ECGB_FMT_INT16);
    f.lead_off = 0x0004;
    CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_ERR_BAD_FIELD);
    f = make_frame(2, 4, ECGB_FMT_INT16);
    f.lead_ids[1] = ECGB_LEAD_CODE_MAX + 1;
    CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_ERR_BAD_FIELD);
    f = make_frame(2, 4, ECGB_FMT_INT16);
    f.gain_uv = -1.0f;
    CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_ERR_BAD_FIELD);
    f.gain_uv = 0.0f;
    CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_ERR_BAD_FIELD);
    f = make_frame(2, 4, ECGB_FMT_INT16);
    f.fs_mhz = 0;
    CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_ERR_BAD_FIELD);
    f = make_frame(2, 4, ECGB_FMT_INT16);
    f.version = 3;
    CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_ERR_BAD_FIELD);
    f.version = ECGB_VERSION_2; /* per-lead gains left at 0 */
    f.lead_gain_uv[0] = 1.0f;
    CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_ERR_BAD_FIELD);
    f.lead_gain_uv[1] = 2.0f;
    CHECK(ecgb_encode(&f, s, wire, sizeof wire, &len) == ECGB_OK);
    f = make_frame(2, 242, ECGB_FMT_INT16); /* fits v2 exactly; 243 does not */
    f.version = ECGB_VERSION_2;
    f.lead_gain_uv[0] = f.lead_gain_uv[1] = 1.0f;
    CHECK(ecgb_encode(&f, big, wire, sizeof wire, &len) == ECGB_OK);
    f.samples_per_lead = 243;
    CHECK(ecgb_encode(&f, big, wire, sizeof wire, &len) == ECGB_ERR_OVERSIZE);
}

static void test_lead_names(void)
{
    unsigned code;
    for (code = 1; code <= ECGB_LEAD_CODE_MAX; ++code)
        CHECK(ecgb_lead_code(ecgb_lead_name(code)) == code);
    CHECK(ecgb_lead_code("avr") == ECGB_LEAD_AVR);
    CHECK(ecgb_lead_code("mlii") == ECGB_LEAD_MLII);
    CHECK(ecgb_lead_code("ECG1") == ECGB_LEAD_UNSPEC);
    CHECK(ecgb_lead_code("") == ECGB_LEAD_UNSPEC);
    CHECK(strcmp(ecgb_lead_name(0), "?") == 0 && strcmp(ecgb_lead_name(200), "?") == 0);
    CHECK(strcmp(ecgb_lead_name(ECGB_LEAD_V6), "V6") == 0);
}

static void test_decoder_recovers_after_every_error(void)
{
    /* Each error case followed by a good frame: the good frame must always come out. */
    const vec_case *cases;
    size_t n = vectors_build(&cases), i;
    uint8_t good[ECGB_MAX_WIRE];
    size_t good_len = 0;
    int32_t s[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    ecgb_frame f = make_frame(2, 4, ECGB_FMT_INT16);
    CHECK(ecgb_encode(&f, s, good, sizeof good, &good_len) == ECGB_OK);
    for (i = 0; i < n; ++i) {
        ecgb_decoder dec;
        ecgb_frame got[8];
        int errors;
        size_t frames;
        ecgb_decoder_init(&dec);
        frames = decode_all(&dec, cases[i].wire, cases[i].wire_len, 5, got, 8, &errors);
        CHECK(decode_all(&dec, good, good_len, 5, got + frames, 1, &errors) == 1);
        CHECK(got[frames].seq == f.seq);
    }
}

static void test_oversize_garbage_is_bounded(void)
{
    /* 10 kB without a zero byte: one oversize error, then the decoder resumes at the delimiter. */
    static uint8_t junk[10000];
    uint8_t good[ECGB_MAX_WIRE];
    size_t good_len = 0;
    int32_t s[8] = {0};
    ecgb_decoder dec;
    ecgb_frame got[2], f = make_frame(2, 4, ECGB_FMT_INT16);
    int errors;
    memset(junk, 0xFF, sizeof junk);
    junk[sizeof junk - 1] = 0x00;
    ecgb_decoder_init(&dec);
    CHECK(decode_all(&dec, junk, sizeof junk, 333, got, 2, &errors) == 0);
    CHECK(errors == 1 && dec.stats.oversize == 1);
    CHECK(ecgb_encode(&f, s, good, sizeof good, &good_len) == ECGB_OK);
    CHECK(decode_all(&dec, good, good_len, 333, got, 2, &errors) == 1 && errors == 0);
}

static int contains(const uint8_t *hay, size_t hay_len, const uint8_t *needle, size_t n)
{
    size_t i;
    for (i = 0; i + n <= hay_len; ++i)
        if (memcmp(hay + i, needle, n) == 0)
            return 1;
    return 0;
}

static void test_fuzz_never_emits_a_frame_that_was_not_sent(void)
{
    /* Mutated streams (bit flips, dropped and inserted bytes) and pure noise: every frame the
     * decoder emits must re-encode to bytes present in the input, and every byte is counted. */
    static uint8_t clean[32 * ECGB_MAX_WIRE], dirty[40 * ECGB_MAX_WIRE];
    static int32_t s[ECGB_MAX_FRAME];
    unsigned round;
    int ok = 1;
    for (round = 0; round < 300; ++round) {
        size_t clean_len = 0, dirty_len = 0, i, pos = 0, used;
        unsigned k, frames = 2 + rnd() % 20, noise = round % 3 == 0;
        ecgb_decoder dec;
        for (k = 0; k < frames; ++k) {
            unsigned fmt = 1 + rnd() % 2, leads = 1 + rnd() % 12, version = 1 + rnd() % 2, l;
            unsigned n = 1 + rnd() % ecgb_max_samples_per_lead_v(version, leads, fmt);
            ecgb_frame f = make_frame(leads, n, fmt);
            size_t flen = 0;
            f.seq = (uint16_t)k;
            f.version = (uint8_t)version; /* v1 and v2 frames mixed in one stream */
            for (l = 0; l < leads; ++l) {
                f.lead_gain_uv[l] = 1.0f + (float)l;
                f.lead_baseline[l] = (int32_t)l - 3;
            }
            fill_samples(s, (size_t)leads * n, fmt);
            ecgb_encode(&f, s, clean + clean_len, sizeof clean - clean_len, &flen);
            clean_len += flen;
        }
        for (i = 0; i < clean_len; ++i) {
            uint32_t r = rnd() % 1000;
            uint8_t b = noise ? (uint8_t)rnd() : clean[i];
            if (r < 2)
                continue; /* dropped */
            if (r < 4)
                b ^= (uint8_t)(1u << (rnd() % 8));
            dirty[dirty_len++] = b;
            if (r >= 4 && r < 6)
                dirty[dirty_len++] = (uint8_t)rnd(); /* inserted */
        }
        ecgb_decoder_init(&dec);
        while (pos < dirty_len) {
            ecgb_frame f;
            ecgb_status st = ecgb_decoder_feed(&dec, dirty + pos, dirty_len - pos, &used, &f);
            pos += used;
            if (st == ECGB_OK) {
                uint8_t again[ECGB_MAX_WIRE];
                size_t alen = 0;
                unsigned t, l;
                for (t = 0; t < f.samples_per_lead; ++t)
                    for (l = 0; l < f.n_leads; ++l)
                        s[t * f.n_leads + l] = ecgb_sample(&f, l, t);
                ok &= ecgb_encode(&f, s, again, sizeof again, &alen) == ECGB_OK;
                ok &= contains(dirty, dirty_len, again, alen);
            }
        }
        ok &= dec.stats.bytes == dirty_len;
    }
    CHECK(ok);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long size;
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    size = ftell(fp);
    rewind(fp);
    buf = malloc((size_t)size + 1);
    *len = fread(buf, 1, (size_t)size, fp);
    buf[*len] = '\0';
    fclose(fp);
    return buf;
}

static void test_vector_file_matches_generator(void)
{
    const vec_case *cases;
    size_t n = vectors_build(&cases), file_len = 0, gen_len = 0;
    char *file = read_file(vectors_path, &file_len), *gen;
    FILE *tmp = tmpfile();
    CHECK(file != NULL && tmp != NULL);
    if (!file || !tmp)
        return;
    vectors_write_json(tmp, cases, n);
    fflush(tmp);
    rewind(tmp);
    gen = malloc(file_len + 2);
    gen_len = fread(gen, 1, file_len + 1, tmp);
    if (gen_len != file_len || memcmp(gen, file, file_len) != 0)
        fprintf(stderr, "  %s is stale: run `make -C firmware_bridge vectors`\n", vectors_path);
    CHECK(gen_len == file_len && memcmp(gen, file, file_len) == 0);
    fclose(tmp);
    free(gen);
    free(file);
}

static void test_vector_file_decodes_as_stated(void)
{
    /* Read every "hex" string from the checked-in file (not the in-memory cases) and decode it. */
    static uint8_t wire[VEC_MAX_WIRE];
    const vec_case *cases;
    size_t n = vectors_build(&cases), file_len = 0, k = 0;
    char *file = read_file(vectors_path, &file_len), *p, why[200];
    CHECK(file != NULL);
    if (!file)
        return;
    for (p = strstr(file, "\"hex\": \""); p; p = strstr(p, "\"hex\": \"")) {
        size_t len = 0;
        unsigned byte;
        p += 8;
        while (*p != '"' && sscanf(p, "%2x", &byte) == 1 && len < sizeof wire) {
            wire[len++] = (uint8_t)byte;
            p += 2;
        }
        CHECK(k < n);
        if (k >= n)
            break;
        if (!vectors_check(&cases[k], wire, len, why, sizeof why))
            fprintf(stderr, "  vector %s: %s\n", cases[k].name, why);
        CHECK(vectors_check(&cases[k], wire, len, why, sizeof why));
        ++k;
    }
    CHECK(k == n);
    free(file);
}

/* The worked example of PROTOCOL.md 2b (test_vectors/labels.json): the fifth label of A00004. */
static ecgb_label vector_label(void)
{
    static const int8_t scores[4] = {7, 46, 29, -43};
    uint32_t scale_bits = 0x3d69e1aeu;
    ecgb_label l;
    memset(&l, 0, sizeof l);
    l.seq = 4;
    l.n_classes = 4;
    l.label = 1;
    l.first_sample = 1742;
    l.end_sample = 4200;
    l.fs_mhz = 300000;
    memcpy(&l.scale, &scale_bits, sizeof l.scale);
    l.zero_point = 26;
    l.label_text[0] = 'A';
    memcpy(l.scores, scores, sizeof scores);
    return l;
}

static void test_label_frame_vector(void)
{
    /* test_vectors/labels.json (PROTOCOL.md 2b): the encoder writes its "wire" bytes from its fields;
     * the decoder reports them as unknown_version (never samples), and ecgb_decoder_label reads them. */
    static uint8_t want[256], got[ECGB_MAX_WIRE];
    ecgb_label l, back;
    ecgb_decoder dec;
    ecgb_frame f;
    size_t file_len = 0, want_len = 0, len = 0, i;
    unsigned byte;
    uint32_t scale_bits = 0x3d69e1aeu;
    int errors = 0, frames = 0;
    char *file = read_file(labels_path, &file_len), *p;
    CHECK(file != NULL);
    if (!file)
        return;
    p = strstr(file, "\"wire\": \"");
    CHECK(p != NULL);
    if (p)
        for (p += 9; *p != '"' && sscanf(p, "%2x", &byte) == 1 && want_len < sizeof want; p += 2)
            want[want_len++] = (uint8_t)byte;
    free(file);
    l = vector_label();
    CHECK(ecgb_encode_label(&l, got, sizeof got, &len) == ECGB_OK);
    CHECK(len == want_len && memcmp(got, want, len) == 0);
    ecgb_decoder_init(&dec);
    CHECK(ecgb_decoder_label(&dec, &back) == ECGB_PENDING); /* no frame has ended yet */
    for (i = 0; i < len; ++i) {
        ecgb_status st = ecgb_decoder_push(&dec, got[i], &f);
        if (st == ECGB_OK)
            frames++;
        else if (st != ECGB_PENDING) {
            CHECK(st == ECGB_ERR_UNKNOWN_VERSION);
            errors++;
            /* ... and read as a label frame, it gives back every field the encoder was given. */
            CHECK(ecgb_decoder_label(&dec, &back) == ECGB_OK);
            CHECK(back.stream_id == 0 && back.seq == 4 && back.n_classes == 4 && back.label == 1);
            CHECK(back.first_sample == 1742 && back.end_sample == 4200 && back.fs_mhz == 300000);
            CHECK(memcmp(&back.scale, &scale_bits, sizeof scale_bits) == 0 && back.zero_point == 26 && back.flags == 0);
            CHECK(memcmp(back.label_text, "A\0\0\0\0\0\0\0", ECGB_LABEL_TEXT) == 0);
            CHECK(back.scores[0] == 7 && back.scores[1] == 46 && back.scores[2] == 29 && back.scores[3] == -43);
        }
    }
    CHECK(frames == 0 && errors == 1 && dec.stats.unknown_version == 1);
    l.label = 4; /* not a class */
    CHECK(ecgb_encode_label(&l, got, sizeof got, &len) == ECGB_ERR_BAD_FIELD);
    l.label = 1;
    l.end_sample = l.first_sample;
    CHECK(ecgb_encode_label(&l, got, sizeof got, &len) == ECGB_ERR_BAD_FIELD);
    l.end_sample = 4200;
    CHECK(ecgb_pack_label(&l, got, 10, &len) == ECGB_ERR_BUFFER);
}

/* Pack `l`, let `mutate` change the raw bytes (length in *n), re-seal the CRC, parse. */
static ecgb_status label_after(const ecgb_label *l, void (*mutate)(uint8_t *buf, size_t *n), ecgb_label *out)
{
    uint8_t buf[128];
    size_t n = 0;
    uint32_t crc;
    if (ecgb_pack_label(l, buf, sizeof buf, &n) != ECGB_OK)
        return ECGB_ERR_BUFFER;
    mutate(buf, &n);
    crc = ecgb_crc32(buf, n - ECGB_CRC_SIZE);
    buf[n - 4] = (uint8_t)crc;
    buf[n - 3] = (uint8_t)(crc >> 8);
    buf[n - 2] = (uint8_t)(crc >> 16);
    buf[n - 1] = (uint8_t)(crc >> 24);
    return ecgb_parse_label(buf, n, out);
}

static void keep(uint8_t *b, size_t *n) { (void)b; (void)n; }
static void no_classes(uint8_t *b, size_t *n) { (void)n; b[6] = 0; }
static void too_many_classes(uint8_t *b, size_t *n) { (void)n; b[6] = 33; }
static void label_not_a_class(uint8_t *b, size_t *n) { (void)n; b[7] = 4; } /* of 4 classes */
static void empty_window(uint8_t *b, size_t *n) { (void)n; memcpy(b + 16, b + 8, 8); }
static void zero_rate(uint8_t *b, size_t *n) { (void)n; memset(b + 24, 0, 4); }
static void infinite_scale(uint8_t *b, size_t *n) { (void)n; b[28] = 0; b[29] = 0; b[30] = 0x80; b[31] = 0x7F; }
static void reserved_flag(uint8_t *b, size_t *n) { (void)n; b[33] = 0x02; }
static void nul_inside_text(uint8_t *b, size_t *n) { (void)n; b[34] = 'A'; b[35] = 0; b[36] = 'B'; }
static void overlong_utf8(uint8_t *b, size_t *n) { (void)n; b[34] = 0xC0; b[35] = 0x80; }
static void surrogate_utf8(uint8_t *b, size_t *n) { (void)n; b[34] = 0xED; b[35] = 0xA0; b[36] = 0x80; }
static void cut_utf8(uint8_t *b, size_t *n) { (void)n; memset(b + 34, 0, 8); b[34] = 'x'; b[35] = 0xE2; b[36] = 0x82; }
static void two_byte_utf8(uint8_t *b, size_t *n) { (void)n; memset(b + 34, 0, 8); b[34] = 0xC3; b[35] = 0xA9; }
static void eight_byte_text(uint8_t *b, size_t *n) { (void)n; memcpy(b + 34, "SVTACHY1", 8); }
static void one_byte_short(uint8_t *b, size_t *n) { (void)b; --*n; }
static void a_sample_frame(uint8_t *b, size_t *n) { (void)n; b[2] = ECGB_VERSION_1; }

static void test_label_frame_parse_checks(void)
{
    /* PROTOCOL.md 2b's checks, each on an otherwise valid frame whose CRC is re-sealed. (Against
     * Python's unpack_frame on randomly damaged frames: tests/test_device_classify.py.) A frame
     * whose version byte is not 0x4C is not a label frame here: unknown_version. */
    ecgb_label l, back;
    uint8_t raw[128];
    size_t n = 0;
    l = vector_label(); /* with the lead-off flag, a longer text and the int8 extremes */
    l.zero_point = -3;
    l.flags = ECGB_LABEL_FLAG_LEAD_OFF;
    memcpy(l.label_text, "AFIB", 4);
    l.scores[0] = -128;
    l.scores[3] = 127;
    CHECK(label_after(&l, keep, &back) == ECGB_OK);
    CHECK(back.seq == 4 && back.label == 1 && back.end_sample == 4200 && back.scale == l.scale && back.zero_point == -3);
    CHECK(back.flags == ECGB_LABEL_FLAG_LEAD_OFF && memcmp(back.label_text, "AFIB\0\0\0\0", 8) == 0);
    CHECK(back.scores[0] == -128 && back.scores[1] == 46 && back.scores[3] == 127);
    CHECK(label_after(&l, two_byte_utf8, &back) == ECGB_OK && (uint8_t)back.label_text[0] == 0xC3);
    CHECK(label_after(&l, eight_byte_text, &back) == ECGB_OK && memcmp(back.label_text, "SVTACHY1", 8) == 0);
    CHECK(label_after(&l, no_classes, &back) == ECGB_ERR_BAD_FIELD);
    CHECK(label_after(&l, too_many_classes, &back) == ECGB_ERR_BAD_FIELD);
    CHECK(label_after(&l, label_not_a_class, &back) == ECGB_ERR_BAD_FIELD);
    CHECK(label_after(&l, empty_window, &back) == ECGB_ERR_BAD_FIELD);
    CHECK(label_after(&l, zero_rate, &back) == ECGB_ERR_BAD_FIELD);
    CHECK(label_after(&l, infinite_scale, &back) == ECGB_ERR_BAD_FIELD);
    CHECK(label_after(&l, reserved_flag, &back) == ECGB_ERR_BAD_FIELD);
    CHECK(label_after(&l, nul_inside_text, &back) == ECGB_ERR_BAD_FIELD);
    CHECK(label_after(&l, overlong_utf8, &back) == ECGB_ERR_BAD_FIELD);
    CHECK(label_after(&l, surrogate_utf8, &back) == ECGB_ERR_BAD_FIELD);
    CHECK(label_after(&l, cut_utf8, &back) == ECGB_ERR_BAD_FIELD);
    CHECK(label_after(&l, one_byte_short, &back) == ECGB_ERR_BAD_LENGTH);
    CHECK(label_after(&l, a_sample_frame, &back) == ECGB_ERR_UNKNOWN_VERSION);
    CHECK(ecgb_pack_label(&l, raw, sizeof raw, &n) == ECGB_OK);
    raw[40] ^= 1u; /* a flipped bit, CRC not re-sealed */
    CHECK(ecgb_parse_label(raw, n, &back) == ECGB_ERR_BAD_CRC);
}

/* ---- beat frames (PROTOCOL.md 2c) ---- */

static ecgb_beats vector_beats(void)
{
    ecgb_beats b;
    memset(&b, 0, sizeof b);
    b.n_beats = 3;
    b.from_sample = 0;
    b.end_sample = 728;
    b.fs_mhz = 360000;
    b.leads = 1;
    b.sample[0] = 77;
    b.sample[1] = 370;
    b.sample[2] = 663;
    return b;
}

static void test_beat_frame_vector(void)
{
    /* test_vectors/beats.json: the encoder writes its "wire" bytes from its fields; the decoder
     * reports them as unknown_version, and ecgb_decoder_beats reads them back. */
    static uint8_t want[256], got[ECGB_MAX_WIRE];
    ecgb_beats b, back;
    ecgb_decoder dec;
    ecgb_frame f;
    size_t file_len = 0, want_len = 0, len = 0, i;
    unsigned byte;
    int errors = 0, frames = 0;
    char *file = read_file(beats_path, &file_len), *p;
    CHECK(file != NULL);
    if (!file)
        return;
    p = strstr(file, "\"wire\": \"");
    CHECK(p != NULL);
    if (p)
        for (p += 9; *p != '"' && sscanf(p, "%2x", &byte) == 1 && want_len < sizeof want; p += 2)
            want[want_len++] = (uint8_t)byte;
    free(file);
    b = vector_beats();
    CHECK(ecgb_encode_beats(&b, got, sizeof got, &len) == ECGB_OK);
    CHECK(len == want_len && memcmp(got, want, len) == 0);
    ecgb_decoder_init(&dec);
    CHECK(ecgb_decoder_beats(&dec, &back) == ECGB_PENDING);
    for (i = 0; i < len; ++i) {
        ecgb_status st = ecgb_decoder_push(&dec, got[i], &f);
        if (st == ECGB_OK)
            frames++;
        else if (st != ECGB_PENDING) {
            CHECK(st == ECGB_ERR_UNKNOWN_VERSION);
            errors++;
            CHECK(ecgb_decoder_beats(&dec, &back) == ECGB_OK);
            CHECK(back.stream_id == 0 && back.seq == 0 && back.n_beats == 3 && back.leads == 1);
            CHECK(back.from_sample == 0 && back.end_sample == 728 && back.fs_mhz == 360000);
            CHECK(back.sample[0] == 77 && back.sample[1] == 370 && back.sample[2] == 663);
            CHECK(back.flags[0] == 0 && back.flags[2] == 0);
        }
    }
    CHECK(frames == 0 && errors == 1 && dec.stats.unknown_version == 1);
    b.sample[2] = 728; /* not before end_sample */
    CHECK(ecgb_encode_beats(&b, got, sizeof got, &len) == ECGB_ERR_BAD_FIELD);
    b.sample[2] = 663;
    b.flags[1] = 8; /* reserved bit */
    CHECK(ecgb_encode_beats(&b, got, sizeof got, &len) == ECGB_ERR_BAD_FIELD);
    b.flags[1] = 0;
    CHECK(ecgb_pack_beats(&b, got, 10, &len) == ECGB_ERR_BUFFER);
}

/* Pack `b`, set byte `at` to `value` (or cut/extend by `trim`), re-seal the CRC, parse. */
static ecgb_status beats_after(const ecgb_beats *b, int at, int value, int trim, ecgb_beats *out)
{
    uint8_t buf[ECGB_MAX_FRAME];
    size_t n = 0;
    uint32_t crc;
    if (ecgb_pack_beats(b, buf, sizeof buf, &n) != ECGB_OK)
        return ECGB_ERR_BUFFER;
    if (at >= 0)
        buf[at] = (uint8_t)value;
    if (trim < 0)
        n -= (size_t)-trim;
    else
        while (trim-- > 0)
            buf[n++] = 0;
    crc = ecgb_crc32(buf, n - ECGB_CRC_SIZE);
    buf[n - 4] = (uint8_t)crc;
    buf[n - 3] = (uint8_t)(crc >> 8);
    buf[n - 2] = (uint8_t)(crc >> 16);
    buf[n - 1] = (uint8_t)(crc >> 24);
    return ecgb_parse_beats(buf, n, out);
}

static void test_beat_frame_parse_checks(void)
{
    /* PROTOCOL.md 2c's checks on an otherwise valid frame, its CRC re-sealed (against Python's
     * unpack_frame on randomly damaged frames: tests/test_device_beats.py). */
    ecgb_beats b = vector_beats(), back;
    uint8_t raw[256];
    size_t n = 0;
    unsigned i;
    b.flags[0] = 1;
    b.flags[2] = 7;
    b.leads = 0x8001;
    CHECK(beats_after(&b, -1, 0, 0, &back) == ECGB_OK);
    CHECK(back.flags[0] == 1 && back.flags[2] == 7 && back.leads == 0x8001 && back.sample[1] == 370);
    CHECK(beats_after(&b, 6, 0, 0, &back) == ECGB_ERR_BAD_FIELD);   /* no beats */
    CHECK(beats_after(&b, 6, 65, 0, &back) == ECGB_ERR_BAD_FIELD);  /* more than 64 */
    CHECK(beats_after(&b, 6, 4, 0, &back) == ECGB_ERR_BAD_LENGTH);  /* 4 beats in a frame of 3 */
    CHECK(beats_after(&b, 7, 1, 0, &back) == ECGB_ERR_BAD_FIELD);   /* reserved byte */
    CHECK(beats_after(&b, 30, 1, 0, &back) == ECGB_ERR_BAD_FIELD);  /* reserved byte */
    CHECK(beats_after(&b, 16, 0, 0, &back) == ECGB_ERR_BAD_FIELD);  /* end_sample 0x200 < beats */
    CHECK(beats_after(&b, 24, 0, 0, &back) == ECGB_OK);             /* fs 0x57e00 mHz: still > 0 */
    CHECK(beats_after(&b, 28, 0, 0, &back) == ECGB_OK);             /* leads 0x8000 */
    CHECK(beats_after(&b, 40, 8, 0, &back) == ECGB_ERR_BAD_FIELD);  /* beat 0's reserved flag bit */
    CHECK(beats_after(&b, 2, 1, 0, &back) == ECGB_ERR_UNKNOWN_VERSION);
    CHECK(beats_after(&b, -1, 0, -1, &back) == ECGB_ERR_BAD_LENGTH);
    CHECK(beats_after(&b, -1, 0, 9, &back) == ECGB_ERR_BAD_LENGTH);
    b.leads = 0;
    CHECK(ecgb_pack_beats(&b, raw, sizeof raw, &n) == ECGB_ERR_BAD_FIELD);
    b.leads = 1;
    b.n_beats = ECGB_BEATS_MAX; /* the largest: 36 + 9 x 64 = 612 bytes */
    for (i = 0; i < ECGB_BEATS_MAX; ++i) {
        b.sample[i] = i * 10u;
        b.flags[i] = (uint8_t)(i & 7u);
    }
    CHECK(ecgb_pack_beats(&b, raw, sizeof raw, &n) == ECGB_ERR_BUFFER);
    {
        static uint8_t big[ECGB_MAX_FRAME];
        CHECK(ecgb_pack_beats(&b, big, sizeof big, &n) == ECGB_OK && n == 612);
        CHECK(ecgb_parse_beats(big, n, &back) == ECGB_OK && back.sample[63] == 630 && back.flags[63] == 7);
        big[100] ^= 1u;
        CHECK(ecgb_parse_beats(big, n, &back) == ECGB_ERR_BAD_CRC);
    }
}

static void test_decoder_is_small(void)
{
    /* A decoder must fit beside the application on a small MCU. */
    CHECK(sizeof(ecgb_decoder) <= ECGB_MAX_FRAME + 64);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
#define T(f) {#f, f}
        T(test_crc32_check_value),
        T(test_cobs_reference_examples),
        T(test_round_trip_all_shapes),
        T(test_round_trip_v2_all_shapes),
        T(test_v1_decoder_output_has_per_lead_copies),
        T(test_byte_and_chunk_feeds_agree),
        T(test_encoder_rejects_bad_input),
        T(test_lead_names),
        T(test_decoder_recovers_after_every_error),
        T(test_oversize_garbage_is_bounded),
        T(test_fuzz_never_emits_a_frame_that_was_not_sent),
        T(test_vector_file_matches_generator),
        T(test_vector_file_decodes_as_stated),
        T(test_label_frame_vector),
        T(test_label_frame_parse_checks),
        T(test_beat_frame_vector),
        T(test_beat_frame_parse_checks),
        T(test_decoder_is_small),
        T(test_qrs_design_matches_scipy),
        T(test_qrs_init_checks),
        T(test_qrs_finds_a_beat_train),
        T(test_qrs_chunking_does_not_matter),
        T(test_qrs_flat_line_has_no_beats),
        T(test_qrs_nan_is_held_and_concealed),
        T(test_qrs_searchback_and_restart),
        T(test_qrs_state_is_bounded),
#undef T
    };
    unsigned i, passed = 0, failed = 0;
    vectors_path = argc > 1 ? argv[1] : "test_vectors/frames.json";
    labels_path = argc > 2 ? argv[2] : "test_vectors/labels.json";
    beats_path = argc > 3 ? argv[3] : "test_vectors/beats.json";
    for (i = 0; i < sizeof tests / sizeof tests[0]; ++i) {
        failures = 0;
        tests[i].fn();
        printf("%s %s\n", failures ? "FAIL" : "ok  ", tests[i].name);
        if (failures)
            failed++;
        else
            passed++;
    }
    printf("%u passed, %u failed\n", passed, failed);
    return failed ? 1 : 0;
}
