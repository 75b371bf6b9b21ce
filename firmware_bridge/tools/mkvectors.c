/* Writes test_vectors/frames.json to stdout: `make -C firmware_bridge vectors`.
 * Refuses (exit 1) when the decoder disagrees with a case's stated events. */
#include <stdio.h>

#include "vectors.h"

int main(void)
{
    const vec_case *cases;
    size_t n = vectors_build(&cases), i;
    char why[200];
    int bad = 0;
    for (i = 0; i < n; ++i)
        if (!vectors_check(&cases[i], cases[i].wire, cases[i].wire_len, why, sizeof why)) {
            fprintf(stderr, "mkvectors: %s: %s\n", cases[i].name, why);
            bad = 1;
        }
    if (bad)
        return 1;
    vectors_write_json(stdout, cases, n);
    return 0;
}
