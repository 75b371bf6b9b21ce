/*
 * qrs_detect: run the C QRS detector (ecgb_qrs) on float32 samples and print the beats.
 *
 *   qrs_detect FS LEADS [--chunk N] [FILE]    FILE (default stdin): little-endian float32 mV,
 *                                             interleaved (sample t of every lead, then t + 1)
 *   qrs_detect --design FS                    the band-pass, its start state, delay and floor
 *
 * One line per beat, "SAMPLE FLAGS" (flags: 1 noisy, 2 concealed, 4 search-back). --chunk N
 * pushes N samples at a time (default: 40 ms). Used by tests/test_qrs_c.py to compare the C
 * detector with ecgedge/beats/qrs.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ecgb_qrs.h"

static ecgb_qrs_t q;

static void print_beats(const ecgb_beat_t *b, int n)
{
    int i;
    for (i = 0; i < n; ++i) printf("%lld %u\n", (long long)b[i].sample, (unsigned)b[i].flags);
}

static int design(double fs)
{
    int s, k;
    if (ecgb_qrs_init(&q, fs, 1, NULL) != 0) {
        fprintf(stderr, "qrs_detect: cannot run at %g Hz\n", fs);
        return 2;
    }
    printf("{\"fs\": %.17g, \"sos\": [", fs);
    for (s = 0; s < 2; ++s)
        for (k = 0; k < 6; ++k) printf("%s%.17g", s || k ? ", " : "", q.sos[s][k]);
    printf("], \"zi\": [%.17g, %.17g, %.17g, %.17g]", q.zi0[0][0], q.zi0[0][1], q.zi0[1][0], q.zi0[1][1]);
    printf(", \"delay\": %d, \"floor\": %.17g, \"w_int\": %d, \"r_cand\": %d, \"locate\": %d}\n", q.delay,
           q.floor_energy, q.w_int, q.r_cand, q.locate);
    return 0;
}

int main(int argc, char **argv)
{
    static float buf[1 << 16];
    ecgb_beat_t beats[16];
    double fs;
    int leads, chunk = 0, i, nb;
    const char *path = NULL;
    FILE *fp = stdin;
    if (argc == 3 && strcmp(argv[1], "--design") == 0) return design(atof(argv[2]));
    if (argc < 3) {
        fprintf(stderr, "usage: qrs_detect FS LEADS [--chunk N] [FILE] | qrs_detect --design FS\n");
        return 2;
    }
    fs = atof(argv[1]);
    leads = atoi(argv[2]);
    for (i = 3; i < argc; ++i) {
        if (strcmp(argv[i], "--chunk") == 0 && i + 1 < argc) chunk = atoi(argv[++i]);
        else path = argv[i];
    }
    if (ecgb_qrs_init(&q, fs, leads, NULL) != 0) {
        fprintf(stderr, "qrs_detect: cannot run at %g Hz with %d lead(s) (ECGB_QRS_MAX_FS %d, MAX_LEADS %d)\n", fs,
                leads, ECGB_QRS_MAX_FS, ECGB_QRS_MAX_LEADS);
        return 2;
    }
    if (chunk <= 0) chunk = (int)(0.04 * fs + 0.5);
    if (chunk * leads > (int)(sizeof buf / sizeof buf[0])) chunk = (int)(sizeof buf / sizeof buf[0]) / leads;
    if (path && !(fp = fopen(path, "rb"))) {
        perror(path);
        return 2;
    }
    for (;;) {
        size_t got = fread(buf, sizeof(float) * (size_t)leads, (size_t)chunk, fp);
        if (got == 0) break;
        nb = ecgb_qrs_push(&q, buf, (int)got, NULL, beats, 16);
        print_beats(beats, nb);
    }
    while ((nb = ecgb_qrs_finish(&q, beats, 16)) > 0) print_beats(beats, nb);
    if (fp != stdin) fclose(fp);
    if (q.dropped_beats || q.dropped_pending)
        fprintf(stderr, "qrs_detect: dropped %u beats, %u pending candidates\n", (unsigned)q.dropped_beats,
                (unsigned)q.dropped_pending);
    return 0;
}
