#include <string.h>

#include "ecgbridge.h"
#include "internal.h"

/* The wire carries gain as IEEE-754 binary32; every target this is built for has one. */
typedef char ecgb_float_is_binary32[(sizeof(float) == 4) ? 1 : -1];

static const char *const lead_names[ECGB_LEAD_CODE_MAX + 1] = {
    "?", "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
    "MLI", "MLII", "MLIII", "V7", "V8", "V9", "V3R", "V4R", "V5R", "X", "Y", "Z"};

const char *ecgb_status_name(ecgb_status status)
{
    switch (status) {
    case ECGB_PENDING: return "pending";
    case ECGB_OK: return "ok";
    case ECGB_ERR_BAD_CRC: return "bad_crc";
    case ECGB_ERR_BAD_LENGTH: return "bad_length";
    case ECGB_ERR_UNKNOWN_VERSION: return "unknown_version";
    case ECGB_ERR_OVERSIZE: return "oversize";
    case ECGB_ERR_BAD_COBS: return "bad_cobs";
    case ECGB_ERR_BAD_MAGIC: return "bad_magic";
    case ECGB_ERR_BAD_FIELD: return "bad_field";
    case ECGB_ERR_RANGE: return "range";
    case ECGB_ERR_BUFFER: return "buffer";
    }
    return "unknown";
}

const char *ecgb_lead_name(unsigned code)
{
    return code <= ECGB_LEAD_CODE_MAX ? lead_names[code] : "?";
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

unsigned ecgb_lead_code(const char *name)
{
    unsigned code;
    for (code = 1; code <= ECGB_LEAD_CODE_MAX; ++code) {
        const char *a = lead_names[code];
        const char *b = name;
        while (*a && *b && lower((unsigned char)*a) == lower((unsigned char)*b)) {
            ++a;
            ++b;
        }
        if (*a == '\0' && *b == '\0')
            return code;
    }
    return ECGB_LEAD_UNSPEC;
}

unsigned ecgb_sample_bytes(unsigned sample_format)
{
    switch (sample_format) {
    case ECGB_FMT_INT16: return 2;
    case ECGB_FMT_INT24: return 3;
    default: return 0;
    }
}

/* Bytes between the fixed header and the samples: the lead ids, and in v2 the per-lead table. */
static size_t lead_table_size(unsigned version, unsigned n_leads)
{
    return version == ECGB_VERSION_2 ? (size_t)n_leads * (1u + ECGB_LEAD_CAL_SIZE) : n_leads;
}

size_t ecgb_frame_size_v(unsigned version, unsigned n_leads, unsigned samples_per_lead,
                         unsigned sample_format)
{
    unsigned b = ecgb_sample_bytes(sample_format);
    if ((version != ECGB_VERSION_1 && version != ECGB_VERSION_2) || b == 0 || n_leads < 1 ||
        n_leads > ECGB_MAX_LEADS || samples_per_lead < 1 || samples_per_lead > 0xFFFFu)
        return 0;
    return ECGB_HEADER_FIXED + lead_table_size(version, n_leads) +
           (size_t)n_leads * samples_per_lead * b + ECGB_CRC_SIZE;
}

size_t ecgb_frame_size(unsigned n_leads, unsigned samples_per_lead, unsigned sample_format)
{
    return ecgb_frame_size_v(ECGB_VERSION_1, n_leads, samples_per_lead, sample_format);
}

unsigned ecgb_max_samples_per_lead_v(unsigned version, unsigned n_leads, unsigned sample_format)
{
    unsigned b = ecgb_sample_bytes(sample_format);
    if ((version != ECGB_VERSION_1 && version != ECGB_VERSION_2) || b == 0 || n_leads < 1 ||
        n_leads > ECGB_MAX_LEADS)
        return 0;
    return (unsigned)((ECGB_MAX_FRAME - ECGB_HEADER_FIXED - lead_table_size(version, n_leads) -
                       ECGB_CRC_SIZE) /
                      (n_leads * b));
}

unsigned ecgb_max_samples_per_lead(unsigned n_leads, unsigned sample_format)
{
    return ecgb_max_samples_per_lead_v(ECGB_VERSION_1, n_leads, sample_format);
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Finite, positive, not zero: checked on the bits so no floating-point code is needed. */
static int gain_bits_ok(uint32_t bits)
{
    return (bits & 0x80000000u) == 0 && (bits & 0x7F800000u) != 0x7F800000u && bits != 0;
}

static int lead_table_ok(unsigned n_leads, const uint8_t *ids, uint16_t lead_off)
{
    unsigned i;
    for (i = 0; i < n_leads; ++i)
        if (ids[i] > ECGB_LEAD_CODE_MAX)
            return 0;
    return n_leads >= 16 || (lead_off >> n_leads) == 0;
}

static void put_le(ecgb_writer *w, uint64_t v, unsigned n)
{
    unsigned i;
    for (i = 0; i < n; ++i)
        ecgb_writer_byte(w, (uint8_t)(v >> (8 * i)));
}

/* End a frame being written: its CRC-32, the COBS group in progress (and the 0x00 delimiter when
 * cobs); ECGB_ERR_BUFFER if it did not fit, else its length in *len. */
static ecgb_status writer_close(ecgb_writer *w, int cobs, size_t *len)
{
    ecgb_writer_crc(w);
    ecgb_writer_finish(w);
    if (cobs)
        ecgb_writer_delimit(w);
    if (w->overflow)
        return ECGB_ERR_BUFFER;
    *len = w->len;
    return ECGB_OK;
}

static ecgb_status write_frame(const ecgb_frame *f, const int32_t *samples, uint8_t *out,
                               size_t cap, size_t *len, int cobs)
{
    ecgb_writer w;
    unsigned version = f->version == 0 ? ECGB_VERSION_1 : f->version;
    unsigned b = ecgb_sample_bytes(f->sample_format);
    size_t size = ecgb_frame_size_v(version, f->n_leads, f->samples_per_lead, f->sample_format);
    size_t i, count;
    int32_t lo, hi;
    int gains_ok = 1;

    if (version == ECGB_VERSION_2)
        for (i = 0; i < f->n_leads && i < ECGB_MAX_LEADS; ++i)
            gains_ok &= gain_bits_ok(float_bits(f->lead_gain_uv[i]));
    else
        gains_ok = gain_bits_ok(float_bits(f->gain_uv));
    if ((version != ECGB_VERSION_1 && version != ECGB_VERSION_2) || b == 0 || f->n_leads < 1 ||
        f->n_leads > ECGB_MAX_LEADS || f->samples_per_lead < 1 || f->fs_mhz == 0 || !gains_ok ||
        !lead_table_ok(f->n_leads, f->lead_ids, f->lead_off))
        return ECGB_ERR_BAD_FIELD;
    if (size > ECGB_MAX_FRAME)
        return ECGB_ERR_OVERSIZE;
    count = (size_t)f->n_leads * f->samples_per_lead;
    hi = b == 2 ? 32767 : 8388607;
    lo = -hi - 1;
    for (i = 0; i < count; ++i)
        if (samples[i] < lo || samples[i] > hi)
            return ECGB_ERR_RANGE;

    ecgb_writer_start(&w, out, cap, cobs);
    ecgb_writer_byte(&w, ECGB_MAGIC0);
    ecgb_writer_byte(&w, ECGB_MAGIC1);
    ecgb_writer_byte(&w, (uint8_t)version);
    ecgb_writer_byte(&w, f->stream_id);
    put_le(&w, f->seq, 2);
    put_le(&w, f->samples_per_lead, 2);
    put_le(&w, f->first_sample, 8);
    put_le(&w, f->fs_mhz, 4);
    /* v2: the one-gain fields are reserved and sent as zero */
    put_le(&w, version == ECGB_VERSION_2 ? 0u : float_bits(f->gain_uv), 4);
    put_le(&w, version == ECGB_VERSION_2 ? 0u : (uint32_t)f->baseline, 4);
    ecgb_writer_byte(&w, f->sample_format);
    ecgb_writer_byte(&w, f->n_leads);
    put_le(&w, f->device_flags, 2);
    put_le(&w, f->lead_off, 2);
    ecgb_writer_bytes(&w, f->lead_ids, f->n_leads);
    if (version == ECGB_VERSION_2)
        for (i = 0; i < f->n_leads; ++i) {
            put_le(&w, float_bits(f->lead_gain_uv[i]), 4);
            put_le(&w, (uint32_t)f->lead_baseline[i], 4);
        }
    for (i = 0; i < count; ++i)
        put_le(&w, (uint32_t)samples[i], b); /* two's complement, truncated to b bytes */
    return writer_close(&w, cobs, len);
}

ecgb_status ecgb_pack(const ecgb_frame *frame, const int32_t *samples, uint8_t *out, size_t cap,
                      size_t *len)
{
    return write_frame(frame, samples, out, cap, len, 0);
}

ecgb_status ecgb_encode(const ecgb_frame *frame, const int32_t *samples, uint8_t *out,
                        size_t cap, size_t *len)
{
    return write_frame(frame, samples, out, cap, len, 1);
}

static uint32_t get_le(const uint8_t *p, unsigned n)
{
    uint32_t v = 0;
    unsigned i;
    for (i = 0; i < n; ++i)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

/* Two's complement of an n-byte field, without implementation-defined conversions. */
static int32_t to_signed(uint32_t u, unsigned n)
{
    uint32_t sign = 1u << (8 * n - 1);
    if (!(u & sign))
        return (int32_t)u;
    return -(int32_t)(~u & (sign - 1u)) - 1; /* u - 2^(8n), computed in range */
}

/* The frame length its header implies, or 0 when the version or size fields are invalid. */
static size_t implied_size(const uint8_t *buf)
{
    return ecgb_frame_size_v(buf[2], buf[29], (unsigned)get_le(buf + 6, 2), buf[28]);
}

static float float_from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

ecgb_status ecgb_parse(const uint8_t *buf, size_t len, ecgb_frame *f)
{
    uint32_t gain;
    int magic_ok, version_ok, fields_ok;
    size_t expected, table;
    unsigned i;

    if (len < ECGB_MIN_FRAME)
        return ECGB_ERR_BAD_LENGTH;
    if (len > ECGB_MAX_FRAME)
        return ECGB_ERR_OVERSIZE;
    magic_ok = buf[0] == ECGB_MAGIC0 && buf[1] == ECGB_MAGIC1;
    version_ok = buf[2] == ECGB_VERSION_1 || buf[2] == ECGB_VERSION_2;
    expected = implied_size(buf);
    if (ecgb_crc32(buf, len - ECGB_CRC_SIZE) != get_le(buf + len - ECGB_CRC_SIZE, 4)) {
        /* Name the likely cause: a v1 or v2 header whose sizes disagree with what arrived
         * means bytes were lost or a delimiter was (truncation, merged frames). */
        if (magic_ok && version_ok && expected != 0 && expected != len)
            return ECGB_ERR_BAD_LENGTH;
        return ECGB_ERR_BAD_CRC;
    }
    if (!magic_ok)
        return ECGB_ERR_BAD_MAGIC;
    if (!version_ok)
        return ECGB_ERR_UNKNOWN_VERSION;
    if (expected == 0)
        return ECGB_ERR_BAD_FIELD;
    if (expected != len)
        return ECGB_ERR_BAD_LENGTH;

    f->version = buf[2];
    f->stream_id = buf[3];
    f->seq = (uint16_t)get_le(buf + 4, 2);
    f->samples_per_lead = (uint16_t)get_le(buf + 6, 2);
    f->first_sample = (uint64_t)get_le(buf + 8, 4) | ((uint64_t)get_le(buf + 12, 4) << 32);
    f->fs_mhz = get_le(buf + 16, 4);
    gain = get_le(buf + 20, 4);
    memcpy(&f->gain_uv, &gain, sizeof gain);
    f->baseline = to_signed(get_le(buf + 24, 4), 4);
    f->sample_format = buf[28];
    f->n_leads = buf[29];
    f->device_flags = (uint16_t)get_le(buf + 30, 2);
    f->lead_off = (uint16_t)get_le(buf + 32, 2);
    memset(f->lead_ids, 0, sizeof f->lead_ids);
    memset(f->lead_gain_uv, 0, sizeof f->lead_gain_uv);
    memset(f->lead_baseline, 0, sizeof f->lead_baseline);
    memcpy(f->lead_ids, buf + ECGB_HEADER_FIXED, f->n_leads);
    table = lead_table_size(f->version, f->n_leads);
    f->payload = buf + ECGB_HEADER_FIXED + table;
    if (f->version == ECGB_VERSION_2) {
        const uint8_t *cal = buf + ECGB_HEADER_FIXED + f->n_leads;
        fields_ok = gain == 0 && f->baseline == 0; /* reserved in v2: one wire form per frame */
        for (i = 0; i < f->n_leads; ++i) {
            uint32_t bits = get_le(cal + ECGB_LEAD_CAL_SIZE * i, 4);
            fields_ok &= gain_bits_ok(bits);
            f->lead_gain_uv[i] = float_from_bits(bits);
            f->lead_baseline[i] = to_signed(get_le(cal + ECGB_LEAD_CAL_SIZE * i + 4, 4), 4);
        }
    } else {
        fields_ok = gain_bits_ok(gain);
        for (i = 0; i < f->n_leads; ++i) {
            f->lead_gain_uv[i] = f->gain_uv;
            f->lead_baseline[i] = f->baseline;
        }
    }
    if (f->fs_mhz == 0 || !fields_ok || !lead_table_ok(f->n_leads, f->lead_ids, f->lead_off))
        return ECGB_ERR_BAD_FIELD;
    return ECGB_OK;
}

int32_t ecgb_sample(const ecgb_frame *f, unsigned lead, unsigned t)
{
    unsigned b = ecgb_sample_bytes(f->sample_format);
    return to_signed(get_le(f->payload + ((size_t)t * f->n_leads + lead) * b, b), b);
}

/* ---- label frames (PROTOCOL.md section 2b) ---- */

static ecgb_status write_label(const ecgb_label *l, uint8_t *out, size_t cap, size_t *len, int cobs)
{
    ecgb_writer w;
    size_t n = 0;
    unsigned i;

    while (n < ECGB_LABEL_TEXT && l->label_text[n] != '\0')
        ++n;
    if (l->n_classes < 1 || l->n_classes > ECGB_LABEL_MAX_CLASSES || l->label >= l->n_classes ||
        l->end_sample <= l->first_sample || l->fs_mhz == 0 || !gain_bits_ok(float_bits(l->scale)) ||
        (l->flags & ~ECGB_LABEL_FLAG_LEAD_OFF) != 0)
        return ECGB_ERR_BAD_FIELD;
    ecgb_writer_start(&w, out, cap, cobs);
    ecgb_writer_byte(&w, ECGB_MAGIC0);
    ecgb_writer_byte(&w, ECGB_MAGIC1);
    ecgb_writer_byte(&w, ECGB_VERSION_LABEL);
    ecgb_writer_byte(&w, l->stream_id);
    put_le(&w, l->seq, 2);
    ecgb_writer_byte(&w, l->n_classes);
    ecgb_writer_byte(&w, l->label);
    put_le(&w, l->first_sample, 8);
    put_le(&w, l->end_sample, 8);
    put_le(&w, l->fs_mhz, 4);
    put_le(&w, float_bits(l->scale), 4);
    ecgb_writer_byte(&w, (uint8_t)l->zero_point);
    ecgb_writer_byte(&w, l->flags);
    for (i = 0; i < ECGB_LABEL_TEXT; ++i)
        ecgb_writer_byte(&w, i < n ? (uint8_t)l->label_text[i] : 0u);
    for (i = 0; i < l->n_classes; ++i)
        ecgb_writer_byte(&w, (uint8_t)l->scores[i]);
    return writer_close(&w, cobs, len);
}

ecgb_status ecgb_pack_label(const ecgb_label *label, uint8_t *out, size_t cap, size_t *len)
{
    return write_label(label, out, cap, len, 0);
}

ecgb_status ecgb_encode_label(const ecgb_label *label, uint8_t *out, size_t cap, size_t *len)
{
    return write_label(label, out, cap, len, 1);
}

/* UTF-8 as Python's strict decoder accepts it (RFC 3629): no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
static int utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0, j, k;
    uint32_t cp, least;

    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80u) {
            ++i;
            continue;
        }
        if (c >= 0xC2u && c <= 0xDFu) {
            k = 1;
            cp = c & 0x1Fu;
            least = 0x80u;
        } else if ((c & 0xF0u) == 0xE0u) {
            k = 2;
            cp = c & 0x0Fu;
            least = 0x800u;
        } else if (c >= 0xF0u && c <= 0xF4u) {
            k = 3;
            cp = c & 0x07u;
            least = 0x10000u;
        } else {
            return 0;
        }
        if (i + k >= n)
            return 0; /* cut short */
        for (j = 1; j <= k; ++j) {
            if ((s[i + j] & 0xC0u) != 0x80u)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3Fu);
        }
        if (cp < least || cp > 0x10FFFFu || (cp >= 0xD800u && cp <= 0xDFFFu))
            return 0;
        i += k + 1;
    }
    return 1;
}

ecgb_status ecgb_parse_label(const uint8_t *buf, size_t len, ecgb_label *l)
{
    uint32_t scale_bits;
    size_t text = ECGB_LABEL_TEXT, i;
    const uint8_t *t = buf + 34;

    /* Checks 1..5 of PROTOCOL.md section 4, in its order, then section 2b's. */
    if (len < ECGB_MIN_FRAME)
        return ECGB_ERR_BAD_LENGTH;
    if (len > ECGB_MAX_FRAME)
        return ECGB_ERR_OVERSIZE;
    if (ecgb_crc32(buf, len - ECGB_CRC_SIZE) != get_le(buf + len - ECGB_CRC_SIZE, 4))
        return ECGB_ERR_BAD_CRC;
    if (buf[0] != ECGB_MAGIC0 || buf[1] != ECGB_MAGIC1)
        return ECGB_ERR_BAD_MAGIC;
    if (buf[2] != ECGB_VERSION_LABEL)
        return ECGB_ERR_UNKNOWN_VERSION; /* not a label frame (a sample frame is ecgb_parse's) */
    if (len < ECGB_LABEL_HEADER + 1u + ECGB_CRC_SIZE)
        return ECGB_ERR_BAD_LENGTH;
    if (buf[6] < 1u || buf[6] > ECGB_LABEL_MAX_CLASSES)
        return ECGB_ERR_BAD_FIELD;
    if (len != ECGB_LABEL_HEADER + buf[6] + ECGB_CRC_SIZE)
        return ECGB_ERR_BAD_LENGTH;
    memset(l, 0, sizeof *l);
    l->stream_id = buf[3];
    l->seq = (uint16_t)get_le(buf + 4, 2);
    l->n_classes = buf[6];
    l->label = buf[7];
    l->first_sample = (uint64_t)get_le(buf + 8, 4) | ((uint64_t)get_le(buf + 12, 4) << 32);
    l->end_sample = (uint64_t)get_le(buf + 16, 4) | ((uint64_t)get_le(buf + 20, 4) << 32);
    l->fs_mhz = get_le(buf + 24, 4);
    scale_bits = get_le(buf + 28, 4);
    l->scale = float_from_bits(scale_bits);
    l->zero_point = (int8_t)to_signed(buf[32], 1);
    l->flags = buf[33];
    memcpy(l->label_text, t, ECGB_LABEL_TEXT);
    for (i = 0; i < l->n_classes; ++i)
        l->scores[i] = (int8_t)to_signed(buf[ECGB_LABEL_HEADER + i], 1);
    while (text > 0 && t[text - 1] == 0)
        --text; /* NUL padding */
    if (l->label >= l->n_classes || l->end_sample <= l->first_sample || l->fs_mhz == 0 ||
        !gain_bits_ok(scale_bits) || (l->flags & ~ECGB_LABEL_FLAG_LEAD_OFF) != 0 ||
        memchr(t, 0, text) != NULL || !utf8_ok(t, text))
        return ECGB_ERR_BAD_FIELD;
    return ECGB_OK;
}

/* ---- beat frames (PROTOCOL.md section 2c) ---- */

static int beats_fields_ok(const ecgb_beats *b)
{
    unsigned i;
    if (b->n_beats < 1 || b->n_beats > ECGB_BEATS_MAX || b->fs_mhz == 0 || b->end_sample <= b->from_sample ||
        b->leads == 0)
        return 0;
    for (i = 0; i < b->n_beats; ++i)
        if ((b->flags[i] & ~ECGB_BEATS_FLAG_MASK) != 0 || b->sample[i] >= b->end_sample)
            return 0;
    return 1;
}

static ecgb_status write_beats(const ecgb_beats *b, uint8_t *out, size_t cap, size_t *len, int cobs)
{
    ecgb_writer w;
    unsigned i;

    if (!beats_fields_ok(b))
        return ECGB_ERR_BAD_FIELD;
    ecgb_writer_start(&w, out, cap, cobs);
    ecgb_writer_byte(&w, ECGB_MAGIC0);
    ecgb_writer_byte(&w, ECGB_MAGIC1);
    ecgb_writer_byte(&w, ECGB_VERSION_BEATS);
    ecgb_writer_byte(&w, b->stream_id);
    put_le(&w, b->seq, 2);
    ecgb_writer_byte(&w, b->n_beats);
    ecgb_writer_byte(&w, 0u);
    put_le(&w, b->from_sample, 8);
    put_le(&w, b->end_sample, 8);
    put_le(&w, b->fs_mhz, 4);
    put_le(&w, b->leads, 2);
    put_le(&w, 0u, 2);
    for (i = 0; i < b->n_beats; ++i) {
        put_le(&w, b->sample[i], 8);
        ecgb_writer_byte(&w, b->flags[i]);
    }
    return writer_close(&w, cobs, len);
}

ecgb_status ecgb_pack_beats(const ecgb_beats *beats, uint8_t *out, size_t cap, size_t *len)
{
    return write_beats(beats, out, cap, len, 0);
}

ecgb_status ecgb_encode_beats(const ecgb_beats *beats, uint8_t *out, size_t cap, size_t *len)
{
    return write_beats(beats, out, cap, len, 1);
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le(p, 4) | ((uint64_t)get_le(p + 4, 4) << 32);
}

ecgb_status ecgb_parse_beats(const uint8_t *buf, size_t len, ecgb_beats *b)
{
    unsigned i;

    /* Checks 1..5 of PROTOCOL.md section 4, in its order, then section 2c's. */
    if (len < ECGB_MIN_FRAME)
        return ECGB_ERR_BAD_LENGTH;
    if (len > ECGB_MAX_FRAME)
        return ECGB_ERR_OVERSIZE;
    if (ecgb_crc32(buf, len - ECGB_CRC_SIZE) != get_le(buf + len - ECGB_CRC_SIZE, 4))
        return ECGB_ERR_BAD_CRC;
    if (buf[0] != ECGB_MAGIC0 || buf[1] != ECGB_MAGIC1)
        return ECGB_ERR_BAD_MAGIC;
    if (buf[2] != ECGB_VERSION_BEATS)
        return ECGB_ERR_UNKNOWN_VERSION; /* not a beat frame */
    if (len < ECGB_BEATS_HEADER + ECGB_BEATS_ENTRY + ECGB_CRC_SIZE)
        return ECGB_ERR_BAD_LENGTH;
    if (buf[6] < 1u || buf[6] > ECGB_BEATS_MAX)
        return ECGB_ERR_BAD_FIELD;
    if (len != ECGB_BEATS_HEADER + ECGB_BEATS_ENTRY * buf[6] + ECGB_CRC_SIZE)
        return ECGB_ERR_BAD_LENGTH;
    memset(b, 0, sizeof *b);
    b->stream_id = buf[3];
    b->seq = (uint16_t)get_le(buf + 4, 2);
    b->n_beats = buf[6];
    b->from_sample = get_le64(buf + 8);
    b->end_sample = get_le64(buf + 16);
    b->fs_mhz = get_le(buf + 24, 4);
    b->leads = (uint16_t)get_le(buf + 28, 2);
    for (i = 0; i < b->n_beats; ++i) {
        b->sample[i] = get_le64(buf + ECGB_BEATS_HEADER + ECGB_BEATS_ENTRY * i);
        b->flags[i] = buf[ECGB_BEATS_HEADER + ECGB_BEATS_ENTRY * i + 8];
    }
    if (buf[7] != 0 || get_le(buf + 30, 2) != 0 || !beats_fields_ok(b))
        return ECGB_ERR_BAD_FIELD;
    return ECGB_OK;
}
