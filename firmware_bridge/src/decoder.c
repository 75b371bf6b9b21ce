#include "ecgbridge.h"

enum { IDLE = 0, IN_FRAME = 1, DISCARD = 2 };

void ecgb_decoder_init(ecgb_decoder *dec)
{
    ecgb_stats zero = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    dec->len = 0;
    dec->state = IDLE;
    dec->code = 0;
    dec->remaining = 0;
    dec->prev_ff = 0;
    dec->stats = zero;
}

static ecgb_status count(ecgb_decoder *dec, ecgb_status st)
{
    switch (st) {
    case ECGB_OK: dec->stats.frames++; break;
    case ECGB_ERR_BAD_CRC: dec->stats.bad_crc++; break;
    case ECGB_ERR_BAD_LENGTH: dec->stats.bad_length++; break;
    case ECGB_ERR_UNKNOWN_VERSION: dec->stats.unknown_version++; break;
    case ECGB_ERR_OVERSIZE: dec->stats.oversize++; break;
    case ECGB_ERR_BAD_COBS: dec->stats.bad_cobs++; break;
    case ECGB_ERR_BAD_MAGIC: dec->stats.bad_magic++; break;
    case ECGB_ERR_BAD_FIELD: dec->stats.bad_field++; break;
    default: break;
    }
    return st;
}

static int append(ecgb_decoder *dec, uint8_t byte)
{
    if (dec->len >= ECGB_MAX_FRAME)
        return 0;
    dec->buf[dec->len++] = byte;
    return 1;
}

/* Frame delimiter seen: decide what the bytes since the previous one were. */
static ecgb_status end_frame(ecgb_decoder *dec, ecgb_frame *frame)
{
    dec->state = IDLE;
    if (dec->remaining != 0)
        return count(dec, ECGB_ERR_BAD_COBS); /* the last group promised more bytes */
    if (dec->code == 0x01 && dec->prev_ff)
        return count(dec, ECGB_ERR_BAD_COBS); /* empty group after a full one: non-canonical */
    return count(dec, ecgb_parse(dec->buf, dec->len, frame));
}

ecgb_status ecgb_decoder_push(ecgb_decoder *dec, uint8_t byte, ecgb_frame *frame)
{
    dec->stats.bytes++;
    if (dec->state == DISCARD) {
        if (byte == 0)
            dec->state = IDLE;
        return ECGB_PENDING;
    }
    if (byte == 0)
        return dec->state == IDLE ? ECGB_PENDING : end_frame(dec, frame); /* 00 00: idle fill */
    if (dec->state == IDLE) {
        dec->state = IN_FRAME;
        dec->len = 0;
        dec->code = 0;
        dec->remaining = 0;
        dec->prev_ff = 0;
    }
    if (dec->remaining == 0) {
        /* A code byte. The group it closes implied a zero unless it was full (0xFF). */
        if (dec->code != 0 && dec->code != 0xFF && !append(dec, 0))
            goto oversize;
        dec->prev_ff = dec->code == 0xFF;
        dec->code = byte;
        dec->remaining = (uint8_t)(byte - 1);
        return ECGB_PENDING;
    }
    if (!append(dec, byte))
        goto oversize;
    dec->remaining--;
    return ECGB_PENDING;

oversize:
    dec->state = DISCARD; /* drop everything up to the next delimiter */
    return count(dec, ECGB_ERR_OVERSIZE);
}

ecgb_status ecgb_decoder_feed(ecgb_decoder *dec, const uint8_t *data, size_t len, size_t *used,
                              ecgb_frame *frame)
{
    size_t i;
    for (i = 0; i < len; ++i) {
        ecgb_status st = ecgb_decoder_push(dec, data[i], frame);
        if (st != ECGB_PENDING) {
            *used = i + 1;
            return st;
        }
    }
    *used = len;
    return ECGB_PENDING;
}

ecgb_status ecgb_decoder_label(const ecgb_decoder *dec, ecgb_label *label)
{
    /* The bytes of the frame that just ended stay in buf until the next frame's first byte. */
    if (dec->state != IDLE || dec->len == 0)
        return ECGB_PENDING;
    return ecgb_parse_label(dec->buf, dec->len, label);
}

ecgb_status ecgb_decoder_beats(const ecgb_decoder *dec, ecgb_beats *beats)
{
    if (dec->state != IDLE || dec->len == 0)
        return ECGB_PENDING;
    return ecgb_parse_beats(dec->buf, dec->len, beats);
}
