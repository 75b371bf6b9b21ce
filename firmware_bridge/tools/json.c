#include "json.h"

void json_frame(FILE *out, const ecgb_frame *f, const int32_t *samples)
{
    unsigned i, t;
    fprintf(out, "{\"frame\": {\"version\": %u, \"stream_id\": %u, \"seq\": %u, ", f->version,
            f->stream_id, f->seq);
    fprintf(out, "\"first_sample\": %llu, \"fs_mhz\": %lu, \"fs_hz\": %.17g, ",
            (unsigned long long)f->first_sample, (unsigned long)f->fs_mhz, f->fs_mhz / 1000.0);
    fprintf(out, "\"gain_uv\": %.17g, \"baseline\": %ld, \"sample_format\": \"%s\", ",
            (double)f->gain_uv, (long)f->baseline,
            f->sample_format == ECGB_FMT_INT16 ? "int16" : "int24");
    /* Per lead: v2's table, or v1's one gain and baseline for every lead. */
    fprintf(out, "\"gains_uv\": [");
    for (i = 0; i < f->n_leads; ++i)
        fprintf(out, "%s%.17g", i ? ", " : "",
                (double)(f->version == ECGB_VERSION_2 ? f->lead_gain_uv[i] : f->gain_uv));
    fprintf(out, "], \"baselines\": [");
    for (i = 0; i < f->n_leads; ++i)
        fprintf(out, "%s%ld", i ? ", " : "",
                (long)(f->version == ECGB_VERSION_2 ? f->lead_baseline[i] : f->baseline));
    fprintf(out, "], ");
    fprintf(out, "\"n_leads\": %u, \"lead_codes\": [", f->n_leads);
    for (i = 0; i < f->n_leads; ++i)
        fprintf(out, "%s%u", i ? ", " : "", f->lead_ids[i]);
    fprintf(out, "], \"lead_ids\": [");
    for (i = 0; i < f->n_leads; ++i)
        fprintf(out, "%s\"%s\"", i ? ", " : "", ecgb_lead_name(f->lead_ids[i]));
    fprintf(out, "], \"device_flags\": %u, \"lead_off\": %u, \"samples_per_lead\": %u, ",
            f->device_flags, f->lead_off, f->samples_per_lead);
    fprintf(out, "\"samples\": [");
    for (i = 0; i < f->n_leads; ++i) {
        fprintf(out, "%s[", i ? ", " : "");
        for (t = 0; t < f->samples_per_lead; ++t)
            fprintf(out, "%s%ld", t ? ", " : "", (long)samples[t * f->n_leads + i]);
        fprintf(out, "]");
    }
    fprintf(out, "]}}");
}
