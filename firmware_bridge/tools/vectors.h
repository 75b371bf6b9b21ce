/* The shared test vectors: built in code, written to test_vectors/frames.json by mkvectors,
 * and checked against the decoder by both mkvectors and the C tests. */
#ifndef ECGB_VECTORS_H
#define ECGB_VECTORS_H

#include <stdio.h>

#include "ecgbridge.h"

#define VEC_MAX_WIRE 4096u
#define VEC_MAX_EVENTS 4u
#define VEC_MAX_SAMPLES 512u

typedef struct {
    ecgb_status status; /* ECGB_OK: a frame, described by frame and samples */
    ecgb_frame frame;
    int32_t samples[VEC_MAX_SAMPLES]; /* interleaved, as given to ecgb_encode */
} vec_event;

typedef struct {
    const char *name;
    const char *about;
    uint8_t wire[VEC_MAX_WIRE];
    size_t wire_len;
    vec_event events[VEC_MAX_EVENTS];
    size_t n_events;
} vec_case;

/* Build the cases (once) and return how many; *cases points at static storage. */
size_t vectors_build(const vec_case **cases);

void vectors_write_json(FILE *out, const vec_case *cases, size_t n);

/* Decode wire bytes with a fresh decoder and compare with the case's expected events.
 * Returns 1 when they agree; otherwise writes the first difference into why. */
int vectors_check(const vec_case *c, const uint8_t *wire, size_t wire_len, char *why,
                  size_t why_len);

#endif
