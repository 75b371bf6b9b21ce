/* The check macro of the host unit tests, shared by their source files. */
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

/* tests/test_wfdb_header.c: ecgsim's WFDB header parser (sim/record.c) on header strings */
void test_header_wfdb_python_layouts(void);
void test_header_optional_fields(void);
void test_header_units(void);
void test_header_lines_comments_crlf(void);
void test_header_record_line(void);
void test_header_refusals_name_the_field(void);

#endif
