/* The check macro of the host unit tests. */
#ifndef ECGB_TESTS_CHECK_H
#define ECGB_TESTS_CHECK_H

#include <stdio.h>

extern int failures; /* checks failed in the current test (test_ecgbridge.c runs the tests) */

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);        \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)

#endif
