#include "ecgbridge.h"
#include "internal.h"

static void put(ecgb_writer *w, uint8_t byte)
{
    if (w->len < w->cap)
        w->out[w->len] = byte;
    else
        w->overflow = 1;
    w->len++;
}

static void patch(ecgb_writer *w, size_t pos, uint8_t byte)
{
    if (pos < w->cap)
        w->out[pos] = byte;
}

void ecgb_writer_start(ecgb_writer *w, uint8_t *out, size_t cap, int cobs)
{
    w->out = out;
    w->cap = cap;
    w->len = 0;
    w->code_pos = 0;
    w->crc = 0xFFFFFFFFu;
    w->code = 1;
    w->cobs = (uint8_t)(cobs != 0);
    w->need_code = 1;
    w->after_ff = 0;
    w->overflow = 0;
}

static void emit(ecgb_writer *w, uint8_t byte)
{
    if (!w->cobs) {
        put(w, byte);
        return;
    }
    if (w->need_code) {
        /* Open a group lazily: a group that would stay empty after a full (0xFF) group at
         * the very end must not be written, or the encoding would not be canonical. */
        w->code_pos = w->len;
        put(w, 0);
        w->code = 1;
        w->need_code = 0;
        w->after_ff = 0;
    }
    if (byte != 0) {
        put(w, byte);
        if (++w->code == 0xFF) {
            patch(w, w->code_pos, 0xFF);
            w->need_code = 1;
            w->after_ff = 1;
        }
    } else {
        patch(w, w->code_pos, w->code);
        w->need_code = 1;
        w->after_ff = 0;
    }
}

void ecgb_writer_byte(ecgb_writer *w, uint8_t byte)
{
    w->crc = ecgb_crc32_update(w->crc, &byte, 1);
    emit(w, byte);
}

void ecgb_writer_bytes(ecgb_writer *w, const uint8_t *data, size_t len)
{
    size_t i;
    for (i = 0; i < len; ++i)
        ecgb_writer_byte(w, data[i]);
}

void ecgb_writer_crc(ecgb_writer *w)
{
    uint32_t crc = w->crc ^ 0xFFFFFFFFu;
    unsigned i;
    for (i = 0; i < 4; ++i)
        emit(w, (uint8_t)(crc >> (8 * i)));
}

void ecgb_writer_finish(ecgb_writer *w)
{
    if (!w->cobs)
        return;
    if (!w->need_code)
        patch(w, w->code_pos, w->code);
    else if (!w->after_ff)
        put(w, 0x01); /* data ended with a zero (or was empty): one empty final group */
}

void ecgb_writer_delimit(ecgb_writer *w)
{
    put(w, 0x00);
}

size_t ecgb_cobs_encode(const uint8_t *data, size_t len, uint8_t *out, size_t cap)
{
    ecgb_writer w;
    size_t i;
    ecgb_writer_start(&w, out, cap, 1);
    for (i = 0; i < len; ++i)
        emit(&w, data[i]);
    ecgb_writer_finish(&w);
    return w.overflow ? 0 : w.len;
}
