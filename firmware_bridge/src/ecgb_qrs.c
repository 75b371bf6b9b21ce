/*
 * The QRS detector of ecgedge/beats/qrs.py in C99 (see include/ecgb_qrs.h). Each function names the
 * Python method it ports; the decisions are the Python's, in the same order, in double precision.
 *
 * One difference of form, none of result: the Python finds candidates when it decides (at the end
 * of a push, after the learning period); this port finds each candidate as soon as its look-ahead
 * has arrived (candidate detection depends on the signal only) and computes at once what the
 * decision needs later (height, slope, R-peak position), so its look-back buffers hold 0.5 s
 * rather than the learning period. The concealed-sample check of a beat (its QRS window, cut at the
 * candidate's look-ahead) is kept up to date per sample instead.
 */
#include "ecgb_qrs.h"

#include <math.h>
#include <string.h>

#define PI 3.14159265358979323846
#define FREQZ_N 4096

static int ring(int64_t n) { return (int)(n % ECGB_QRS_RING); }

static int round_half_even(double x) { return (int)rint(x); } /* Python's round() */

void ecgb_qrs_config_default(ecgb_qrs_config_t *c)
{
    c->band_low_hz = 5.0;
    c->band_high_hz = 20.0;
    c->integration_s = 0.120;
    c->candidate_s = 0.080;
    c->refractory_s = 0.200;
    c->twave_s = 0.360;
    c->twave_slope_ratio = 0.5;
    c->searchback_rr = 1.66;
    c->learning_s = 2.0;
    c->threshold_fraction = 0.25;
    c->noise_ratio = 0.35;
    c->locate_s = 0.060;
    c->rr_memory = 8;
    c->initial_rr_s = 1.0;
    c->min_qrs_mv = 0.1;
    c->negative_ratio = 1.6;
}

/* ------------------------------------------------------------------ design */

typedef struct {
    double re, im;
} cx;

static cx cx_make(double re, double im) { cx z; z.re = re; z.im = im; return z; }
static cx cx_add(cx a, cx b) { return cx_make(a.re + b.re, a.im + b.im); }
static cx cx_sub(cx a, cx b) { return cx_make(a.re - b.re, a.im - b.im); }
static cx cx_mul(cx a, cx b) { return cx_make(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re); }
static cx cx_scale(cx a, double s) { return cx_make(a.re * s, a.im * s); }
static double cx_abs(cx a) { return hypot(a.re, a.im); }

static cx cx_div(cx a, cx b)
{
    /* Smith's method, as numpy divides complex numbers */
    if (fabs(b.re) >= fabs(b.im)) {
        double r = b.im / b.re, d = b.re + b.im * r;
        return cx_make((a.re + a.im * r) / d, (a.im - a.re * r) / d);
    } else {
        double r = b.re / b.im, d = b.re * r + b.im;
        return cx_make((a.re * r + a.im) / d, (a.im * r - a.re) / d);
    }
}

static cx cx_sqrt(cx a)
{
    double m = cx_abs(a), re, im;
    if (m == 0.0) return cx_make(0.0, 0.0);
    if (a.re >= 0.0) {
        re = sqrt(0.5 * (m + a.re));
        im = a.im / (2.0 * re);
    } else {
        im = sqrt(0.5 * (m - a.re));
        if (a.im < 0.0) im = -im;
        re = a.im / (2.0 * im);
    }
    return cx_make(re, im);
}

/* scipy.signal.butter(2, [lo, hi], btype='bandpass', fs=fs, output='sos'): analog prototype
 * (buttap), lp2bp_zpk, bilinear_zpk, zpk2sos (the pole pair nearest the unit circle last, each
 * pair with its nearest zeros, the gain in the first section); then sosfilt_zi. */
int ecgb_qrs_design(double fs, double lo_hz, double hi_hz, double sos[2][6], double zi[2][2])
{
    double w1, w2, wo, bw, k, scale;
    cx proto[2], p[4], up[2], den;
    int i, worst, s;
    if (!(fs > 0.0) || !(0.0 < lo_hz && lo_hz < hi_hz && hi_hz < fs / 2.0)) return -1;
    w1 = 4.0 * tan(PI * (2.0 * lo_hz / fs) / 2.0); /* scipy's pre-warp with its fs = 2 */
    w2 = 4.0 * tan(PI * (2.0 * hi_hz / fs) / 2.0);
    wo = sqrt(w1 * w2);
    bw = w2 - w1;
    proto[0] = cx_make(-cos(-PI / 4.0), -sin(-PI / 4.0)); /* -exp(j pi m / 4), m = -1, 1 */
    proto[1] = cx_make(-cos(PI / 4.0), -sin(PI / 4.0));
    for (i = 0; i < 2; ++i) {
        cx lp = cx_scale(proto[i], bw / 2.0);
        cx r = cx_sqrt(cx_sub(cx_mul(lp, lp), cx_make(wo * wo, 0.0)));
        p[i] = cx_add(lp, r);
        p[i + 2] = cx_sub(lp, r);
    }
    den = cx_make(1.0, 0.0);
    for (i = 0; i < 4; ++i) {
        den = cx_mul(den, cx_sub(cx_make(4.0, 0.0), p[i]));
        p[i] = cx_div(cx_add(cx_make(4.0, 0.0), p[i]), cx_sub(cx_make(4.0, 0.0), p[i]));
    }
    k = bw * bw * cx_div(cx_make(16.0, 0.0), den).re;
    /* one pole of each conjugate pair (positive imaginary part) */
    s = 0;
    for (i = 0; i < 4 && s < 2; ++i)
        if (p[i].im > 0.0) up[s++] = p[i];
    if (s != 2) return -1;
    worst = fabs(1.0 - cx_abs(up[0])) <= fabs(1.0 - cx_abs(up[1])) ? 0 : 1;
    for (s = 0; s < 2; ++s) {
        /* section 1: the pole pair nearest the unit circle and the zeros (+1 or -1) nearest it */
        cx pw = up[worst], pp = s == 1 ? up[worst] : up[1 - worst];
        double zv_worst = cx_abs(cx_add(pw, cx_make(1.0, 0.0))) <= cx_abs(cx_sub(pw, cx_make(1.0, 0.0))) ? -1.0 : 1.0;
        double zv = s == 1 ? zv_worst : -zv_worst;
        sos[s][0] = 1.0;
        sos[s][1] = -2.0 * zv;
        sos[s][2] = 1.0;
        sos[s][3] = 1.0;
        sos[s][4] = -(pp.re + pp.re);
        sos[s][5] = pp.re * pp.re + pp.im * pp.im;
    }
    for (i = 0; i < 3; ++i) sos[0][i] *= k;
    /* sosfilt_zi: each section's lfilter_zi, scaled by the DC gain of the sections before it */
    scale = 1.0;
    for (s = 0; s < 2; ++s) {
        const double *b = sos[s], *a = sos[s] + 3;
        double B0 = b[1] - a[1] * b[0], B1 = b[2] - a[2] * b[0];
        double z0 = (B0 + B1) / (1.0 + a[1] + a[2]);
        zi[s][0] = scale * z0;
        zi[s][1] = scale * (B1 - a[2] * z0);
        scale *= (b[0] + b[1] + b[2]) / (a[0] + a[1] + a[2]);
    }
    return 0;
}

/* Sum_k c_k e^{-j w k} and Sum_k k c_k e^{-j w k} of a second-order polynomial. */
static void poly_at(const double *c, double w, cx *v, cx *dv)
{
    int k;
    *v = cx_make(0.0, 0.0);
    *dv = cx_make(0.0, 0.0);
    for (k = 0; k < 3; ++k) {
        cx t = cx_make(c[k] * cos(w * k), -c[k] * sin(w * k));
        *v = cx_add(*v, t);
        *dv = cx_add(*dv, cx_scale(t, (double)k));
    }
}

static double magnitude_at(const double *sos, int k)
{
    double mag = 1.0, w = PI * k / FREQZ_N;
    int s;
    for (s = 0; s < 2; ++s) {
        cx b, a, db, da;
        poly_at(sos + 6 * s, w, &b, &db);
        poly_at(sos + 6 * s + 3, w, &a, &da);
        mag *= cx_abs(b) / cx_abs(a);
    }
    return mag;
}

/* group_delay_samples of qrs.py: the group delay (samples, rounded) at the frequency of the
 * largest |H| on freqz's grid (4096 points over [0, fs/2)), as the sum of the sections' numerator
 * delays less their denominator delays. A band-pass's |H| has one peak, so every 64th point finds
 * its neighbourhood and the 129 points around that the grid's largest (the same point as a full
 * scan, at a twentieth of the cost: this runs at start-up on the device). */
int ecgb_qrs_group_delay(const double *sos, double fs)
{
    int k, s, best = 0, lo, hi;
    double best_mag = -1.0, w, gd = 0.0;
    (void)fs;
    for (k = 0; k < FREQZ_N; k += 64) {
        double mag = magnitude_at(sos, k);
        if (mag > best_mag) {
            best_mag = mag;
            best = k;
        }
    }
    lo = best - 64 < 0 ? 0 : best - 64;
    hi = best + 64 > FREQZ_N - 1 ? FREQZ_N - 1 : best + 64;
    best_mag = -1.0;
    for (k = lo; k <= hi; ++k) {
        double mag = magnitude_at(sos, k);
        if (mag > best_mag) {
            best_mag = mag;
            best = k;
        }
    }
    w = PI * best / FREQZ_N;
    for (s = 0; s < 2; ++s) {
        cx b, a, db, da;
        poly_at(sos + 6 * s, w, &b, &db);
        poly_at(sos + 6 * s + 3, w, &a, &da);
        gd += cx_div(db, b).re - cx_div(da, a).re;
    }
    return round_half_even(gd);
}

static double sos_step(const double *sos, double zi[2][2], double x)
{
    int s;
    for (s = 0; s < 2; ++s) { /* scipy's sosfilt, transposed direct form II */
        const double *c = sos + 6 * s;
        double y = c[0] * x + zi[s][0];
        zi[s][0] = c[1] * x - c[4] * y + zi[s][1];
        zi[s][1] = c[2] * x - c[5] * y;
        x = y;
    }
    return x;
}

/* energy_floor of qrs.py: a qrs_mv-high triangle 80 ms wide through band-pass, central difference,
 * squaring and integration; the largest integrated value. */
double ecgb_qrs_energy_floor(const double *sos, int w_int, double fs, double qrs_mv, double *scratch)
{
    int n = round_half_even(2.0 * fs), half = round_half_even(0.04 * fs), i, j;
    double zi[2][2] = {{0.0, 0.0}, {0.0, 0.0}}, y1 = 0.0, y2 = 0.0, best = -INFINITY;
    if (half < 1) half = 1;
    for (i = 0; i < w_int; ++i) scratch[i] = 0.0;
    for (i = 0; i < n; ++i) {
        int off = i - n / 2;
        double x = 0.0, y, d, acc = 0.0;
        if (off >= -half && off <= half) x = qrs_mv * (1.0 - fabs((double)off) / half);
        y = sos_step(sos, zi, x);
        d = i >= 2 ? (y - y2) * (fs / 2.0) : 0.0;
        y2 = y1;
        y1 = y;
        scratch[i % w_int] = d * d;
        for (j = 0; j < w_int; ++j) acc += scratch[j] * (1.0 / w_int);
        if (acc > best) best = acc;
    }
    return best;
}

/* ------------------------------------------------------------------ state */

int ecgb_qrs_init(ecgb_qrs_t *q, double fs, int n_leads, const ecgb_qrs_config_t *cfg)
{
    const ecgb_qrs_config_t *c;
    double hi;
    int need;
    if (!(fs >= ECGB_QRS_MIN_FS && fs <= ECGB_QRS_MAX_FS)) return -1;
    if (n_leads < 1 || n_leads > ECGB_QRS_MAX_LEADS) return -1;
    memset(q, 0, sizeof *q);
    if (cfg) q->cfg = *cfg;
    else ecgb_qrs_config_default(&q->cfg);
    c = &q->cfg;
    if (!(0.0 < c->band_low_hz && c->band_low_hz < c->band_high_hz)) return -1;
    if (!(c->integration_s > 0 && c->candidate_s > 0 && c->refractory_s > 0 && c->twave_s > 0 &&
          c->learning_s > 0 && c->locate_s > 0 && c->initial_rr_s > 0))
        return -1;
    if (c->rr_memory < 1 || c->rr_memory > ECGB_QRS_MAX_MEMORY) return -1;
    q->fs = fs;
    q->n_leads = n_leads;
    hi = c->band_high_hz < 0.45 * fs ? c->band_high_hz : 0.45 * fs;
    if (ecgb_qrs_design(fs, c->band_low_hz, hi, q->sos, q->zi0) != 0) return -1;
    q->w_int = round_half_even(c->integration_s * fs);
    if (q->w_int < 1) q->w_int = 1;
    q->r_cand = round_half_even(c->candidate_s * fs);
    if (q->r_cand < 1) q->r_cand = 1;
    q->refractory = round_half_even(c->refractory_s * fs);
    q->twave = round_half_even(c->twave_s * fs);
    q->learning = round_half_even(c->learning_s * fs);
    q->locate = round_half_even(c->locate_s * fs);
    if (q->locate < 1) q->locate = 1;
    q->delay = ecgb_qrs_group_delay(&q->sos[0][0], fs) + 1; /* band-pass + central difference */
    /* Look-back: a candidate is found r samples after it; its slope window (w), the band-pass
     * delay and two location windows reach back from there. */
    need = q->r_cand + q->w_int + q->delay + 2 * q->locate + 4;
    if (need > ECGB_QRS_RING || 2 * q->r_cand + 2 > ECGB_QRS_RING || q->w_int + 1 > ECGB_QRS_RING) return -1;
    if (q->locate > q->r_cand) return -1; /* the R-peak window must have arrived with the candidate */
    if (q->learning / (q->r_cand + 1) + 2 > ECGB_QRS_MAX_QUEUE) return -1;
    q->floor_energy = ecgb_qrs_energy_floor(&q->sos[0][0], q->w_int, fs, c->min_qrs_mv, q->scratch);
    q->learn_max = -INFINITY;
    q->last_beat = -1;
    q->anchor = -1;
    return 0;
}

double ecgb_qrs_decision_delay_s(const ecgb_qrs_t *q)
{
    return (q->delay + (q->w_int - 1) / 2.0 + q->r_cand) / q->fs;
}

void ecgb_qrs_restart(ecgb_qrs_t *q)
{
    q->clock0 = q->n;
    q->learned = 0;
    q->learn_max = -INFINITY;
    q->learn_sum = 0.0;
    q->spk0 = q->npk = 0.0;
    q->n_peaks = q->n_rr = q->has_slope = 0;
    q->last_beat = q->anchor = -1;
    q->n_queue = q->n_pending = 0;
    if (q->decided < q->n) q->decided = q->n;
}

/* ------------------------------------------------------------------ decisions */

static double lower_quartile(const double *v, int n)
{
    double s[ECGB_QRS_MAX_MEMORY], pos;
    int i, j;
    for (i = 0; i < n; ++i) { /* insertion sort */
        double x = v[i];
        for (j = i; j > 0 && s[j - 1] > x; --j) s[j] = s[j - 1];
        s[j] = x;
    }
    pos = 0.25 * (n - 1);
    i = (int)pos;
    return s[i] + (pos - i) * (s[i + 1 < n ? i + 1 : n - 1] - s[i]);
}

static double spk(const ecgb_qrs_t *q) { return q->n_peaks ? lower_quartile(q->peaks, q->n_peaks) : q->spk0; }

static double threshold(const ecgb_qrs_t *q)
{
    return q->npk + q->cfg.threshold_fraction * (spk(q) - q->npk);
}

static double rr_mean(const ecgb_qrs_t *q)
{
    int64_t s = 0;
    int i;
    if (!q->n_rr) return q->cfg.initial_rr_s * q->fs;
    for (i = 0; i < q->n_rr; ++i) s += q->rr[i];
    return (double)s / q->n_rr;
}

static double deadline(const ecgb_qrs_t *q)
{
    int64_t base = q->last_beat > q->anchor ? q->last_beat : q->anchor;
    return (double)base + q->cfg.searchback_rr * rr_mean(q);
}

static int is_twave(const ecgb_qrs_t *q, const ecgb_qrs_cand_t *c, int64_t since)
{
    return since >= 0 && since < q->twave && q->has_slope && c->slope < q->cfg.twave_slope_ratio * q->slope_last;
}

static void push_capped(double *v, int *n, int cap, double x)
{
    if (*n == cap) {
        memmove(v, v + 1, (size_t)(cap - 1) * sizeof *v);
        --*n;
    }
    v[(*n)++] = x;
}

static void accept(ecgb_qrs_t *q, const ecgb_qrs_cand_t *c, uint8_t flag)
{
    int cap = q->cfg.rr_memory, i, j;
    uint8_t flags = flag;
    if (q->last_beat >= 0) {
        if (q->n_rr == cap) {
            memmove(q->rr, q->rr + 1, (size_t)(cap - 1) * sizeof q->rr[0]);
            --q->n_rr;
        }
        q->rr[q->n_rr++] = c->n - q->last_beat;
    }
    push_capped(q->peaks, &q->n_peaks, cap, c->height);
    q->last_beat = c->n;
    q->slope_last = c->slope;
    q->has_slope = 1;
    for (i = j = 0; i < q->n_pending; ++i)
        if (q->pending[i].n > c->n) q->pending[j++] = q->pending[i];
    q->n_pending = j;
    if (c->conc) flags |= ECGB_BEAT_CONCEALED;
    if (q->npk > q->cfg.noise_ratio * spk(q)) flags |= ECGB_BEAT_NOISY;
    if (q->n_out < ECGB_QRS_MAX_OUT) {
        q->out[q->n_out].sample = c->peak;
        q->out[q->n_out].flags = flags;
        q->n_out++;
    } else {
        q->dropped_beats++;
    }
}

/* _searchback_before: search back while the search-back deadline lies before sample n. */
static void searchback_before(ecgb_qrs_t *q, int64_t n)
{
    while (q->last_beat >= 0 && (double)n > deadline(q)) {
        double dl = deadline(q), thr2 = 0.5 * threshold(q), lim = thr2 > q->floor_energy ? thr2 : q->floor_energy;
        int i, j, best = -1;
        for (i = 0; i < q->n_pending; ++i) {
            const ecgb_qrs_cand_t *c = &q->pending[i];
            int64_t since = c->n - q->last_beat;
            if ((double)c->n > dl || since < q->refractory || is_twave(q, c, since) || c->height <= lim) continue;
            if (best < 0 || c->height > q->pending[best].height) best = i;
        }
        if (best < 0) {
            /* nothing to take: the beat level falls to the tallest candidate since the last beat
             * (at most half the level, never below the floor) */
            double tallest = 0.0, half = 0.5 * spk(q), lvl;
            int seen = 0;
            for (i = 0; i < q->n_pending; ++i)
                if ((double)q->pending[i].n <= dl && (!seen || q->pending[i].height > tallest)) {
                    tallest = q->pending[i].height;
                    seen = 1;
                }
            lvl = half < tallest ? half : tallest;
            q->spk0 = lvl > q->floor_energy ? lvl : q->floor_energy;
            q->n_peaks = 0;
            if (0.5 * q->spk0 < q->npk) q->npk = 0.5 * q->spk0;
            for (i = j = 0; i < q->n_pending; ++i)
                if ((double)q->pending[i].n > dl) q->pending[j++] = q->pending[i];
            q->n_pending = j;
            q->anchor = (int64_t)ceil(dl);
            continue;
        }
        {
            ecgb_qrs_cand_t c = q->pending[best];
            accept(q, &c, ECGB_BEAT_SEARCHBACK);
        }
    }
}

static void classify(ecgb_qrs_t *q, const ecgb_qrs_cand_t *c)
{
    int64_t since = q->last_beat >= 0 ? c->n - q->last_beat : -1;
    double thr = threshold(q);
    if (since >= 0 && since < q->refractory) return; /* neither beat nor noise */
    if (c->height > (thr > q->floor_energy ? thr : q->floor_energy) && !is_twave(q, c, since)) {
        accept(q, c, 0);
        return;
    }
    q->npk = 0.125 * c->height + 0.875 * q->npk;
    if (q->last_beat < 0) return; /* search-back looks back to the last beat: before the first, nothing is kept */
    if (q->n_pending == ECGB_QRS_MAX_PENDING) {
        memmove(q->pending, q->pending + 1, (ECGB_QRS_MAX_PENDING - 1) * sizeof q->pending[0]);
        q->n_pending--;
        q->dropped_pending++;
    }
    q->pending[q->n_pending++] = *c;
}

/* _decide: learn the thresholds once the learning period is in, then decide the candidates
 * before `upto` in time order, searching back before each and at the end. */
static void decide(ecgb_qrs_t *q, int64_t upto, int final)
{
    int i, j;
    if (!q->learned) {
        int64_t end = q->n < q->clock0 + q->learning ? q->n : q->clock0 + q->learning;
        if (q->n - q->clock0 < q->learning && !final) return;
        if (end - q->clock0 <= 0) return;
        q->spk0 = q->learn_max / 3.0;
        q->npk = q->learn_sum / (double)(end - q->clock0) / 2.0;
        q->learned = 1;
        if (q->decided < q->clock0) q->decided = q->clock0;
    }
    if (upto > q->n) upto = q->n;
    for (i = 0; i < q->n_queue && q->queue[i].n < upto; ++i) {
        ecgb_qrs_cand_t c = q->queue[i];
        searchback_before(q, c.n);
        classify(q, &c);
    }
    for (j = 0; i < q->n_queue; ++i) q->queue[j++] = q->queue[i];
    q->n_queue = j;
    if (q->decided < upto) q->decided = upto;
    searchback_before(q, q->decided);
}

/* Candidate test at integrated sample c with samples up to avail (exclusive) present: strict
 * maximum over [c - r, c), maximum over (c, c + r], positive. */
static int is_candidate(const ecgb_qrs_t *q, int64_t c, int64_t avail)
{
    double centre = q->integ[ring(c)];
    int64_t j;
    if (!(centre > 0.0)) return 0;
    for (j = c - q->r_cand; j < c; ++j)
        if (j >= 0 && !(centre > q->integ[ring(j)])) return 0;
    for (j = c + 1; j <= c + q->r_cand && j < avail; ++j)
        if (!(centre >= q->integ[ring(j)])) return 0;
    return 1;
}

/* A candidate's height, slope and R-peak position (_candidates and _locate). */
static void make_candidate(ecgb_qrs_t *q, int64_t c, ecgb_qrs_cand_t *out)
{
    int64_t lo_e = c - q->w_int + 1, steep, centre, lo, hi, j, k_pos = 0, k_neg = 0;
    int lead = 0, l, m, i, kk;
    double slope = -INFINITY, med, best_lead = -INFINITY;
    const float *x;
    if (lo_e < 0) lo_e = 0;
    steep = lo_e;
    for (j = lo_e; j <= c; ++j) {
        double t = q->total[ring(j)];
        if (t > slope) {
            slope = t;
            steep = j;
        }
    }
    if (q->n_leads > 1) {
        for (l = 0; l < q->n_leads; ++l) {
            double s = 0.0;
            for (j = lo_e; j <= c; ++j) s += q->energy[l][ring(j)];
            if (s > best_lead) {
                best_lead = s;
                lead = l;
            }
        }
    }
    centre = steep - q->delay; /* the steepest slope, in input time */
    lo = centre - q->locate;
    if (lo < 0) lo = 0;
    hi = centre + q->locate + 1;
    if (hi > q->n) hi = q->n;
    x = q->located[lead];
    m = (int)(hi - lo);
    for (i = 0; i < m; ++i) { /* insertion sort for the median (np.partition's element) */
        double v = x[ring(lo + i)];
        for (kk = i; kk > 0 && q->scratch[kk - 1] > v; --kk) q->scratch[kk] = q->scratch[kk - 1];
        q->scratch[kk] = v;
    }
    med = m > 0 ? q->scratch[m / 2] : 0.0;
    {
        double dmax = -INFINITY, dmin = INFINITY;
        for (i = 0; i < m; ++i) {
            double d = (double)x[ring(lo + i)] - med;
            if (d > dmax) {
                dmax = d;
                k_pos = i;
            }
            if (d < dmin) {
                dmin = d;
                k_neg = i;
            }
        }
        /* the R wave is the positive peak unless the complex is mainly negative */
        out->peak = lo + (-dmin > q->cfg.negative_ratio * dmax ? k_neg : k_pos);
    }
    out->n = c;
    out->height = q->integ[ring(c)];
    out->slope = slope;
    out->conc = 0;
    out->conc_to = out->peak - q->locate;
    if (out->conc_to < 0) out->conc_to = 0;
    out->conc_end = out->peak + q->locate + 1;
    if (out->conc_end > c + q->r_cand) out->conc_end = c + q->r_cand; /* the look-ahead: chunk-invariant */
    for (; out->conc_to < out->conc_end && out->conc_to < q->n; out->conc_to++)
        if (q->concealed[ring(out->conc_to)]) out->conc = 1;
}

static void conceal_update(ecgb_qrs_cand_t *c, int n_c, int64_t n, uint8_t conc)
{
    int i;
    for (i = 0; i < n_c; ++i) {
        if (c[i].conc_to == n && n < c[i].conc_end) {
            if (conc) c[i].conc = 1;
            c[i].conc_to = n + 1;
        }
    }
}

static void queue_candidate(ecgb_qrs_t *q, int64_t c)
{
    /* a full queue: decide what lies before c now (the beats do not depend on when) */
    if (q->n_queue == ECGB_QRS_MAX_QUEUE) decide(q, c, 0);
    if (q->n_queue == ECGB_QRS_MAX_QUEUE) { /* not learned yet: cannot happen (init checks) */
        memmove(q->queue, q->queue + 1, (ECGB_QRS_MAX_QUEUE - 1) * sizeof q->queue[0]);
        q->n_queue--;
    }
    make_candidate(q, c, &q->queue[q->n_queue++]);
}

/* One sample time through the per-sample stages (push). */
static void push_one(ecgb_qrs_t *q, const float *x, uint8_t conc)
{
    int64_t n = q->n, c;
    int l, r = ring(n), s;
    double total = 0.0, sum, prev;
    float v[ECGB_QRS_MAX_LEADS];
    for (l = 0; l < q->n_leads; ++l) {
        v[l] = x[l];
        if (!isfinite(v[l])) { /* hold the last finite value; the sample counts as concealed */
            v[l] = q->held[l];
            conc = 1;
        }
        q->held[l] = v[l];
    }
    if (!q->started) {
        for (l = 0; l < q->n_leads; ++l)
            for (s = 0; s < 2; ++s) {
                q->zi[l][s][0] = q->zi0[s][0] * (double)v[l];
                q->zi[l][s][1] = q->zi0[s][1] * (double)v[l];
            }
        q->started = 1;
    }
    for (l = 0; l < q->n_leads; ++l) {
        double y = sos_step(&q->sos[0][0], q->zi[l], (double)v[l]);
        double d = (y - q->prev2[l][0]) * (q->fs / 2.0), e = d * d;
        q->prev2[l][0] = q->prev2[l][1];
        q->prev2[l][1] = y;
        total = l == 0 ? e : total + e;
        if (q->n_leads > 1) q->energy[l][r] = e;
        q->located[l][r] = v[l];
    }
    /* moving-window integration as a difference of the running sum (as the Python's cumsum) */
    prev = n > 0 ? q->csum[ring(n - 1)] : 0.0;
    sum = prev + total;
    {
        double old = n >= q->w_int ? q->csum[ring(n - q->w_int)] : 0.0;
        q->csum[r] = sum;
        q->integ[r] = (sum - old) / q->w_int;
    }
    q->total[r] = total;
    q->concealed[r] = conc;
    q->n = n + 1;
    conceal_update(q->queue, q->n_queue, n, conc);
    conceal_update(q->pending, q->n_pending, n, conc);
    if (!q->learned && n >= q->clock0 && n < q->clock0 + q->learning) {
        double iv = q->integ[r];
        if (iv > q->learn_max) q->learn_max = iv;
        q->learn_sum += iv;
    }
    c = n - q->r_cand; /* its look-ahead is complete now */
    if (c >= 0 && c >= q->clock0 && c >= q->decided && is_candidate(q, c, q->n)) queue_candidate(q, c);
}

static int drain(ecgb_qrs_t *q, ecgb_beat_t *out, int max_out)
{
    int k = q->n_out < max_out ? q->n_out : max_out, i;
    if (k <= 0) return 0;
    for (i = 0; i < k; ++i) out[i] = q->out[i];
    memmove(q->out, q->out + k, (size_t)(q->n_out - k) * sizeof q->out[0]);
    q->n_out -= k;
    return k;
}

int ecgb_qrs_push(ecgb_qrs_t *q, const float *samples_mv, int n, const uint8_t *concealed,
                  ecgb_beat_t *out, int max_out)
{
    int t;
    if (!q->finished && n > 0) {
        for (t = 0; t < n; ++t)
            push_one(q, samples_mv + (size_t)t * (size_t)q->n_leads, (uint8_t)(concealed && concealed[t] ? 1 : 0));
        decide(q, q->n - q->r_cand, 0);
    }
    return drain(q, out, max_out);
}

int ecgb_qrs_finish(ecgb_qrs_t *q, ecgb_beat_t *out, int max_out)
{
    if (!q->finished) {
        int64_t c = q->n - q->r_cand;
        q->finished = 1;
        /* the last candidates, their look-ahead cut by the end of the record */
        for (; c < q->n; ++c)
            if (c >= 0 && c >= q->clock0 && c >= q->decided && is_candidate(q, c, q->n)) queue_candidate(q, c);
        decide(q, q->n, 1);
    }
    return drain(q, out, max_out);
}
