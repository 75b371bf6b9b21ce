/*
 * ecgbdump: decode an ecgbridge byte stream and print one JSON line per event.
 *
 *   ecgbdump [--chunk N] [FILE]     (FILE defaults to stdin)
 *
 * Lines are {"frame": {...}} (fields as in test_vectors/frames.json) or {"error": "bad_crc"};
 * a last line {"stats": {...}} gives the decoder's counters. Used by the Python tests to check
 * that the C and Python decoders report the same events for the same damaged stream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ecgbridge.h"
#include "json.h"

static void print_event(ecgb_status st, const ecgb_frame *f)
{
    static int32_t samples[ECGB_MAX_FRAME / 2];
    unsigned i, t;
    if (st != ECGB_OK) {
        printf("{\"error\": \"%s\"}\n", ecgb_status_name(st));
        return;
    }
    for (t = 0; t < f->samples_per_lead; ++t)
        for (i = 0; i < f->n_leads; ++i)
            samples[t * f->n_leads + i] = ecgb_sample(f, i, t);
    json_frame(stdout, f, samples);
    printf("\n");
}

int main(int argc, char **argv)
{
    static uint8_t chunk[65536];
    static ecgb_decoder dec;
    size_t chunk_len = sizeof chunk;
    FILE *in = stdin;
    int i;
    for (i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--chunk") == 0 && i + 1 < argc) {
            chunk_len = (size_t)strtoul(argv[++i], NULL, 10);
            if (chunk_len < 1 || chunk_len > sizeof chunk) {
                fprintf(stderr, "ecgbdump: --chunk must be 1..%u bytes\n", (unsigned)sizeof chunk);
                return 2;
            }
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "usage: ecgbdump [--chunk N] [FILE]\n");
            return 2;
        } else if ((in = fopen(argv[i], "rb")) == NULL) {
            perror(argv[i]);
            return 2;
        }
    }
    ecgb_decoder_init(&dec);
    for (;;) {
        size_t n = fread(chunk, 1, chunk_len, in), pos = 0, used;
        ecgb_frame f;
        if (n == 0)
            break;
        while (pos < n) {
            ecgb_status st = ecgb_decoder_feed(&dec, chunk + pos, n - pos, &used, &f);
            pos += used;
            if (st != ECGB_PENDING)
                print_event(st, &f);
        }
    }
    printf("{\"stats\": {\"bytes\": %lu, \"frames\": %lu, \"bad_crc\": %lu, \"bad_length\": %lu, "
           "\"unknown_version\": %lu, \"oversize\": %lu, \"bad_cobs\": %lu, \"bad_magic\": %lu, "
           "\"bad_field\": %lu}}\n",
           (unsigned long)dec.stats.bytes, (unsigned long)dec.stats.frames,
           (unsigned long)dec.stats.bad_crc, (unsigned long)dec.stats.bad_length,
           (unsigned long)dec.stats.unknown_version, (unsigned long)dec.stats.oversize,
           (unsigned long)dec.stats.bad_cobs, (unsigned long)dec.stats.bad_magic,
           (unsigned long)dec.stats.bad_field);
    return 0;
}
