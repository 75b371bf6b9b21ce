/* Sample sources for ecgsim: WFDB records (formats 16, 212, 24, with byte offsets) and raw
 * int16 files. Samples come out as the raw ADC integers stored in the file. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define FAIL(...)                                                                             \
    do {                                                                                      \
        snprintf(err, err_len, __VA_ARGS__);                                                  \
        return -1;                                                                            \
    } while (0)

/* Split a header line into whitespace-separated tokens (in place). Returns the count. */
static unsigned tokenize(char *line, char **tok, unsigned max, char **rest_after)
{
    unsigned n = 0;
    char *p = line;
    while (n < max) {
        while (*p && isspace((unsigned char)*p))
            ++p;
        if (!*p)
            break;
        tok[n++] = p;
        while (*p && !isspace((unsigned char)*p))
            ++p;
        if (*p)
            *p++ = '\0';
        if (rest_after && n == 8) {
            while (*p && isspace((unsigned char)*p))
                ++p;
            *rest_after = p;
            break;
        }
    }
    return n;
}

/* Next header line that is neither blank nor a comment, without its newline. */
static char *next_line(FILE *fp, char *buf, size_t len)
{
    while (fgets(buf, (int)len, fp)) {
        char *p = buf;
        buf[strcspn(buf, "\r\n")] = '\0';
        while (isspace((unsigned char)*p))
            ++p;
        if (*p && *p != '#')
            return p;
    }
    return NULL;
}

static void file_reset(sim_file *f)
{
    f->have_pending = 0;
    f->pending = 0;
}

static int open_data_file(sim_file *f, char *err, size_t err_len)
{
    f->fp = fopen(f->path, "rb");
    if (!f->fp)
        FAIL("%s: %s", f->path, strerror(errno));
    if (fseek(f->fp, f->offset, SEEK_SET) != 0)
        FAIL("%s: cannot seek to byte %ld", f->path, f->offset);
    file_reset(f);
    return 0;
}

int source_open_wfdb(sim_source *src, const char *record, char *err, size_t err_len)
{
    char hea[4096], dir[4096], buf[4096], *line, *tok[9], *desc;
    const char *slash;
    unsigned n, i;
    double gain_common = 0, units_common = 0;
    long baseline_common = 0;
    FILE *fp;

    memset(src, 0, sizeof *src);
    n = (unsigned)strlen(record);
    if (n > 4 && strcmp(record + n - 4, ".hea") == 0)
        snprintf(hea, sizeof hea, "%s", record);
    else
        snprintf(hea, sizeof hea, "%s.hea", record);
    slash = strrchr(hea, '/');
    if (slash)
        snprintf(dir, sizeof dir, "%.*s/", (int)(slash - hea), hea);
    else
        dir[0] = '\0';
    fp = fopen(hea, "r");
    if (!fp)
        FAIL("%s: %s", hea, strerror(errno));

    /* Record line: name[/segments] n_sig [fs[/counter][(base)]] [n_samples ...] */
    line = next_line(fp, buf, sizeof buf);
    if (!line || (n = tokenize(line, tok, 9, NULL)) < 2) {
        fclose(fp);
        FAIL("%s: no record line", hea);
    }
    if (strchr(tok[0], '/')) {
        fclose(fp);
        FAIL("%s: multi-segment records are not supported", hea);
    }
    snprintf(src->name, sizeof src->name, "%s", tok[0]);
    src->n_sig = (unsigned)strtoul(tok[1], NULL, 10);
    src->fs = n > 2 ? strtod(tok[2], NULL) : 250.0; /* WFDB's default */
    src->n_samples = n > 3 ? strtoll(tok[3], NULL, 10) : -1;
    if (src->n_sig < 1 || src->n_sig > ECGB_MAX_LEADS) {
        fclose(fp);
        FAIL("%s: %u signals; the protocol carries 1..%u leads", hea, src->n_sig, ECGB_MAX_LEADS);
    }
    if (!(src->fs > 0)) {
        fclose(fp);
        FAIL("%s: sampling rate must be > 0 Hz", hea);
    }

    src->wire_format = ECGB_FMT_INT16;
    src->rail = 0;
    for (i = 0; i < src->n_sig; ++i) {
        char *fmt_end, *p;
        long fmt, offset = 0, adc_zero = 0, baseline = 0;
        double gain, units = 1000.0; /* uV per unit: mV unless stated */
        int have_baseline = 0;
        sim_file *f;

        desc = NULL;
        line = next_line(fp, buf, sizeof buf);
        if (!line || (n = tokenize(line, tok, 9, &desc)) < 2) {
            fclose(fp);
            FAIL("%s: signal %u: missing signal line", hea, i);
        }
        /* format[xsamples][:skew][+offset] */
        fmt = strtol(tok[1], &fmt_end, 10);
        for (p = fmt_end; *p; ++p) {
            if (*p == 'x' || (*p == ':' && strtol(p + 1, NULL, 10) != 0)) {
                fclose(fp);
                FAIL("%s: signal %u: format %s (multiple samples per frame or skew) is not supported",
                     hea, i, tok[1]);
            }
            if (*p == '+')
                offset = strtol(p + 1, NULL, 10);
        }
        if (fmt != 16 && fmt != 212 && fmt != 24) {
            fclose(fp);
            FAIL("%s: signal %u: WFDB format %ld is not supported (16, 212, 24 are)", hea, i, fmt);
        }
        /* gain[(baseline)][/units]; gain 0 or missing means 200 */
        gain = n > 2 ? strtod(tok[2], &p) : 0.0;
        if (n > 2 && *p == '(') {
            baseline = strtol(p + 1, &p, 10);
            have_baseline = 1;
            if (*p == ')')
                ++p;
        }
        if (n > 2 && *p == '/') {
            ++p;
            if (strcmp(p, "uV") == 0 || strcmp(p, "\xc2\xb5V") == 0)
                units = 1.0;
            else if (strcmp(p, "V") == 0)
                units = 1e6;
            else if (strcmp(p, "mV") != 0) {
                fclose(fp);
                FAIL("%s: signal %u: units '%s' are not a voltage", hea, i, p);
            }
        }
        if (gain == 0)
            gain = 200.0;
        adc_zero = n > 4 ? strtol(tok[4], NULL, 10) : 0;
        if (!have_baseline)
            baseline = adc_zero;
        if (i == 0) {
            gain_common = gain;
            units_common = units;
            baseline_common = baseline;
        } else if (gain != gain_common || units != units_common || baseline != baseline_common) {
            fclose(fp);
            FAIL("%s: signal %u has gain %g (baseline %ld) but signal 0 has %g (%ld); "
                 "protocol v1 carries one gain and baseline per frame",
                 hea, i, gain, baseline, gain_common, baseline_common);
        }
        snprintf(src->lead_names[i], sizeof src->lead_names[i], "%s",
                 desc && *desc ? desc : "");
        src->lead_ids[i] = (uint8_t)ecgb_lead_code(src->lead_names[i]);

        f = src->n_files ? &src->files[src->n_files - 1] : NULL;
        if (!f || strcmp(f->path + strlen(dir), tok[0]) != 0 || f->format != fmt) {
            f = &src->files[src->n_files++];
            snprintf(f->path, sizeof f->path, "%s%s", dir, tok[0]);
            f->format = (int)fmt;
            f->offset = offset;
            f->first_sig = i;
        }
        f->n_sig++;
        if (fmt == 24)
            src->wire_format = ECGB_FMT_INT24;
        {
            int32_t rail = fmt == 212 ? 2047 : fmt == 16 ? 32767 : 8388607;
            if (rail > src->rail)
                src->rail = rail;
        }
    }
    fclose(fp);
    src->gain_uv = (float)(units_common / gain_common);
    src->baseline = (int32_t)baseline_common;
    for (i = 0; i < src->n_files; ++i)
        if (open_data_file(&src->files[i], err, err_len) != 0)
            return -1;
    return 0;
}

int source_open_raw(sim_source *src, const char *path, double fs, unsigned n_leads, double gain_uv,
                    long baseline, const char *lead_names, char *err, size_t err_len)
{
    static const char *const twelve[12] = {"I", "II", "III", "aVR", "aVL", "aVF",
                                           "V1", "V2", "V3", "V4", "V5", "V6"};
    unsigned i;
    memset(src, 0, sizeof *src);
    if (n_leads < 1 || n_leads > ECGB_MAX_LEADS)
        FAIL("--leads must be 1..%u", ECGB_MAX_LEADS);
    if (!(fs > 0) || !(gain_uv > 0))
        FAIL("--fs and --gain-uv must be > 0");
    snprintf(src->name, sizeof src->name, "%s", path);
    src->n_sig = n_leads;
    src->fs = fs;
    src->gain_uv = (float)gain_uv;
    src->baseline = (int32_t)baseline;
    src->rail = 32767;
    src->wire_format = ECGB_FMT_INT16;
    src->n_samples = -1;
    for (i = 0; i < n_leads; ++i) {
        const char *name = n_leads == 12 ? twelve[i] : "";
        size_t len = strlen(name);
        if (lead_names) {
            len = strcspn(lead_names, ",");
            name = lead_names;
            lead_names = lead_names[len] ? lead_names + len + 1 : lead_names + len;
        }
        snprintf(src->lead_names[i], sizeof src->lead_names[i], "%.*s", (int)len, name);
        src->lead_ids[i] = (uint8_t)ecgb_lead_code(src->lead_names[i]);
    }
    src->n_files = 1;
    snprintf(src->files[0].path, sizeof src->files[0].path, "%s", path);
    src->files[0].format = 16;
    src->files[0].n_sig = n_leads;
    return open_data_file(&src->files[0], err, err_len);
}

/* One sample of a file's flattened (frame-major) sample stream. */
static int read_one(sim_file *f, int32_t *v)
{
    uint8_t b[3];
    size_t got;
    if (f->format == 16) {
        if (fread(b, 1, 2, f->fp) != 2)
            return 0;
        *v = (int32_t)(b[0] | (b[1] << 8));
        if (*v >= 0x8000)
            *v -= 0x10000;
        return 1;
    }
    if (f->format == 24) {
        if (fread(b, 1, 3, f->fp) != 3)
            return 0;
        *v = (int32_t)((uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16));
        if (*v >= 0x800000)
            *v -= 0x1000000;
        return 1;
    }
    /* 212: two 12-bit samples in 3 bytes; byte 1 holds the high nibbles (A low, B high). */
    if (f->have_pending) {
        f->have_pending = 0;
        *v = f->pending;
        return 1;
    }
    got = fread(b, 1, 3, f->fp);
    if (got < 2)
        return 0; /* an odd sample count ends with a 2-byte half triple */
    *v = (int32_t)(b[0] | ((b[1] & 0x0F) << 8));
    f->pending = (int32_t)(b[2] | ((b[1] & 0xF0) << 4));
    if (*v >= 0x800)
        *v -= 0x1000;
    if (f->pending >= 0x800)
        f->pending -= 0x1000;
    f->have_pending = got == 3;
    return 1;
}

int source_read(sim_source *src, int32_t *out)
{
    unsigned i, k;
    for (i = 0; i < src->n_files; ++i) {
        sim_file *f = &src->files[i];
        for (k = 0; k < f->n_sig; ++k)
            if (!read_one(f, &out[f->first_sig + k]))
                return ferror(f->fp) ? -1 : 0;
    }
    return 1;
}

int source_rewind(sim_source *src)
{
    unsigned i;
    for (i = 0; i < src->n_files; ++i) {
        if (fseek(src->files[i].fp, src->files[i].offset, SEEK_SET) != 0)
            return -1;
        file_reset(&src->files[i]);
    }
    return 0;
}

void source_close(sim_source *src)
{
    unsigned i;
    for (i = 0; i < src->n_files; ++i)
        if (src->files[i].fp)
            fclose(src->files[i].fp);
    src->n_files = 0;
}
