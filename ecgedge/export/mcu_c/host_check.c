/* Host check harness: float32 windows on stdin (ECGEDGE_MODEL_INPUT_VALUES each), int8 logits on
 * stdout, one row of ECGEDGE_MODEL_CLASSES bytes per window. Used by ecgedge's c-int8 backend. */
#include <stdio.h>

#include "ecgedge_model.h"

int main(void)
{
    static float window[ECGEDGE_MODEL_INPUT_VALUES];
    int8_t out[ECGEDGE_MODEL_CLASSES];
    while (fread(window, sizeof(float), ECGEDGE_MODEL_INPUT_VALUES, stdin) == ECGEDGE_MODEL_INPUT_VALUES) {
        ecgedge_model_run(window, out);
        if (fwrite(out, 1, ECGEDGE_MODEL_CLASSES, stdout) != ECGEDGE_MODEL_CLASSES) return 1;
    }
    return ferror(stdin) ? 1 : 0;
}
