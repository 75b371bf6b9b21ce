#include "vectors.h"

#include <string.h>

#include "json.h"

#define MAX_CASES 48u

static vec_case cases[MAX_CASES];
static size_t n_cases;

/* ---- building blocks ---------------------------------------------------------------- */

static vec_case *new_case(const char *name, const char *about)
{
    vec_case *c = &cases[n_cases++];
    memset(c, 0, sizeof *c);
    c->name = name;
    c->about = about;
    return c;
}

static void wire_bytes(vec_case *c, const uint8_t *data, size_t len)
{
    memcpy(c->wire + c->wire_len, data, len);
    c->wire_len += len;
}

static void wire_frame(vec_case *c, const ecgb_frame *f, const int32_t *samples)
{
    size_t len = 0;
    ecgb_encode(f, samples, c->wire + c->wire_len, VEC_MAX_WIRE - c->wire_len, &len);
    c->wire_len += len;
}

/* COBS-encode hand-made frame bytes and add the delimiter. */
static void wire_raw(vec_case *c, const uint8_t *raw, size_t len)
{
    c->wire_len += ecgb_cobs_encode(raw, len, c->wire + c->wire_len, VEC_MAX_WIRE - c->wire_len);
    c->wire[c->wire_len++] = 0x00;
}

static void expect_frame(vec_case *c, const ecgb_frame *f, const int32_t *samples)
{
    vec_event *e = &c->events[c->n_events++];
    e->status = ECGB_OK;
    e->frame = *f;
    e->frame.version = f->version ? f->version : ECGB_VERSION_1;
    if (e->frame.version == ECGB_VERSION_2) { /* reserved in v2: sent and decoded as 0 */
        e->frame.gain_uv = 0.0f;
        e->frame.baseline = 0;
    }
    e->frame.payload = NULL;
    memcpy(e->samples, samples, sizeof(int32_t) * f->n_leads * f->samples_per_lead);
}

static void expect_error(vec_case *c, ecgb_status st)
{
    c->events[c->n_events++].status = st;
}

static size_t pack(const ecgb_frame *f, const int32_t *samples, uint8_t *raw, size_t cap)
{
    size_t len = 0;
    ecgb_pack(f, samples, raw, cap, &len);
    return len;
}

/* Recompute the CRC after a deliberate edit, so only the edit is wrong. */
static void fix_crc(uint8_t *raw, size_t len)
{
    uint32_t crc = ecgb_crc32(raw, len - 4);
    unsigned i;
    for (i = 0; i < 4; ++i)
        raw[len - 4 + i] = (uint8_t)(crc >> (8 * i));
}

/* ---- the frames ------------------------------------------------------------------------ */

/* MIT-BIH-like: record 100's layout and calibration (200 adu/mV -> 5 uV/LSB, zero 1024). */
static const int32_t mitdb_samples[8] = {995, 1011, 996, 1010, 1001, 1002, 1024, 990};

static ecgb_frame mitdb_frame(void)
{
    ecgb_frame f;
    memset(&f, 0, sizeof f);
    f.stream_id = 0;
    f.seq = 0;
    f.samples_per_lead = 4;
    f.first_sample = 0;
    f.fs_mhz = 360000;
    f.gain_uv = 5.0f;
    f.baseline = 1024;
    f.sample_format = ECGB_FMT_INT16;
    f.n_leads = 2;
    f.device_flags = ECGB_FLAG_SIMULATED;
    f.lead_ids[0] = ECGB_LEAD_MLII;
    f.lead_ids[1] = ECGB_LEAD_V5;
    return f;
}

/* The same in version 2, with MIT-BIH-style per-lead calibration: V5 at its own gain and zero. */
static ecgb_frame mitdb_v2_frame(void)
{
    ecgb_frame f = mitdb_frame();
    f.version = ECGB_VERSION_2;
    f.gain_uv = 0.0f;
    f.baseline = 0;
    f.lead_gain_uv[0] = 5.0f;
    f.lead_baseline[0] = 1024;
    f.lead_gain_uv[1] = 2.5f;
    f.lead_baseline[1] = -3;
    return f;
}

static ecgb_frame twelve_lead_frame(int32_t *samples)
{
    static const int32_t extremes[6] = {-8388608, 8388607, 0, -1, 1, -4660};
    ecgb_frame f;
    unsigned i;
    memset(&f, 0, sizeof f);
    f.stream_id = 7;
    f.seq = 1234;
    f.samples_per_lead = 3;
    f.first_sample = 1000000;
    f.fs_mhz = 500000;
    f.gain_uv = 0.3f; /* not exact in binary32: the vectors carry the float's exact value */
    f.baseline = 0;
    f.sample_format = ECGB_FMT_INT24;
    f.n_leads = 12;
    f.device_flags = ECGB_FLAG_BATTERY_LOW | ECGB_FLAG_CALIBRATION;
    f.lead_off = (1u << 4) | (1u << 6); /* aVL and V1 */
    for (i = 0; i < 12; ++i)
        f.lead_ids[i] = (uint8_t)(ECGB_LEAD_I + i);
    for (i = 0; i < 36; ++i)
        samples[i] = i < 6 ? extremes[i] : (int32_t)(i * 99991u % 400000u) - 200000;
    return f;
}

static void build(void)
{
    uint8_t raw[2 * ECGB_MAX_FRAME];
    int32_t s[VEC_MAX_SAMPLES];
    ecgb_frame f;
    vec_case *c;
    size_t len, i;

    f = mitdb_frame();
    c = new_case("int16_two_leads", "MIT-BIH-like frame: MLII and V5, 360 Hz, 5 uV/LSB, zero at 1024; the worked example");
    wire_frame(c, &f, mitdb_samples);
    expect_frame(c, &f, mitdb_samples);

    f = twelve_lead_frame(s);
    c = new_case("int24_twelve_lead", "standard 12-lead order, int24 extremes, lead-off on aVL and V1, battery and calibration flags");
    wire_frame(c, &f, s);
    expect_frame(c, &f, s);

    memset(&f, 0, sizeof f);
    f.stream_id = 255;
    f.seq = 65535;
    f.samples_per_lead = 5;
    f.first_sample = 0x0000012345678900ull; /* beyond 32 bits: the index is a full u64 */
    f.fs_mhz = 256123;                       /* 256.123 Hz */
    f.gain_uv = 2.5f;
    f.baseline = -512;
    f.sample_format = ECGB_FMT_INT16;
    f.n_leads = 1;
    f.lead_ids[0] = ECGB_LEAD_II;
    for (i = 0; i < 5; ++i)
        s[i] = (int32_t)(i == 0 ? -32768 : i == 1 ? 32767 : (int32_t)i * 1000 - 3000);
    c = new_case("seq_at_wrap", "seq 65535 (the next frame has seq 0), first_sample above 2^32, 256.123 Hz, negative baseline");
    wire_frame(c, &f, s);
    expect_frame(c, &f, s);

    memset(&f, 0, sizeof f);
    f.seq = 9;
    f.samples_per_lead = 246; /* 34 + 2 + 246*2*2 + 4 = 1024: the largest legal frame */
    f.first_sample = 4096;
    f.fs_mhz = 360000;
    f.gain_uv = 5.0f;
    f.baseline = 1024;
    f.sample_format = ECGB_FMT_INT16;
    f.n_leads = 2;
    f.lead_ids[0] = ECGB_LEAD_MLII;
    f.lead_ids[1] = ECGB_LEAD_V1;
    for (i = 0; i < 492; ++i)
        s[i] = (i % 200 == 199) ? 0 : 0x0101; /* long zero-free runs: exercises 0xFF COBS groups */
    c = new_case("max_size_frame", "exactly 1024 decoded bytes, with zero-free runs longer than 254 bytes");
    wire_frame(c, &f, s);
    expect_frame(c, &f, s);

    memset(&f, 0, sizeof f);
    f.samples_per_lead = 1;
    f.fs_mhz = 1000000;
    f.gain_uv = 1.0f;
    f.sample_format = ECGB_FMT_INT16;
    f.n_leads = 16;
    f.lead_off = 0x8001; /* bit 15: the last of 16 leads */
    for (i = 0; i < 16; ++i) {
        f.lead_ids[i] = (uint8_t)i;
        s[i] = (int32_t)i - 8;
    }
    c = new_case("lead_codes_0_to_15", "16 leads (the maximum) naming lead codes 0..15");
    wire_frame(c, &f, s);
    expect_frame(c, &f, s);

    f.n_leads = 9;
    f.samples_per_lead = 2;
    f.lead_off = 0x0100;
    f.seq = 1;
    f.first_sample = 1;
    for (i = 0; i < 9; ++i)
        f.lead_ids[i] = (uint8_t)(16 + i);
    for (i = 0; i < 18; ++i)
        s[i] = (int32_t)(i * 37) - 300;
    c = new_case("lead_codes_16_to_24", "9 leads naming lead codes 16..24 (V7..Z)");
    wire_frame(c, &f, s);
    expect_frame(c, &f, s);

    /* ---- version 2: a gain and baseline per lead ---- */
    f = mitdb_v2_frame();
    c = new_case("v2_two_leads_own_gains", "version 2: MLII at 5 uV/LSB zero 1024, V5 at 2.5 uV/LSB zero -3; the v2 worked example");
    wire_frame(c, &f, mitdb_samples);
    expect_frame(c, &f, mitdb_samples);

    f = twelve_lead_frame(s);
    f.version = ECGB_VERSION_2;
    for (i = 0; i < 12; ++i) {
        f.lead_gain_uv[i] = 0.3f * (float)(i + 1);
        f.lead_baseline[i] = (int32_t)i * 1000 - 6000;
    }
    c = new_case("v2_int24_twelve_lead", "version 2, int24, 12 leads with 12 gains (0.3 .. 3.6 uV/LSB) and baselines");
    wire_frame(c, &f, s);
    expect_frame(c, &f, s);

    {
        /* v2 max size: 34 + 2*9 + 242*2*2 + 4 = 1024 */
        ecgb_frame g = mitdb_v2_frame();
        g.samples_per_lead = 242;
        for (i = 0; i < 484; ++i)
            s[i] = (int32_t)(i * 7) - 1700;
        c = new_case("v2_max_size_frame", "version 2, exactly 1024 decoded bytes (242 samples of 2 leads)");
        wire_frame(c, &g, s);
        expect_frame(c, &g, s);
    }

    f = mitdb_frame();
    c = new_case("v1_then_v2", "a v1 frame, then the same stream in v2 with per-lead gains: both decode");
    wire_frame(c, &f, mitdb_samples);
    expect_frame(c, &f, mitdb_samples);
    f = mitdb_v2_frame();
    f.seq = 1;
    f.first_sample = 4;
    wire_frame(c, &f, mitdb_samples);
    expect_frame(c, &f, mitdb_samples);

    /* ---- streams: idle fill and resynchronisation ---- */
    f = mitdb_frame();
    c = new_case("idle_delimiters_and_two_frames", "leading and repeated 0x00 are idle fill; two frames back to back");
    wire_bytes(c, (const uint8_t *)"\0\0\0", 3);
    wire_frame(c, &f, mitdb_samples);
    wire_bytes(c, (const uint8_t *)"\0", 1);
    f.seq = 1;
    f.first_sample = 4;
    wire_frame(c, &f, mitdb_samples);
    f.seq = 0;
    f.first_sample = 0;
    expect_frame(c, &f, mitdb_samples);
    f.seq = 1;
    f.first_sample = 4;
    expect_frame(c, &f, mitdb_samples);

    f = mitdb_frame();
    c = new_case("resync_after_garbage", "line noise without a zero byte, then a delimiter and a good frame");
    wire_bytes(c, (const uint8_t *)"\xde\xad\xbe\xef\x01\x02\x03\x00", 8);
    wire_frame(c, &f, mitdb_samples);
    expect_error(c, ECGB_ERR_BAD_COBS);
    expect_frame(c, &f, mitdb_samples);

    {
        uint8_t enc[ECGB_MAX_WIRE];
        size_t enc_len = 0;
        f = mitdb_frame();
        ecgb_encode(&f, mitdb_samples, enc, sizeof enc, &enc_len);
        c = new_case("resync_after_cut_frames",
                     "a frame cut inside a COBS group, one cut at a group boundary, then a good frame");
        wire_bytes(c, enc, 18); /* inside the group 04 40 7e 05 (the sampling rate) */
        wire_bytes(c, (const uint8_t *)"\0", 1);
        wire_bytes(c, enc, 20); /* right after it: decodes to 19 bytes */
        wire_bytes(c, (const uint8_t *)"\0", 1);
        wire_bytes(c, enc, enc_len);
        expect_error(c, ECGB_ERR_BAD_COBS);
        expect_error(c, ECGB_ERR_BAD_LENGTH);
        expect_frame(c, &f, mitdb_samples);

        c = new_case("resync_after_lost_delimiter",
                     "a frame whose delimiter was lost merges with the next: both are lost, the third decodes");
        wire_bytes(c, enc, enc_len - 1);
        f.seq = 1;
        f.first_sample = 4;
        wire_frame(c, &f, mitdb_samples);
        f.seq = 2;
        f.first_sample = 8;
        wire_frame(c, &f, mitdb_samples);
        expect_error(c, ECGB_ERR_BAD_LENGTH);
        expect_frame(c, &f, mitdb_samples);
    }

    /* ---- single invalid frames ---- */
    f = mitdb_frame();
    len = pack(&f, mitdb_samples, raw, sizeof raw);
    raw[ECGB_HEADER_FIXED + 2 + 3] ^= 0x10;
    c = new_case("bad_crc_payload_bit", "one bit flipped in a sample");
    wire_raw(c, raw, len);
    expect_error(c, ECGB_ERR_BAD_CRC);

    len = pack(&f, mitdb_samples, raw, sizeof raw);
    raw[len - 2] ^= 0x01;
    c = new_case("bad_crc_in_crc_field", "one bit flipped in the CRC itself");
    wire_raw(c, raw, len);
    expect_error(c, ECGB_ERR_BAD_CRC);

    len = pack(&f, mitdb_samples, raw, sizeof raw);
    raw[3] ^= 0x02; /* stream id: a field that does not change the implied length */
    c = new_case("bad_crc_header_bit", "one bit flipped in the stream id");
    wire_raw(c, raw, len);
    expect_error(c, ECGB_ERR_BAD_CRC);

    len = pack(&f, mitdb_samples, raw, sizeof raw);
    c = new_case("truncated_tail", "the last 3 bytes of a frame lost: the header implies 56 bytes, 53 arrived");
    wire_raw(c, raw, len - 3);
    expect_error(c, ECGB_ERR_BAD_LENGTH);

    c = new_case("truncated_header", "only 20 bytes: shorter than the smallest frame (41 bytes)");
    wire_raw(c, raw, 20);
    expect_error(c, ECGB_ERR_BAD_LENGTH);

    len = pack(&f, mitdb_samples, raw, sizeof raw);
    raw[6] = 3; /* samples_per_lead 4 -> 3 with a valid CRC: a sender bug, not line noise */
    fix_crc(raw, len);
    c = new_case("bad_length_valid_crc", "intact frame whose samples_per_lead disagrees with its length");
    wire_raw(c, raw, len);
    expect_error(c, ECGB_ERR_BAD_LENGTH);

    len = pack(&f, mitdb_samples, raw, sizeof raw);
    raw[2] = 3;
    fix_crc(raw, len);
    c = new_case("unknown_version", "intact frame of protocol version 3");
    wire_raw(c, raw, len);
    expect_error(c, ECGB_ERR_UNKNOWN_VERSION);

    len = pack(&f, mitdb_samples, raw, sizeof raw);
    raw[0] = 'X';
    raw[1] = 'X';
    fix_crc(raw, len);
    c = new_case("bad_magic", "intact frame with magic 'XX' instead of 'EG'");
    wire_raw(c, raw, len);
    expect_error(c, ECGB_ERR_BAD_MAGIC);

    {
        /* 260 samples per lead: 34 + 2 + 1040 + 4 = 1080 bytes, one over the limit by 56. */
        ecgb_frame g = mitdb_frame();
        g.samples_per_lead = 246;
        for (i = 0; i < 492; ++i)
            s[i] = (int32_t)(i % 1000) + 1;
        len = pack(&g, s, raw, sizeof raw);
        len -= 4;
        for (i = 0; i < 56; ++i)
            raw[len++] = (uint8_t)(i + 1);
        len += 4;
        raw[6] = 260 & 0xFF;
        raw[7] = 260 >> 8;
        fix_crc(raw, len);
        c = new_case("oversize", "well-formed 1080-byte frame: larger than the 1024-byte maximum");
        wire_raw(c, raw, len);
        expect_error(c, ECGB_ERR_OVERSIZE);
    }

    c = new_case("bad_cobs_overrun", "a COBS group that promises 4 bytes but the delimiter comes after 2");
    wire_bytes(c, (const uint8_t *)"\x05\x11\x22\x00", 4);
    expect_error(c, ECGB_ERR_BAD_COBS);

    c = new_case("bad_cobs_non_canonical", "an empty final group after a full 0xFF group: accepted frames have one wire form");
    raw[0] = 0xFF;
    memset(raw + 1, 0x41, 254);
    raw[255] = 0x01;
    raw[256] = 0x00;
    wire_bytes(c, raw, 257);
    expect_error(c, ECGB_ERR_BAD_COBS);

    len = pack(&f, mitdb_samples, raw, sizeof raw);
    raw[ECGB_HEADER_FIXED + 1] = 200;
    fix_crc(raw, len);
    c = new_case("bad_field_lead_code", "lead code 200 is reserved");
    wire_raw(c, raw, len);
    expect_error(c, ECGB_ERR_BAD_FIELD);

    len = pack(&f, mitdb_samples, raw, sizeof raw);
    raw[32] = 0x04; /* lead-off bit 2 in a 2-lead frame */
    fix_crc(raw, len);
    c = new_case("bad_field_lead_off", "lead-off bit set for a lead the frame does not carry");
    wire_raw(c, raw, len);
    expect_error(c, ECGB_ERR_BAD_FIELD);

    len = pack(&f, mitdb_samples, raw, sizeof raw);
    raw[28] = 3;
    fix_crc(raw, len);
    c = new_case("bad_field_sample_format", "sample format 3 does not exist");
    wire_raw(c, raw, len);
    expect_error(c, ECGB_ERR_BAD_FIELD);

    len = pack(&f, mitdb_samples, raw, sizeof raw);
    memset(raw + 20, 0, 4);
    fix_crc(raw, len);
    c = new_case("bad_field_zero_gain", "gain 0 uV/LSB");
    wire_raw(c, raw, len);
    expect_error(c, ECGB_ERR_BAD_FIELD);

    len = pack(&f, mitdb_samples, raw, sizeof raw);
    memset(raw + 16, 0, 4);
    fix_crc(raw, len);
    c = new_case("bad_field_zero_fs", "sampling rate 0 Hz");
    wire_raw(c, raw, len);
    expect_error(c, ECGB_ERR_BAD_FIELD);

    f = mitdb_v2_frame();
    len = pack(&f, mitdb_samples, raw, sizeof raw);
    memset(raw + ECGB_HEADER_FIXED + 2 + ECGB_LEAD_CAL_SIZE, 0, 4); /* V5's gain */
    fix_crc(raw, len);
    c = new_case("v2_bad_field_zero_lead_gain", "version 2: the second lead's gain is 0 uV/LSB");
    wire_raw(c, raw, len);
    expect_error(c, ECGB_ERR_BAD_FIELD);

    len = pack(&f, mitdb_samples, raw, sizeof raw);
    raw[ECGB_HEADER_FIXED + 2 + 3] = 0x7F; /* MLII's gain: 0x7FC00000, a quiet NaN */
    raw[ECGB_HEADER_FIXED + 2 + 2] = 0xC0;
    fix_crc(raw, len);
    c = new_case("v2_bad_field_nan_lead_gain", "version 2: the first lead's gain is NaN");
    wire_raw(c, raw, len);
    expect_error(c, ECGB_ERR_BAD_FIELD);

    len = pack(&f, mitdb_samples, raw, sizeof raw);
    raw[24] = 1; /* the reserved (v1 baseline) bytes */
    fix_crc(raw, len);
    c = new_case("v2_bad_field_reserved", "version 2 with non-zero bytes at offsets 20..27 (reserved in v2)");
    wire_raw(c, raw, len);
    expect_error(c, ECGB_ERR_BAD_FIELD);

    f = mitdb_frame();
    len = pack(&f, mitdb_samples, raw, sizeof raw);
    raw[2] = 2;
    fix_crc(raw, len);
    c = new_case("v2_bad_length_v1_body", "a v1 frame relabelled version 2 (valid CRC): no room for the per-lead table");
    wire_raw(c, raw, len);
    expect_error(c, ECGB_ERR_BAD_LENGTH);

    f = mitdb_v2_frame();
    len = pack(&f, mitdb_samples, raw, sizeof raw);
    c = new_case("v2_truncated_tail", "version 2, the last 3 bytes lost: the header implies 72 bytes, 69 arrived");
    wire_raw(c, raw, len - 3);
    expect_error(c, ECGB_ERR_BAD_LENGTH);
}

size_t vectors_build(const vec_case **out)
{
    if (n_cases == 0)
        build();
    *out = cases;
    return n_cases;
}

/* ---- JSON ------------------------------------------------------------------------------ */

void vectors_write_json(FILE *out, const vec_case *cs, size_t n)
{
    size_t i, j;
    fprintf(out, "{\n");
    fprintf(out, "  \"about\": \"ecgbridge wire protocol v1 and v%u test vectors (firmware_bridge/PROTOCOL.md). "
                 "Generated by 'make -C firmware_bridge vectors' (tools/mkvectors.c, tools/vectors.c); "
                 "do not edit by hand. hex: the bytes on the wire; events: what a fresh decoder "
                 "reports for them, in order. samples: one list per lead, raw ADC integers; "
                 "gains_uv, baselines: per lead (a v1 frame's one gain and baseline, repeated).\",\n",
            ECGB_VERSION);
    fprintf(out, "  \"protocol_version\": %u,\n  \"max_frame_bytes\": %u,\n  \"vectors\": [\n",
            ECGB_VERSION, ECGB_MAX_FRAME);
    for (i = 0; i < n; ++i) {
        const vec_case *c = &cs[i];
        fprintf(out, "    {\"name\": \"%s\",\n     \"about\": \"%s\",\n     \"hex\": \"", c->name,
                c->about);
        for (j = 0; j < c->wire_len; ++j)
            fprintf(out, "%02x", c->wire[j]);
        fprintf(out, "\",\n     \"events\": [");
        for (j = 0; j < c->n_events; ++j) {
            fprintf(out, "%s", j ? ",\n                " : "");
            if (c->events[j].status == ECGB_OK)
                json_frame(out, &c->events[j].frame, c->events[j].samples);
            else
                fprintf(out, "{\"error\": \"%s\"}", ecgb_status_name(c->events[j].status));
        }
        fprintf(out, "]}%s\n", i + 1 < n ? "," : "");
    }
    fprintf(out, "  ]\n}\n");
}

/* ---- checking -------------------------------------------------------------------------- */

static int same_frame(const vec_event *e, const ecgb_frame *got, char *why, size_t why_len)
{
    const ecgb_frame *f = &e->frame;
    unsigned i, t;
    if (got->version != f->version || got->stream_id != f->stream_id || got->seq != f->seq ||
        got->first_sample != f->first_sample || got->fs_mhz != f->fs_mhz ||
        got->gain_uv != f->gain_uv || got->baseline != f->baseline ||
        got->sample_format != f->sample_format || got->n_leads != f->n_leads ||
        got->device_flags != f->device_flags || got->lead_off != f->lead_off ||
        got->samples_per_lead != f->samples_per_lead ||
        memcmp(got->lead_ids, f->lead_ids, f->n_leads) != 0) {
        snprintf(why, why_len, "header differs (seq %u vs %u)", got->seq, f->seq);
        return 0;
    }
    for (i = 0; i < f->n_leads; ++i) {
        float gain = f->version == ECGB_VERSION_2 ? f->lead_gain_uv[i] : f->gain_uv;
        int32_t base = f->version == ECGB_VERSION_2 ? f->lead_baseline[i] : f->baseline;
        if (got->lead_gain_uv[i] != gain || got->lead_baseline[i] != base) {
            snprintf(why, why_len, "lead %u: gain or baseline differs", i);
            return 0;
        }
    }
    for (t = 0; t < f->samples_per_lead; ++t)
        for (i = 0; i < f->n_leads; ++i)
            if (ecgb_sample(got, i, t) != e->samples[t * f->n_leads + i]) {
                snprintf(why, why_len, "sample %u of lead %u: %ld, expected %ld", t, i,
                         (long)ecgb_sample(got, i, t), (long)e->samples[t * f->n_leads + i]);
                return 0;
            }
    return 1;
}

int vectors_check(const vec_case *c, const uint8_t *wire, size_t wire_len, char *why,
                  size_t why_len)
{
    ecgb_decoder dec;
    ecgb_frame got;
    size_t pos = 0, used, n = 0;
    ecgb_decoder_init(&dec);
    while (pos < wire_len) {
        ecgb_status st = ecgb_decoder_feed(&dec, wire + pos, wire_len - pos, &used, &got);
        pos += used;
        if (st == ECGB_PENDING)
            break;
        if (n >= c->n_events) {
            snprintf(why, why_len, "unexpected event %s", ecgb_status_name(st));
            return 0;
        }
        if (st != c->events[n].status) {
            snprintf(why, why_len, "event %u: %s, expected %s", (unsigned)n, ecgb_status_name(st),
                     ecgb_status_name(c->events[n].status));
            return 0;
        }
        if (st == ECGB_OK && !same_frame(&c->events[n], &got, why, why_len))
            return 0;
        ++n;
    }
    if (n != c->n_events) {
        snprintf(why, why_len, "%u events, expected %u", (unsigned)n, (unsigned)c->n_events);
        return 0;
    }
    return 1;
}
