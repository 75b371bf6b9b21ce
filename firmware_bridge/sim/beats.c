/*
 * The device's own beats: ecgsim runs the C QRS detector (src/ecgb_qrs.c, the port of
 * ecgedge/beats/qrs.py) on the samples it sends and sends the beats in beat frames (PROTOCOL.md 2c),
 * right after the sample frame whose samples decided them (--beats, and always with --classify).
 *
 * The detector reads one lead, the one ecgedge stream's monitor detects beats on when the model has
 * it: lead II (MLII counts as II), else the stream's first lead; its samples in mV, NaN while the
 * lead's electrode is off (held and flagged concealed, as the host does). A run of sample times the
 * device did not send (invalid readings, a --disconnect-after pause) restarts the detector's
 * thresholds (ecgb_qrs_restart), as the host's monitor does after a gap it does not conceal.
 */
#include <math.h>
#include <string.h>

#include "sim.h"

static ecgb_qrs_t qrs; /* one stream per ecgsim */

int beats_open(sim_beats *b, const sim_source *src, uint8_t stream_id, char *err, size_t err_len)
{
    unsigned i;
    memset(b, 0, sizeof *b);
    b->lead = 0;
    for (i = 0; i < src->n_sig; ++i)
        if (src->lead_ids[i] == ECGB_LEAD_II || src->lead_ids[i] == ECGB_LEAD_MLII) {
            b->lead = i;
            break;
        }
    if (ecgb_qrs_init(&qrs, src->fs, 1, NULL) != 0) {
        snprintf(err, err_len, "--beats: the QRS detector runs at 100..%d Hz, not %g Hz", ECGB_QRS_MAX_FS, src->fs);
        return -1;
    }
    b->qrs = &qrs;
    b->gain_mv = src->gain_uv[b->lead] / 1000.0f;
    b->baseline = src->baseline[b->lead];
    b->frame.stream_id = stream_id;
    b->frame.fs_mhz = (uint32_t)(src->fs * 1000.0 + 0.5);
    b->frame.leads = (uint16_t)(1u << b->lead);
    b->gap = 1;
    b->on = 1;
    return 0;
}

void beats_push(sim_beats *b, const int32_t *adc, unsigned lead_off, unsigned long long sample_no)
{
    if (!b->on)
        return;
    if (b->gap) { /* a new segment: detector sample qrs.n is this stream sample */
        if (b->n_seg == SIM_BEAT_SEGMENTS) {
            memmove(b->seg, b->seg + 1, (SIM_BEAT_SEGMENTS - 1) * sizeof b->seg[0]);
            b->n_seg--;
        }
        b->seg[b->n_seg].det_n = b->qrs->n + (int64_t)b->n_chunk;
        b->seg[b->n_seg].stream = sample_no;
        b->n_seg++;
        if (b->qrs->n + (int64_t)b->n_chunk > 0)
            b->restart_pending = 1; /* after the samples in hand reach the detector */
        if (!b->started)
            b->from = sample_no;
        b->started = 1;
        b->gap = 0;
    }
    b->chunk[b->n_chunk++] = (lead_off >> b->lead) & 1u ? NAN : (float)(adc[b->lead] - b->baseline) * b->gain_mv;
    b->chunk_end = sample_no + 1;
}

void beats_gap(sim_beats *b)
{
    b->gap = 1;
}

static uint64_t stream_sample(const sim_beats *b, int64_t det)
{
    unsigned k = b->n_seg;
    while (k > 1 && det < b->seg[k - 1].det_n)
        --k;
    return b->seg[k - 1].stream + (uint64_t)(det - b->seg[k - 1].det_n);
}

int beats_frame(sim_beats *b, ecgb_beats *out)
{
    ecgb_beat_t got[ECGB_QRS_MAX_OUT];
    int n, i;
    if (!b->on || (b->n_chunk == 0 && !b->restart_pending))
        return 0;
    /* the samples before a restart go in first, then the thresholds re-learn */
    if (b->restart_pending) {
        int64_t cut = b->seg[b->n_seg - 1].det_n - b->qrs->n;
        if (cut > 0) {
            n = ecgb_qrs_push(b->qrs, b->chunk, (int)cut, NULL, got, ECGB_QRS_MAX_OUT);
            memmove(b->chunk, b->chunk + cut, (size_t)((int64_t)b->n_chunk - cut) * sizeof b->chunk[0]);
            b->n_chunk -= (unsigned)cut;
            for (i = 0; i < n && b->frame.n_beats < ECGB_BEATS_MAX; ++i) {
                b->frame.sample[b->frame.n_beats] = stream_sample(b, got[i].sample);
                b->frame.flags[b->frame.n_beats++] = got[i].flags;
            }
        }
        ecgb_qrs_restart(b->qrs);
        b->restart_pending = 0;
    }
    n = ecgb_qrs_push(b->qrs, b->chunk, (int)b->n_chunk, NULL, got, ECGB_QRS_MAX_OUT);
    b->n_chunk = 0;
    for (i = 0; i < n && b->frame.n_beats < ECGB_BEATS_MAX; ++i) {
        b->frame.sample[b->frame.n_beats] = stream_sample(b, got[i].sample);
        b->frame.flags[b->frame.n_beats++] = got[i].flags;
    }
    b->beats_found += (unsigned long long)n;
    if (b->frame.n_beats == 0 || b->chunk_end <= b->from)
        return 0;
    b->frame.seq = b->seq++;
    b->frame.from_sample = b->from;
    b->frame.end_sample = b->chunk_end;
    *out = b->frame;
    b->from = b->chunk_end;
    b->frame.n_beats = 0;
    return 1;
}

void beats_discard(sim_beats *b)
{
    /* the frame in hand is lost (a disconnect): its samples never reach the detector */
    b->n_chunk = 0;
    b->frame.n_beats = 0;
    b->gap = 1;
}
