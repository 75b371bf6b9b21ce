/* One frame as a JSON object: the shape of test_vectors/frames.json and of ecgbdump lines. */
#ifndef ECGB_JSON_H
#define ECGB_JSON_H

#include <stdio.h>

#include "ecgbridge.h"

/* samples: interleaved (sample t of lead i at [t * n_leads + i]); written one list per lead. */
void json_frame(FILE *out, const ecgb_frame *f, const int32_t *samples);

#endif
