/*
 * ecgbridge: encoder and streaming decoder for the ecgedge ECG wire protocol, versions 1 and 2.
 *
 * The wire format is specified in firmware_bridge/PROTOCOL.md; this header is its C binding.
 * C99, no dynamic allocation, no global mutable state: every buffer is the caller's or lives
 * inside the caller's ecgb_decoder. All multi-byte fields are little-endian on the wire
 * whatever the host byte order.
 */
#ifndef ECGBRIDGE_H
#define ECGBRIDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version 1: one gain and baseline per frame (header offsets 20..27). Version 2: the same header
 * with offsets 20..27 zero, and a per-lead table of gain and baseline after the lead ids. */
#define ECGB_VERSION_1 1u
#define ECGB_VERSION_2 2u
#define ECGB_VERSION ECGB_VERSION_2 /* the newest version this library speaks */
#define ECGB_MAGIC0 0x45u /* 'E' */
#define ECGB_MAGIC1 0x47u /* 'G' */
#define ECGB_MAX_LEADS 16u
/* Fixed part of the header; the lead-id table (one byte per lead) follows it. */
#define ECGB_HEADER_FIXED 34u
#define ECGB_CRC_SIZE 4u
/* Version 2: bytes per entry of the per-lead table (f32 gain_uv, i32 baseline). */
#define ECGB_LEAD_CAL_SIZE 8u
/* Largest decoded frame (header + lead ids + samples + CRC). Chosen so a frame fits a small
 * MCU transmit buffer and 40 ms of 12-lead int16 at 500 Hz (20 samples per lead) fits easily. */
#define ECGB_MAX_FRAME 1024u
/* Smallest decoded frame: version 1, one lead, one int16 sample. */
#define ECGB_MIN_FRAME (ECGB_HEADER_FIXED + 1u + 2u + ECGB_CRC_SIZE)
/* COBS adds one byte per 254 data bytes plus one: the longest encoded frame, delimiter excluded. */
#define ECGB_MAX_ENCODED (ECGB_MAX_FRAME + ECGB_MAX_FRAME / 254u + 1u)
/* Size of an output buffer that holds any encoded frame including its 0x00 delimiter. */
#define ECGB_MAX_WIRE (ECGB_MAX_ENCODED + 1u)

typedef enum {
    ECGB_FMT_INT16 = 1, /* two's complement, 2 bytes little-endian */
    ECGB_FMT_INT24 = 2  /* two's complement, 3 bytes little-endian */
} ecgb_format;

/* Lead codes (the lead-id table of a frame). 0 names a lead the table does not know. */
typedef enum {
    ECGB_LEAD_UNSPEC = 0,
    ECGB_LEAD_I = 1, ECGB_LEAD_II, ECGB_LEAD_III, ECGB_LEAD_AVR, ECGB_LEAD_AVL, ECGB_LEAD_AVF,
    ECGB_LEAD_V1, ECGB_LEAD_V2, ECGB_LEAD_V3, ECGB_LEAD_V4, ECGB_LEAD_V5, ECGB_LEAD_V6,
    ECGB_LEAD_MLI, ECGB_LEAD_MLII, ECGB_LEAD_MLIII,
    ECGB_LEAD_V7, ECGB_LEAD_V8, ECGB_LEAD_V9, ECGB_LEAD_V3R, ECGB_LEAD_V4R, ECGB_LEAD_V5R,
    ECGB_LEAD_X, ECGB_LEAD_Y, ECGB_LEAD_Z,
    ECGB_LEAD_CODE_MAX = ECGB_LEAD_Z /* codes above are reserved: a frame using one is rejected */
} ecgb_lead;

/* Device flags (bits 4..15 are reserved: senders write 0, receivers pass them on). */
#define ECGB_FLAG_BATTERY_LOW 0x0001u
#define ECGB_FLAG_CALIBRATION 0x0002u /* a calibration pulse is being injected */
#define ECGB_FLAG_SATURATED 0x0004u   /* an ADC channel clipped during this frame */
#define ECGB_FLAG_SIMULATED 0x0008u   /* samples replayed from a recording, not from a patient */

typedef enum {
    ECGB_PENDING = 1,                /* decoder: input consumed, no frame complete yet */
    ECGB_OK = 0,
    ECGB_ERR_BAD_CRC = -1,           /* CRC-32 does not match the frame */
    ECGB_ERR_BAD_LENGTH = -2,        /* too short, truncated, or length disagrees with the header */
    ECGB_ERR_UNKNOWN_VERSION = -3,   /* intact frame of a protocol version this library lacks */
    ECGB_ERR_OVERSIZE = -4,          /* more than ECGB_MAX_FRAME decoded bytes before a delimiter */
    ECGB_ERR_BAD_COBS = -5,          /* COBS group runs past the delimiter, or non-canonical */
    ECGB_ERR_BAD_MAGIC = -6,         /* intact (CRC-valid) bytes that are not an ecgbridge frame */
    ECGB_ERR_BAD_FIELD = -7,         /* a header field out of range (lead code, format, fs, gain,
                                        version, or v2 reserved bytes not zero) */
    ECGB_ERR_RANGE = -8,             /* encoder: a sample does not fit the sample format */
    ECGB_ERR_BUFFER = -9             /* encoder: output buffer too small */
} ecgb_status;

/*
 * One frame's header, and on the decoding side a view of its samples.
 * Encoders fill every field except payload (ignored). version 0 or 1 sends version 1, which
 * uses gain_uv and baseline; version 2 uses lead_gain_uv[] and lead_baseline[] instead. The
 * decoder fills both forms: for a version-1 frame lead_gain_uv[i] = gain_uv and
 * lead_baseline[i] = baseline for every lead; for a version-2 frame gain_uv and baseline are 0
 * (their bytes are reserved). Receivers should use the per-lead arrays.
 */
typedef struct {
    uint8_t version;            /* 1 or 2 (0 = 1 when encoding) */
    uint8_t stream_id;
    uint16_t seq;               /* frame counter, wraps 65535 -> 0 */
    uint16_t samples_per_lead;  /* samples of each lead carried by this frame, >= 1 */
    uint64_t first_sample;      /* index of this frame's first sample since stream start */
    uint32_t fs_mhz;            /* sampling rate in milli-hertz (360 Hz = 360000) */
    float gain_uv;              /* v1: microvolts per LSB of every lead, finite and > 0 */
    int32_t baseline;           /* v1: ADC value that reads 0 mV, every lead */
    uint8_t sample_format;      /* ecgb_format */
    uint8_t n_leads;            /* 1..ECGB_MAX_LEADS */
    uint16_t device_flags;      /* ECGB_FLAG_* */
    uint16_t lead_off;          /* bit i set: electrode of lead i is off */
    uint8_t lead_ids[ECGB_MAX_LEADS]; /* ecgb_lead codes, n_leads used */
    float lead_gain_uv[ECGB_MAX_LEADS];    /* v2: microvolts per LSB of lead i, finite and > 0 */
    int32_t lead_baseline[ECGB_MAX_LEADS]; /* v2: ADC value that reads 0 mV on lead i */
    const uint8_t *payload;     /* decoder: interleaved samples, valid until the next feed */
} ecgb_frame;

/* Counts kept by a decoder, one per outcome. */
typedef struct {
    uint32_t bytes;
    uint32_t frames;
    uint32_t bad_crc;
    uint32_t bad_length;
    uint32_t unknown_version;
    uint32_t oversize;
    uint32_t bad_cobs;
    uint32_t bad_magic;
    uint32_t bad_field;
} ecgb_stats;

/* Streaming decoder state: about 1.1 KiB, no pointers to the outside, copyable when idle. */
typedef struct {
    uint8_t buf[ECGB_MAX_FRAME];
    uint16_t len;        /* decoded bytes so far */
    uint8_t state;       /* idle, in frame, discarding */
    uint8_t code;        /* current COBS code byte, 0 before the first */
    uint8_t remaining;   /* data bytes left in the current COBS group */
    uint8_t prev_ff;     /* the group before the current one had code 0xFF */
    ecgb_stats stats;
} ecgb_decoder;

/* "ok", "bad_crc", "bad_length", ... : the names PROTOCOL.md, the test vectors and Python use. */
const char *ecgb_status_name(ecgb_status status);

/* CRC-32/ISO-HDLC (the zlib CRC): poly 0x04C11DB7 reflected, init and xorout 0xFFFFFFFF. */
uint32_t ecgb_crc32(const uint8_t *data, size_t len);

/* Canonical COBS encoding of len bytes into out (no delimiter). Returns the encoded length,
 * or 0 if cap is too small. */
size_t ecgb_cobs_encode(const uint8_t *data, size_t len, uint8_t *out, size_t cap);

/* Lead code <-> name ("aVR", "MLII"; "?" for 0 and for reserved codes). Name lookup ignores
 * case and returns ECGB_LEAD_UNSPEC for names the table lacks. */
const char *ecgb_lead_name(unsigned code);
unsigned ecgb_lead_code(const char *name);

/* Bytes per sample of a format, 0 if unknown. */
unsigned ecgb_sample_bytes(unsigned sample_format);

/* Decoded size of a version-1 frame (header to CRC), or 0 when the arguments are out of range. */
size_t ecgb_frame_size(unsigned n_leads, unsigned samples_per_lead, unsigned sample_format);

/* As ecgb_frame_size for a given version (1 or 2; 0 for any other). */
size_t ecgb_frame_size_v(unsigned version, unsigned n_leads, unsigned samples_per_lead,
                         unsigned sample_format);

/* Most samples per lead that keep a version-1 frame within ECGB_MAX_FRAME (0 if invalid). */
unsigned ecgb_max_samples_per_lead(unsigned n_leads, unsigned sample_format);

/* As ecgb_max_samples_per_lead for a given version (1 or 2). */
unsigned ecgb_max_samples_per_lead_v(unsigned version, unsigned n_leads, unsigned sample_format);

/*
 * Serialise a frame without COBS (header, lead ids, samples, CRC) into out.
 * samples: interleaved, samples_per_lead rows of n_leads values (sample t of lead i at
 * samples[t * n_leads + i]), raw ADC integers. Returns ECGB_OK and the length in *len, or
 * ECGB_ERR_BAD_FIELD / ECGB_ERR_OVERSIZE / ECGB_ERR_RANGE / ECGB_ERR_BUFFER.
 */
ecgb_status ecgb_pack(const ecgb_frame *frame, const int32_t *samples, uint8_t *out, size_t cap,
                      size_t *len);

/* As ecgb_pack, then COBS-encoded and followed by the 0x00 delimiter: the bytes to send.
 * cap >= ECGB_MAX_WIRE always suffices. */
ecgb_status ecgb_encode(const ecgb_frame *frame, const int32_t *samples, uint8_t *out,
                        size_t cap, size_t *len);

/*
 * A label frame (PROTOCOL.md section 2b): the device's own rhythm verdict on one window of a stream.
 * Its version byte is ECGB_VERSION_LABEL, so a receiver without label support reports it as
 * ECGB_ERR_UNKNOWN_VERSION and never reads it as samples. This library's decoder does too (its
 * statistics stay those of every receiver); ecgb_decoder_label then reads the frame as a label.
 */
#define ECGB_VERSION_LABEL 0x4Cu /* 'L' */
#define ECGB_LABEL_TEXT 8u
#define ECGB_LABEL_MAX_CLASSES 32u
#define ECGB_LABEL_HEADER 42u
#define ECGB_LABEL_FLAG_LEAD_OFF 0x01u /* an electrode the model reads was off during the window */

typedef struct {
    uint8_t stream_id;
    uint16_t seq;             /* label-frame counter, wraps */
    uint8_t n_classes;        /* 1..ECGB_LABEL_MAX_CLASSES */
    uint8_t label;            /* class index < n_classes */
    uint64_t first_sample;    /* the window: source samples [first_sample, end_sample) */
    uint64_t end_sample;
    uint32_t fs_mhz;          /* the stream's sampling rate */
    float scale;              /* logits = (scores - zero_point) * scale; finite, > 0 */
    int8_t zero_point;
    uint8_t flags;            /* ECGB_LABEL_FLAG_* */
    char label_text[ECGB_LABEL_TEXT]; /* the class's name, NUL-padded (no NUL needed at 8 bytes) */
    int8_t scores[ECGB_LABEL_MAX_CLASSES]; /* int8 logits, n_classes of them */
} ecgb_label;

/*
 * Validate one decoded (un-COBSed) label frame and fill *label: checks 1..5 of PROTOCOL.md section 4,
 * then section 2b's (ECGB_ERR_BAD_FIELD for a class count outside 1..32, a label that is not a
 * class, an empty window, fs 0, a scale that is not finite and > 0, reserved flag bits, a label text
 * that is not UTF-8 or has a NUL before its padding; ECGB_ERR_BAD_LENGTH for a length other than
 * 46 + n_classes). ECGB_ERR_UNKNOWN_VERSION: intact, but not a label frame. The same verdicts as
 * the Python receiver (ecgedge.bridge.frame.unpack_frame).
 */
ecgb_status ecgb_parse_label(const uint8_t *buf, size_t len, ecgb_label *label);

/* A label frame without COBS (42 + n_classes + 4 bytes); ECGB_OK, ECGB_ERR_BAD_FIELD or ECGB_ERR_BUFFER. */
ecgb_status ecgb_pack_label(const ecgb_label *label, uint8_t *out, size_t cap, size_t *len);
/* As ecgb_pack_label, then COBS-encoded and delimited: the bytes to send. */
ecgb_status ecgb_encode_label(const ecgb_label *label, uint8_t *out, size_t cap, size_t *len);

/*
 * A beat frame (PROTOCOL.md section 2c): the beats the device's own QRS detector (ecgb_qrs.h, run by
 * ecgsim --classify) found on a stream. Version byte ECGB_VERSION_BEATS: a receiver without beat
 * frames reports it as ECGB_ERR_UNKNOWN_VERSION and loses nothing else; ecgb_decoder_beats reads it.
 */
#define ECGB_VERSION_BEATS 0x42u /* 'B' */
#define ECGB_BEATS_HEADER 32u
#define ECGB_BEATS_ENTRY 9u      /* u64 sample, u8 flags */
#define ECGB_BEATS_MAX 64u
#define ECGB_BEATS_FLAG_MASK 0x07u /* 1 noisy, 2 concealed, 4 search-back (ECGB_BEAT_* of ecgb_qrs.h) */

typedef struct {
    uint8_t stream_id;
    uint16_t seq;             /* beat-frame counter, wraps (its own) */
    uint8_t n_beats;          /* 1..ECGB_BEATS_MAX */
    uint64_t from_sample;     /* the detector's decisions on stream samples [from_sample, end_sample) */
    uint64_t end_sample;
    uint32_t fs_mhz;          /* the stream's sampling rate */
    uint16_t leads;           /* bit i: lead i of the stream fed the detector; at least one */
    uint64_t sample[ECGB_BEATS_MAX]; /* R peaks, stream sample indices < end_sample */
    uint8_t flags[ECGB_BEATS_MAX];   /* ECGB_BEATS_FLAG_MASK bits */
} ecgb_beats;

/*
 * Validate one decoded beat frame and fill *beats: checks 1..5 of PROTOCOL.md section 4, then section
 * 2c's (ECGB_ERR_BAD_LENGTH below 45 bytes or for a length other than 36 + 9 x n_beats;
 * ECGB_ERR_BAD_FIELD for n_beats outside 1..64, fs 0, end_sample <= from_sample, no lead, reserved
 * bytes not zero, reserved beat flags, a beat at or after end_sample). ECGB_ERR_UNKNOWN_VERSION:
 * intact, but not a beat frame. The same verdicts as ecgedge.bridge.frame.unpack_frame.
 */
ecgb_status ecgb_parse_beats(const uint8_t *buf, size_t len, ecgb_beats *beats);
/* A beat frame without COBS (36 + 9 x n_beats bytes); ECGB_OK, ECGB_ERR_BAD_FIELD or ECGB_ERR_BUFFER. */
ecgb_status ecgb_pack_beats(const ecgb_beats *beats, uint8_t *out, size_t cap, size_t *len);
/* As ecgb_pack_beats, then COBS-encoded and delimited: the bytes to send. */
ecgb_status ecgb_encode_beats(const ecgb_beats *beats, uint8_t *out, size_t cap, size_t *len);

/* Validate one decoded (un-COBSed) frame and fill *frame; frame->payload points into buf. */
ecgb_status ecgb_parse(const uint8_t *buf, size_t len, ecgb_frame *frame);

/* Sample t of lead `lead` of a parsed frame (no bounds check beyond the frame's own sizes). */
int32_t ecgb_sample(const ecgb_frame *frame, unsigned lead, unsigned t);

void ecgb_decoder_init(ecgb_decoder *dec);

/* Feed one byte. Returns ECGB_PENDING, ECGB_OK with *frame filled (its payload lives in the
 * decoder until the next call), or an ECGB_ERR_* for the frame that just ended or overflowed.
 * After any result the decoder is ready for the next byte: it never needs a reset. */
ecgb_status ecgb_decoder_push(ecgb_decoder *dec, uint8_t byte, ecgb_frame *frame);

/* Right after ecgb_decoder_push / ecgb_decoder_feed returned ECGB_ERR_UNKNOWN_VERSION (the decoder
 * counts a label frame as one, as a receiver without label support must): read the frame that just
 * ended as a label frame (ecgb_parse_label). ECGB_PENDING when no frame has just ended. */
ecgb_status ecgb_decoder_label(const ecgb_decoder *dec, ecgb_label *label);

/* As ecgb_decoder_label, for a beat frame (ecgb_parse_beats). */
ecgb_status ecgb_decoder_beats(const ecgb_decoder *dec, ecgb_beats *beats);

/* Feed a chunk: consumes bytes up to and including the first one that completes a frame or an
 * error, stores how many in *used, and returns as ecgb_decoder_push does (ECGB_PENDING when the
 * whole chunk was consumed without an event). Call again with the rest of the chunk. */
ecgb_status ecgb_decoder_feed(ecgb_decoder *dec, const uint8_t *data, size_t len, size_t *used,
                              ecgb_frame *frame);

#ifdef __cplusplus
}
#endif

#endif /* ECGBRIDGE_H */
