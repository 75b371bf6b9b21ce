/* Private to the library: the byte writer that pack, encode and COBS share. */
#ifndef ECGB_INTERNAL_H
#define ECGB_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

uint32_t ecgb_crc32_update(uint32_t crc, const uint8_t *data, size_t len);

/*
 * Writes bytes either plainly or COBS-encoded on the fly, back-patching each group's code
 * byte, so encoding a frame needs no scratch copy of it. The CRC runs over the plain bytes.
 */
typedef struct {
    uint8_t *out;
    size_t cap;
    size_t len;
    size_t code_pos;  /* where the current group's code byte goes */
    uint32_t crc;
    uint8_t code;     /* 1 + data bytes in the current group */
    uint8_t cobs;
    uint8_t need_code; /* no group open: the next byte starts one */
    uint8_t after_ff;  /* the last group closed because it reached 254 data bytes */
    uint8_t overflow;
} ecgb_writer;

void ecgb_writer_start(ecgb_writer *w, uint8_t *out, size_t cap, int cobs);
void ecgb_writer_byte(ecgb_writer *w, uint8_t byte);     /* counted in the CRC */
void ecgb_writer_bytes(ecgb_writer *w, const uint8_t *data, size_t len);
void ecgb_writer_crc(ecgb_writer *w);                    /* appends the final CRC, LE */
void ecgb_writer_finish(ecgb_writer *w);                 /* closes the last COBS group */
void ecgb_writer_delimit(ecgb_writer *w);                /* appends 0x00 as is */

#endif
