/* ecgsim's sample source: raw little-endian integers, interleaved, int16 or int32. The WFDB
 * reading is the host's (ecgedge.data.device_samples, through wfdb), so the device plays every record
 * the host reads; see firmware_bridge/README.md. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sim.h"

#define FAIL(...)                                                                             \
    do {                                                                                      \
        snprintf(err, err_len, __VA_ARGS__);                                                  \
        return -1;                                                                            \
    } while (0)

int source_open_raw(sim_source *src, const char *path, raw_width width, double fs,
                    unsigned n_leads, const raw_calibration *cal, const char *lead_names,
                    long rail, char *err, size_t err_len)
{
    static const char *const twelve[12] = {"I", "II", "III", "aVR", "aVL", "aVF",
                                           "V1", "V2", "V3", "V4", "V5", "V6"};
    unsigned i;
    memset(src, 0, sizeof *src);
    if (n_leads < 1 || n_leads > ECGB_MAX_LEADS)
        FAIL("--leads must be 1..%u", ECGB_MAX_LEADS);
    if (!(fs > 0))
        FAIL("--fs must be > 0");
    if ((cal->n_gains != 1 && cal->n_gains != n_leads) ||
        (cal->n_baselines > 1 && cal->n_baselines != n_leads))
        FAIL("--gain-uv and --baseline take one value, or one per lead (%u)", n_leads);
    snprintf(src->name, sizeof src->name, "%s", path);
    src->width = width;
    src->n_sig = n_leads;
    src->fs = fs;
    src->wire_format = width == RAW_INT16 ? ECGB_FMT_INT16 : ECGB_FMT_INT24;
    src->rail = rail != 0 ? (int32_t)rail : width == RAW_INT16 ? 32767 : 8388607;
    for (i = 0; i < n_leads; ++i) {
        const char *name = n_leads == 12 ? twelve[i] : "";
        size_t len = strlen(name);
        double g = cal->gain_uv[cal->n_gains == 1 ? 0 : i];
        if (!(g > 0))
            FAIL("--gain-uv: lead %u has gain %g uV per ADC unit; must be > 0", i, g);
        src->gain_uv[i] = (float)g;
        src->baseline[i] = cal->n_baselines == 0 ? 0
                           : (int32_t)cal->baseline[cal->n_baselines == 1 ? 0 : i];
        if (lead_names) {
            len = strcspn(lead_names, ",");
            name = lead_names;
            lead_names = lead_names[len] ? lead_names + len + 1 : lead_names + len;
        }
        snprintf(src->lead_names[i], sizeof src->lead_names[i], "%.*s", (int)len, name);
        src->lead_ids[i] = (uint8_t)ecgb_lead_code(src->lead_names[i]);
    }
    src->fp = fopen(path, "rb");
    if (!src->fp)
        FAIL("%s: %s", path, strerror(errno));
    return 0;
}

int source_read(sim_source *src, int32_t *out)
{
    uint8_t b[4 * ECGB_MAX_LEADS];
    unsigned w = (unsigned)src->width, i;
    size_t want = (size_t)w * src->n_sig;
    if (fread(b, 1, want, src->fp) != want)
        return ferror(src->fp) ? -1 : 0; /* a partial last row is not a sample */
    for (i = 0; i < src->n_sig; ++i) {
        const uint8_t *p = b + (size_t)i * w;
        uint32_t u = (uint32_t)p[0] | ((uint32_t)p[1] << 8);
        if (w == 4)
            u |= ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
        else if (u & 0x8000u)
            u |= 0xFFFF0000u;
        /* two's complement without implementation-defined conversion */
        out[i] = (u & 0x80000000u) ? -(int32_t)(~u) - 1 : (int32_t)u;
    }
    return 1;
}

int source_rewind(sim_source *src)
{
    return fseek(src->fp, 0L, SEEK_SET);
}

void source_close(sim_source *src)
{
    if (src->fp)
        fclose(src->fp);
    src->fp = NULL;
}
