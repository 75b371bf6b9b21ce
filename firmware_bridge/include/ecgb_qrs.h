/*
 * ecgb_qrs: the QRS detector of ecgedge/beats/qrs.py in C99, stage for stage (the Python module's
 * docstring is the specification): Butterworth 5-20 Hz band-pass (order 2, two second-order
 * sections, designed here for any fs >= 100 Hz as scipy.signal.butter designs it), central
 * difference, slope energy summed over leads, moving-window integration, candidates, adaptive
 * thresholds with learning, refractory period, T-wave test, search-back, R-peak location.
 * Double precision throughout, so it gives the Python detector's beats (tests/test_qrs_c.py).
 *
 * Streaming, causal, no malloc, no globals, no stdio: all state lives in the caller's ecgb_qrs_t,
 * statically sized by ECGB_QRS_MAX_FS (highest sampling rate, Hz) and ECGB_QRS_MAX_LEADS; define
 * both before including this header (and when compiling ecgb_qrs.c) to size it for a target,
 * e.g. -DECGB_QRS_MAX_FS=500 -DECGB_QRS_MAX_LEADS=1 on a Cortex-M4F (sizeof(ecgb_qrs_t) is then
 * 15,064 bytes; flash, RAM and instructions measured under QEMU: tools/qrs_m4.py, docs/beats-device.md).
 *
 *   static ecgb_qrs_t q;
 *   ecgb_qrs_init(&q, 360.0, 1, NULL);              // default settings
 *   for each chunk:  n = ecgb_qrs_push(&q, mv, len, NULL, beats, 8);   // mv: interleaved, mV
 *   at the end:      n = ecgb_qrs_finish(&q, beats, 8);
 */
#ifndef ECGB_QRS_H
#define ECGB_QRS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef ECGB_QRS_MAX_FS
#define ECGB_QRS_MAX_FS 1000 /* Hz: the highest sampling rate the state is sized for */
#endif
#ifndef ECGB_QRS_MAX_LEADS
#define ECGB_QRS_MAX_LEADS 12
#endif
/* Look-back of the per-sample stages, samples: 0.5 s at the highest rate (the defaults need
 * candidate + integration + 2 x location windows + the band-pass delay, about 0.35 s). */
#define ECGB_QRS_RING (ECGB_QRS_MAX_FS / 2 + 8)
/* Candidates found but not yet decided (the learning period holds them: at most one per
 * candidate_s + 1 sample) and candidates kept for search-back since the last beat. */
#define ECGB_QRS_MAX_QUEUE 32
#define ECGB_QRS_MAX_PENDING 48
/* Beats decided but not yet handed to the caller (push/finish return at most max_out). */
#define ECGB_QRS_MAX_OUT 16
#define ECGB_QRS_MAX_MEMORY 16 /* largest rr_memory */

#define ECGB_QRS_MIN_FS 100.0

/* Per-beat flags, as ecgedge.beats.qrs.BeatFlag. */
#define ECGB_BEAT_NOISY 1u
#define ECGB_BEAT_CONCEALED 2u
#define ECGB_BEAT_SEARCHBACK 4u

/* Settings, as ecgedge.beats.qrs.QrsConfig (seconds, Hz, mV). */
typedef struct {
    double band_low_hz, band_high_hz;
    double integration_s, candidate_s, refractory_s, twave_s, twave_slope_ratio;
    double searchback_rr, learning_s, threshold_fraction, noise_ratio, locate_s;
    int rr_memory;
    double initial_rr_s, min_qrs_mv, negative_ratio;
} ecgb_qrs_config_t;

typedef struct {
    int64_t sample; /* R-peak position: input sample index from the first sample pushed */
    uint8_t flags;  /* ECGB_BEAT_* */
} ecgb_beat_t;

typedef struct {
    int64_t n;      /* integrated-signal sample of the candidate */
    double height;  /* integrated slope energy there */
    double slope;   /* largest slope energy in the integration window */
    int64_t peak;   /* R-peak position (input sample) */
    int64_t conc_to, conc_end; /* concealed samples checked in [peak - locate, conc_to) of conc_end */
    uint8_t conc;   /* a concealed sample seen in that range */
} ecgb_qrs_cand_t;

typedef struct {
    ecgb_qrs_config_t cfg;
    double fs;
    int n_leads;
    /* derived, as the Python detector's attributes */
    double sos[2][6];
    double zi0[2][2];
    int w_int, r_cand, refractory, twave, learning, locate, delay;
    double floor_energy;
    /* per-sample stages */
    int started;
    double zi[ECGB_QRS_MAX_LEADS][2][2];
    double prev2[ECGB_QRS_MAX_LEADS][2];
    float held[ECGB_QRS_MAX_LEADS];
    double csum[ECGB_QRS_RING];                /* running sum of the slope energy */
    double integ[ECGB_QRS_RING];
    double total[ECGB_QRS_RING];               /* slope energy summed over leads */
    double energy[ECGB_QRS_MAX_LEADS > 1 ? ECGB_QRS_MAX_LEADS : 1][ECGB_QRS_MAX_LEADS > 1 ? ECGB_QRS_RING : 1];
    float located[ECGB_QRS_MAX_LEADS][ECGB_QRS_RING]; /* input, mV, for R-peak location */
    uint8_t concealed[ECGB_QRS_RING];
    double scratch[ECGB_QRS_RING];
    int64_t n;                                 /* samples pushed */
    /* learning */
    int64_t clock0;
    int learned;
    double learn_max, learn_sum;               /* of the integrated signal over the learning period */
    /* decision state (ecgedge.beats.qrs._State) */
    double spk0, npk;
    double peaks[ECGB_QRS_MAX_MEMORY], slope_last;
    int n_peaks, has_slope;
    int64_t rr[ECGB_QRS_MAX_MEMORY];
    int n_rr;
    int64_t last_beat, anchor, decided;
    ecgb_qrs_cand_t queue[ECGB_QRS_MAX_QUEUE];
    int n_queue;
    ecgb_qrs_cand_t pending[ECGB_QRS_MAX_PENDING];
    int n_pending;
    ecgb_beat_t out[ECGB_QRS_MAX_OUT];
    int n_out;
    int finished;
    uint32_t dropped_pending, dropped_beats;   /* overflow counters (0 in normal use) */
} ecgb_qrs_t;

/* The Python QrsConfig's defaults. */
void ecgb_qrs_config_default(ecgb_qrs_config_t *cfg);

/* Start a detector for n_leads interleaved leads at fs Hz (cfg NULL: defaults). Returns 0, or -1
 * when fs < 100 Hz or above ECGB_QRS_MAX_FS, n_leads outside 1..ECGB_QRS_MAX_LEADS, or the
 * settings need more look-back than the compiled buffers hold (or locate_s > candidate_s). */
int ecgb_qrs_init(ecgb_qrs_t *q, double fs, int n_leads, const ecgb_qrs_config_t *cfg);

/* Add n sample times (samples_mv: n x n_leads interleaved, mV; NaN and Inf hold the lead's last
 * finite value and mark the time concealed). concealed: NULL or one byte per sample time, non-zero
 * where the caller interpolated over lost data. Writes at most max_out beats decided so far to
 * out and returns how many; beats beyond max_out wait for the next call. */
int ecgb_qrs_push(ecgb_qrs_t *q, const float *samples_mv, int n, const uint8_t *concealed,
                  ecgb_beat_t *out, int max_out);

/* End of the record: decide the last samples (no look-ahead remains). Call until it returns 0. */
int ecgb_qrs_finish(ecgb_qrs_t *q, ecgb_beat_t *out, int max_out);

/* Forget thresholds and RR history (after a gap that could not be concealed); filters go on. */
void ecgb_qrs_restart(ecgb_qrs_t *q);

/* Seconds from an R peak to its report (search-back beats excepted). */
double ecgb_qrs_decision_delay_s(const ecgb_qrs_t *q);

/* The design steps, exposed for tests: the band-pass (scipy.signal.butter(2, [lo, hi],
 * 'bandpass', fs=fs, output='sos')), its steady-state start (sosfilt_zi), the group delay in
 * samples (rounded) at the pass band's peak on freqz's 4096-point grid. 0, or -1 if no band. */
int ecgb_qrs_design(double fs, double lo_hz, double hi_hz, double sos[2][6], double zi[2][2]);
int ecgb_qrs_group_delay(const double *sos /* 2 x 6, row-major */, double fs);
/* The integrated slope energy of a qrs_mv-high, 80-ms triangle through the chain (the beat floor);
 * scratch: w_int doubles. */
double ecgb_qrs_energy_floor(const double *sos, int w_int, double fs, double qrs_mv, double *scratch);

#ifdef __cplusplus
}
#endif

#endif
