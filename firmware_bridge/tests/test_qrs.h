/* The QRS detector's host unit tests (test_qrs.c), run by test_ecgbridge.c. */
#ifndef ECGB_TESTS_QRS_H
#define ECGB_TESTS_QRS_H

void test_qrs_design_matches_scipy(void);
void test_qrs_init_checks(void);
void test_qrs_finds_a_beat_train(void);
void test_qrs_chunking_does_not_matter(void);
void test_qrs_flat_line_has_no_beats(void);
void test_qrs_nan_is_held_and_concealed(void);
void test_qrs_searchback_and_restart(void);
void test_qrs_state_is_bounded(void);

#endif
