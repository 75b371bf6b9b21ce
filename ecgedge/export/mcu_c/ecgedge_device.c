/*
 * ecgedge_device: preprocessing + the INT8 model, sample by sample (see ecgedge_device.h).
 *
 * The chain is ecgedge/data/preprocess.py's, in float32:
 *   resampling  y[n] = sum_k h[k] u[n*DOWN - k], u = the input zero-stuffed by UP, inputs before the
 *               first equal to the first (StreamingResampler); output n exists once input
 *               floor(n*DOWN/UP) has arrived;
 *   band-pass   scipy's sosfilt (direct form II transposed), the state started at sosfilt_zi times
 *               the first resampled sample (StreamingBandpass);
 *   z-score     per lead of each window, standard deviation floored at STD_FLOOR mV (normalise_windows).
 * Windows end where ecgedge.stream.monitor.BedMonitor ends them: at model sample k*HOP of the
 * segment (k >= 1), the first classified one the first at or after WINDOW + SETTLE samples (the
 * host reports the earlier ones as "starting up"); a window ending at model sample e ends at source
 * offset round(e*DOWN/UP) (halves up) and is cut once that many source samples and e model samples exist.
 */
#include "ecgedge_device.h"

#include <math.h>
#include <string.h>

#include "ecgedge_device_config.h"
#include "ecgedge_model.h"

#if ECGEDGE_MODEL_CLASSES > ECGEDGE_DEVICE_MAX_CLASSES
#error "more classes than a device verdict carries"
#endif
#if ECGEDGE_MODEL_INPUT_LEADS != ECGDEV_LEADS || ECGEDGE_MODEL_INPUT_SAMPLES != ECGDEV_WINDOW
#error "ecgedge_device_config.h does not match ecgedge_model.h"
#endif

#define HIST (ECGDEV_TAPS / ECGDEV_UP + ECGDEV_DOWN / ECGDEV_UP + 4)
#define RING (ECGDEV_WINDOW + ECGDEV_UP / ECGDEV_DOWN + 8)

static float hist[ECGDEV_LEADS][HIST];   /* the last source samples (model leads) */
static float first_in[ECGDEV_LEADS];     /* what the inputs before the first are taken to be */
static double zstate[ECGDEV_LEADS][ECGDEV_SECTIONS][2]; /* see bandpass() */
static float ring[ECGDEV_LEADS][RING];   /* band-passed model-rate samples */
static float window_buf[ECGDEV_LEADS * ECGDEV_WINDOW];
static const char *const labels[] = ECGEDGE_MODEL_LABELS;
static uint64_t seg_start, n_in, n_out, next_end, off_until;

int ecgedge_device_abi(void) { return ECGEDGE_DEVICE_ABI; }
const char *ecgedge_device_describe(void) { return ECGDEV_DESCRIBE; }
double ecgedge_device_fs_in(void) { return ECGDEV_FS_IN; }
int ecgedge_device_source_leads(void) { return ECGDEV_SOURCE_LEADS; }

void ecgedge_device_reset(uint64_t first_sample)
{
    uint64_t first = (uint64_t)ECGDEV_WINDOW + ECGDEV_SETTLE;
    seg_start = first_sample;
    n_in = n_out = off_until = 0;
    next_end = (first + ECGDEV_HOP - 1) / ECGDEV_HOP * ECGDEV_HOP;
}

static uint64_t in_offset(uint64_t out)
{
    return (2 * out * ECGDEV_DOWN + ECGDEV_UP) / (2 * ECGDEV_UP);
}

/* The band-pass's state is double: its 0.5 Hz high-pass has poles within 0.01 of the unit circle,
 * where float32 state drifts by ~1e-4 of the signal. Five multiply-adds per section per model sample
 * (250 per second) cost little even where double is emulated (a Cortex-M4F's FPU is single precision). */
static float bandpass(int lead, float x_in)
{
    int s;
    double x = (double)x_in;
    for (s = 0; s < ECGDEV_SECTIONS; ++s) {
        const double *c = ecgdev_sos[s];
        double *z = zstate[lead][s];
        double y = c[0] * x + z[0];
        z[0] = c[1] * x - c[4] * y + z[1];
        z[1] = c[2] * x - c[5] * y;
        x = y;
    }
    return (float)x;
}

static void output(int lead, float y)
{
    int s;
    if (n_out == 0)
        for (s = 0; s < ECGDEV_SECTIONS; ++s) {
            zstate[lead][s][0] = ecgdev_zi[s][0] * (double)y;
            zstate[lead][s][1] = ecgdev_zi[s][1] * (double)y;
        }
    ring[lead][n_out % RING] = bandpass(lead, y);
}

static void resample(void)
{
    int lead;
#if ECGDEV_UP == ECGDEV_DOWN
    for (lead = 0; lead < ECGDEV_LEADS; ++lead)
        output(lead, hist[lead][(n_in - 1) % HIST]);
    ++n_out;
#else
    uint64_t j = n_in - 1; /* the newest input */
    while (n_out <= j * ECGDEV_UP / ECGDEV_DOWN) {
        uint64_t pos = n_out * ECGDEV_DOWN;  /* position in the zero-stuffed input */
        int64_t i = (int64_t)(pos / ECGDEV_UP);
        for (lead = 0; lead < ECGDEV_LEADS; ++lead) {
            float acc = 0.0f;
            int64_t k;
            for (k = i; k >= 0 && pos - (uint64_t)k * ECGDEV_UP < ECGDEV_TAPS; --k)
                acc += ecgdev_h[pos - (uint64_t)k * ECGDEV_UP] * hist[lead][(uint64_t)k % HIST];
            for (; k < 0 && pos + (uint64_t)(-k) * ECGDEV_UP < ECGDEV_TAPS; --k)
                acc += ecgdev_h[pos + (uint64_t)(-k) * ECGDEV_UP] * first_in[lead];
            output(lead, acc);
        }
        ++n_out;
    }
#endif
}

static void zscore(void)
{
    int lead, t;
    for (lead = 0; lead < ECGDEV_LEADS; ++lead) {
        float *w = &window_buf[lead * ECGDEV_WINDOW];
        double sum = 0.0, ss = 0.0;
        float mean, sd;
        for (t = 0; t < ECGDEV_WINDOW; ++t) {
            w[t] = ring[lead][(next_end - ECGDEV_WINDOW + (uint64_t)t) % RING];
            sum += (double)w[t];
        }
        mean = (float)(sum / ECGDEV_WINDOW);
        for (t = 0; t < ECGDEV_WINDOW; ++t)
            ss += ((double)w[t] - (double)mean) * ((double)w[t] - (double)mean);
        sd = (float)sqrt(ss / ECGDEV_WINDOW);
        if (!(sd >= ECGDEV_STD_FLOOR))
            sd = ECGDEV_STD_FLOOR;
        for (t = 0; t < ECGDEV_WINDOW; ++t)
            w[t] = (w[t] - mean) / sd;
    }
}

int ecgedge_device_push(const float *mv, unsigned lead_off, ecgedge_device_verdict *v)
{
    int lead, c;
    for (lead = 0; lead < ECGDEV_LEADS; ++lead) {
        float x = mv[ecgdev_lead_index[lead]];
        if (x - x != 0.0f) {
            /* NaN or +-Inf (a dropped or invalid sample): held at the lead's previous sample and
             * flagged as lead-off, so the band-pass state stays finite and the window is marked */
            x = n_in == 0 ? 0.0f : hist[lead][(n_in - 1) % HIST];
            off_until = n_in + 1;
        }
        if (n_in == 0) {
            int h;
            first_in[lead] = x;
            for (h = 0; h < HIST; ++h)
                hist[lead][h] = x;
        }
        hist[lead][n_in % HIST] = x;
        if (lead_off >> ecgdev_lead_index[lead] & 1u)
            off_until = n_in + 1;
    }
    ++n_in;
    resample();
    if (n_in < in_offset(next_end) || n_out < next_end)
        return 0;
    zscore();
    memset(v, 0, sizeof *v);
    v->first_sample = seg_start + in_offset(next_end - ECGDEV_WINDOW);
    v->end_sample = seg_start + in_offset(next_end);
    ecgedge_model_run(window_buf, v->scores);
    v->label = ecgedge_model_argmax(v->scores);
    v->label_text = labels[v->label];
    v->n_classes = ECGEDGE_MODEL_CLASSES;
    v->scale = ECGEDGE_MODEL_OUTPUT_SCALE;
    v->zero_point = ECGEDGE_MODEL_OUTPUT_ZERO_POINT;
    v->flags = off_until > in_offset(next_end - ECGDEV_WINDOW) ? ECGEDGE_DEVICE_FLAG_LEAD_OFF : 0u;
    v->window = window_buf;
    next_end += ECGDEV_HOP;
    for (c = ECGEDGE_MODEL_CLASSES; c < ECGEDGE_DEVICE_MAX_CLASSES; ++c)
        v->scores[c] = 0;
    return 1;
}
