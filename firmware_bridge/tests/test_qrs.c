/*
 * Host unit tests of the C QRS detector (src/ecgb_qrs.c); run by test_ecgbridge.c's main.
 * The comparison with the Python detector on real records is tests/test_qrs_c.py.
 */
#include <math.h>
#include <string.h>

#include "check.h"
#include "ecgb_qrs.h"
#include "test_qrs.h"

static ecgb_qrs_t q, q2;
static float sig[2 * 30 * 500];

/* A beat train: a 1 mV, 80-ms-wide triangle QRS every rr_s seconds (first at 0.5 s), a small T wave,
 * baseline wander; lead 1 (if any) the same at -0.6x. */
static int make_train(double fs, double seconds, double rr_s, int n_leads, float *x)
{
    int n = (int)(seconds * fs), t, l;
    for (t = 0; t < n; ++t) {
        double s = t / fs, ph = fmod(s - 0.5 + 10 * rr_s, rr_s), v = 0.0;
        if (ph < 0.04) v = 1.0 - ph / 0.04;
        else if (ph > rr_s - 0.04) v = 1.0 - (rr_s - ph) / 0.04;
        v += 0.2 * exp(-((ph - 0.25) * (ph - 0.25)) / (2 * 0.04 * 0.04));
        v += 0.1 * sin(2 * 3.14159265358979 * 0.3 * s);
        for (l = 0; l < n_leads; ++l) x[t * n_leads + l] = (float)(l == 0 ? v : -0.6 * v);
    }
    return n;
}

static int run(ecgb_qrs_t *d, const float *x, int n, int chunk, int n_leads, const uint8_t *conc, ecgb_beat_t *out,
               int max)
{
    int t, k = 0;
    for (t = 0; t < n; t += chunk) {
        int m = n - t < chunk ? n - t : chunk;
        k += ecgb_qrs_push(d, x + (size_t)t * n_leads, m, conc ? conc + t : NULL, out + k, max - k);
    }
    for (;;) {
        int got = ecgb_qrs_finish(d, out + k, max - k);
        if (got <= 0) break;
        k += got;
    }
    return k;
}

void test_qrs_design_matches_scipy(void)
{
    /* scipy.signal.butter(2, [5, 20], 'bandpass', fs=360, output='sos') and sosfilt_zi of it */
    static const double sos360[12] = {0.01440144034651122, 0.02880288069302244, 0.01440144034651122, 1.0,
                                      -1.6736469039062072, 0.7562128338331613, 1.0, -2.0, 1.0, 1.0,
                                      -1.9038356732879669, 0.9132335400087375};
    static const double zi360[4] = {0.6832926501458819, -0.5132037849733915, -0.6976940904923856, 0.6976940904923863};
    double sos[2][6], zi[2][2];
    int i;
    CHECK(ecgb_qrs_design(360.0, 5.0, 20.0, sos, zi) == 0);
    for (i = 0; i < 12; ++i) CHECK(fabs(sos[i / 6][i % 6] - sos360[i]) < 1e-12);
    for (i = 0; i < 4; ++i) CHECK(fabs(zi[i / 2][i % 2] - zi360[i]) < 1e-12);
    CHECK(ecgb_qrs_group_delay(&sos[0][0], 360.0) == 11); /* the Python's group_delay_samples */
    CHECK(ecgb_qrs_design(360.0, 20.0, 5.0, sos, zi) != 0);
}

void test_qrs_init_checks(void)
{
    ecgb_qrs_config_t c;
    CHECK(ecgb_qrs_init(&q, 99.0, 1, NULL) != 0);
    CHECK(ecgb_qrs_init(&q, ECGB_QRS_MAX_FS + 1.0, 1, NULL) != 0);
    CHECK(ecgb_qrs_init(&q, 360.0, 0, NULL) != 0);
    CHECK(ecgb_qrs_init(&q, 360.0, ECGB_QRS_MAX_LEADS + 1, NULL) != 0);
    ecgb_qrs_config_default(&c);
    c.integration_s = 2.0; /* more look-back than the buffers hold */
    CHECK(ecgb_qrs_init(&q, 360.0, 1, &c) != 0);
    ecgb_qrs_config_default(&c);
    c.band_low_hz = 30.0;
    CHECK(ecgb_qrs_init(&q, 360.0, 1, &c) != 0);
    CHECK(ecgb_qrs_init(&q, 360.0, 1, NULL) == 0);
    CHECK(fabs(ecgb_qrs_decision_delay_s(&q) - (12 + 21 + 29) / 360.0) < 1e-12);
}

void test_qrs_finds_a_beat_train(void)
{
    static const double rates[] = {100.0, 250.0, 360.0, 500.0};
    ecgb_beat_t b[64];
    unsigned r;
    for (r = 0; r < sizeof rates / sizeof rates[0]; ++r) {
        double fs = rates[r];
        int n = make_train(fs, 20.0, 0.8, 1, sig), k, i, off = 0;
        CHECK(ecgb_qrs_init(&q, fs, 1, NULL) == 0);
        k = run(&q, sig, n, (int)(0.04 * fs), 1, NULL, b, 64);
        CHECK(k == 25); /* 0.5, 1.3, ..., 19.7 s */
        for (i = 0; i < k && i < 25; ++i) {
            int d = (int)(b[i].sample - (int64_t)floor((0.5 + 0.8 * i) * fs + 0.5));
            if (d < 0) d = -d;
            if (d > off) off = d;
            CHECK(b[i].flags == 0);
        }
        CHECK(off <= 1);
    }
}

void test_qrs_chunking_does_not_matter(void)
{
    ecgb_beat_t a[64], c[64];
    int n = make_train(500.0, 20.0, 0.7, 2, sig), ka, kc, i;
    CHECK(ecgb_qrs_init(&q, 500.0, 2, NULL) == 0);
    CHECK(ecgb_qrs_init(&q2, 500.0, 2, NULL) == 0);
    ka = run(&q, sig, n, 1, 2, NULL, a, 64);
    kc = run(&q2, sig, n, 333, 2, NULL, c, 64);
    CHECK(ka == kc && ka > 20);
    for (i = 0; i < ka && i < kc; ++i) CHECK(a[i].sample == c[i].sample && a[i].flags == c[i].flags);
}

void test_qrs_flat_line_has_no_beats(void)
{
    ecgb_beat_t b[8];
    memset(sig, 0, 10 * 360 * sizeof sig[0]);
    CHECK(ecgb_qrs_init(&q, 360.0, 1, NULL) == 0);
    CHECK(run(&q, sig, 10 * 360, 14, 1, NULL, b, 8) == 0);
}

void test_qrs_nan_is_held_and_concealed(void)
{
    ecgb_beat_t b[64];
    static uint8_t conc[20 * 360];
    int n = make_train(360.0, 20.0, 0.8, 1, sig), k, i, flagged = 0, t;
    /* NaN over the beat at 8.5 s (sample 3060) and a caller-concealed run over the one at 12.5 s */
    for (t = 3040; t < 3050; ++t) sig[t] = NAN;
    memset(conc, 0, sizeof conc);
    for (t = 4490; t < 4505; ++t) conc[t] = 1;
    CHECK(ecgb_qrs_init(&q, 360.0, 1, NULL) == 0);
    k = run(&q, sig, n, 14, 1, conc, b, 64);
    CHECK(k >= 24 && k <= 25);
    for (i = 0; i < k; ++i) {
        int near = (b[i].sample > 3000 && b[i].sample < 3120) || (b[i].sample > 4440 && b[i].sample < 4560);
        CHECK(((b[i].flags & ECGB_BEAT_CONCEALED) != 0) == near);
        flagged += near;
    }
    CHECK(flagged == 2);
}

void test_qrs_searchback_and_restart(void)
{
    ecgb_beat_t b[64];
    int n = make_train(360.0, 20.0, 0.8, 1, sig), k, i, sb = 0, t;
    /* a beat at 40 % amplitude: under the threshold, found by search-back */
    for (t = (int)(10.1 * 360) - 20; t < (int)(10.1 * 360) + 20; ++t) sig[t] *= 0.4f;
    CHECK(ecgb_qrs_init(&q, 360.0, 1, NULL) == 0);
    k = run(&q, sig, n, 14, 1, NULL, b, 64);
    for (i = 0; i < k; ++i) sb += (b[i].flags & ECGB_BEAT_SEARCHBACK) != 0;
    CHECK(k == 25);
    CHECK(sb <= 1);
    /* restart: thresholds re-learned, the beats after the learning period found again */
    CHECK(ecgb_qrs_init(&q, 360.0, 1, NULL) == 0);
    k = ecgb_qrs_push(&q, sig, 5 * 360, NULL, b, 64);
    ecgb_qrs_restart(&q);
    k = ecgb_qrs_push(&q, sig + 5 * 360, 10 * 360, NULL, b, 64);
    CHECK(k >= 12 && k <= 13); /* 5.3, 6.1, ..., 14.9 s */
    CHECK(k > 0 && b[0].sample >= 5 * 360);
}

void test_qrs_state_is_bounded(void)
{
    /* sized by ECGB_QRS_MAX_FS and ECGB_QRS_MAX_LEADS; no allocation */
    CHECK(sizeof(ecgb_qrs_t) < (size_t)ECGB_QRS_RING * (32 + 12 * (size_t)ECGB_QRS_MAX_LEADS) + 16384);
}
