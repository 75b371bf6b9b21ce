/* Sample sources for ecgsim: WFDB records (formats 16, 212, 24, with byte offsets) and raw
 * int16 files. Samples come out as the raw ADC integers stored in the file. The header parser
 * takes the signal-specification syntax wfdb-python reads and writes (see wfdb_header_parse). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define FAIL(...)                                                                             \
    do {                                                                                      \
        snprintf(err, err_len, __VA_ARGS__);                                                  \
        return -1;                                                                            \
    } while (0)

/* ---- WFDB header text ------------------------------------------------------------------ */

#define HEA_MAX_BYTES (1L << 20) /* real headers are < 10 KiB; this bounds a wrong file */
#define HEA_MAX_LINE 4096
#define HEA_MAX_TOKENS 64

typedef struct {
    char text[HEA_MAX_LINE]; /* the line, tokens NUL-terminated in place */
    char orig[HEA_MAX_LINE]; /* the line as written: the description keeps its inner spaces */
    char *tok[HEA_MAX_TOKENS];
    unsigned n;
} hea_line;

/* Next line that is neither blank nor a comment, split at whitespace. *pos advances past it.
 * 1: a line; 0: end of text; -1: a line too long (err set). */
static int next_line(const char **pos, hea_line *l, const char *where, char *err, size_t err_len)
{
    const char *p = *pos;
    while (*p) {
        const char *eol = p + strcspn(p, "\n");
        const char *a = p, *b = eol;
        char *q;
        size_t len;
        *pos = p = *eol ? eol + 1 : eol;
        while (a < b && isspace((unsigned char)*a))
            ++a;
        while (b > a && isspace((unsigned char)b[-1])) /* also the '\r' of "\r\n" */
            --b;
        if (a == b || *a == '#')
            continue;
        len = (size_t)(b - a);
        if (len >= HEA_MAX_LINE) {
            snprintf(err, err_len, "%s: line of %lu bytes; at most %d", where, (unsigned long)len,
                     HEA_MAX_LINE - 1);
            return -1;
        }
        memcpy(l->text, a, len);
        memcpy(l->orig, a, len);
        l->text[len] = l->orig[len] = '\0';
        l->n = 0;
        for (q = l->text; *q && l->n < HEA_MAX_TOKENS;) {
            l->tok[l->n++] = q;
            while (*q && !isspace((unsigned char)*q))
                ++q;
            while (*q && isspace((unsigned char)*q))
                *q++ = '\0';
        }
        return 1;
    }
    return 0;
}

/* The line as written from token k on (the description), or "" past the end. */
static const char *line_from(const hea_line *l, unsigned k)
{
    return k < l->n ? l->orig + (l->tok[k] - l->text) : "";
}

/* A whole-token integer ([+-]digits) within [lo, hi]. */
static int parse_long(const char *s, long lo, long hi, long *v)
{
    char *end;
    const char *d = s + (*s == '+' || *s == '-');
    if (!isdigit((unsigned char)*d))
        return 0;
    errno = 0;
    *v = strtol(s, &end, 10);
    return *end == '\0' && errno == 0 && *v >= lo && *v <= hi;
}

/* Digits at *s (advancing it) as a non-negative long; 0 when there are none or too many. */
static int scan_digits(const char **s, long *v)
{
    char *end;
    if (!isdigit((unsigned char)**s))
        return 0;
    errno = 0;
    *v = strtol(*s, &end, 10);
    *s = end;
    return errno == 0;
}

/* A decimal number at *s: [+-]digits[.digits][e[+-]digits], at least one digit; no "inf",
 * "nan" or hex, which strtod alone would take. Advances *s past it. */
static int scan_decimal(const char **s, double *v)
{
    const char *p = *s;
    int digits = 0;
    char *end;
    if (*p == '+' || *p == '-')
        ++p;
    for (; isdigit((unsigned char)*p); ++p)
        digits = 1;
    if (*p == '.')
        for (++p; isdigit((unsigned char)*p); ++p)
            digits = 1;
    if (!digits)
        return 0;
    if (*p == 'e' || *p == 'E') {
        const char *e = p + 1 + (p[1] == '+' || p[1] == '-');
        if (isdigit((unsigned char)*e))
            for (p = e; isdigit((unsigned char)*p);)
                ++p;
    }
    *v = strtod(*s, &end);
    if (end != p)
        return 0;
    *s = p;
    return 1;
}

static int same_nocase(const char *a, const char *b)
{
    for (; *a && *b; ++a, ++b)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return 0;
    return *a == *b;
}

/* Microvolts per unit, or 0 for units that are not a voltage. Letter case is not trusted:
 * PTB-XL headers of the CinC 2021 set write "mv", and no ECG is in megavolts. */
static double uv_per_unit(const char *units)
{
    if (same_nocase(units, "mV"))
        return 1000.0;
    if (same_nocase(units, "uV") || strcmp(units, "\xc2\xb5V") == 0 ||
        strcmp(units, "\xce\xbcV") == 0)
        return 1.0; /* u, micro sign U+00B5, Greek mu U+03BC */
    if (same_nocase(units, "V"))
        return 1e6;
    return 0;
}

/* A base time (hh:mm:ss[.s], mm:ss) or date (dd/mm/yyyy, CinC 2017's yyyy-mm-dd, Chapman's
 * dd-Mon-yyyy) goes to the field its shape names; either order is accepted. */
static int base_time_or_date(wfdb_header *h, const char *tok)
{
    const char *p;
    int colon = strchr(tok, ':') != NULL, sep = strchr(tok, '/') || strchr(tok, '-');
    for (p = tok; *p; ++p)
        if (!isalnum((unsigned char)*p) && !strchr(":./-", *p))
            return 0;
    if (colon == sep || strlen(tok) >= sizeof h->base_time)
        return 0;
    snprintf(colon ? h->base_time : h->base_date, sizeof h->base_time, "%s", tok);
    return 1;
}

/* Record line: name[/segments] n_sig [fs[/counter[(base)]] [n_samples [base_time [base_date]]]] */
static int parse_record_line(wfdb_header *h, const hea_line *l, const char *where, char *err,
                             size_t err_len)
{
    const char *p;
    long v;
    unsigned k;
    if (l->n < 2)
        FAIL("%s: record line '%s' has no number of signals", where, l->orig);
    if (strchr(l->tok[0], '/'))
        FAIL("%s: record %s: multi-segment records are not supported", where, l->tok[0]);
    if (strlen(l->tok[0]) >= sizeof h->name)
        FAIL("%s: record name of %lu characters is too long", where,
             (unsigned long)strlen(l->tok[0]));
    strcpy(h->name, l->tok[0]);
    if (!parse_long(l->tok[1], 0, 1L << 20, &v))
        FAIL("%s: record %s: number of signals '%s' is not a count", where, h->name, l->tok[1]);
    if (v < 1 || v > ECGB_MAX_LEADS)
        FAIL("%s: record %s: %ld signals; the protocol carries 1..%u leads", where, h->name, v,
             ECGB_MAX_LEADS);
    h->n_sig = (unsigned)v;
    h->fs = 250.0; /* WFDB's default */
    if (l->n > 2) {
        double counter;
        p = l->tok[2];
        if (!scan_decimal(&p, &h->fs))
            p = "?";
        if (*p == '/' && (++p, !scan_decimal(&p, &counter)))
            p = "?";
        if (*p == '(' && (++p, !scan_decimal(&p, &counter) || *p++ != ')'))
            p = "?";
        if (*p)
            FAIL("%s: record %s: sampling frequency field '%s' is not fs[/counter[(base)]]",
                 where, h->name, l->tok[2]);
        if (!(h->fs > 0))
            FAIL("%s: record %s: sampling frequency %s must be > 0 Hz", where, h->name, l->tok[2]);
    }
    h->n_samples = -1;
    if (l->n > 3) {
        if (!parse_long(l->tok[3], 0, LONG_MAX, &v) || *l->tok[3] == '-')
            FAIL("%s: record %s: number of samples '%s' is not a count", where, h->name, l->tok[3]);
        h->n_samples = v > 0 ? v : -1; /* 0: unknown, as in WFDB */
    }
    for (k = 4; k < l->n; ++k)
        if (k > 5 || !base_time_or_date(h, l->tok[k]))
            FAIL("%s: record %s: '%s' after the number of samples is not a base time or date",
                 where, h->name, l->tok[k]);
    return 0;
}

/* Signal line: file format[xSPF][:skew][+offset] [gain[(baseline)][/units] [adc_res [adc_zero
 * [init_value [checksum [block_size [description]]]]]]]. As in wfdb-python, a field that does
 * not look like a number starts the description. */
static int parse_signal_line(wfdb_header *h, unsigned i, const hea_line *l, const char *where,
                             char *err, size_t err_len)
{
    wfdb_signal *s = &h->sig[i];
    const char *p, *desc, *fmt = l->tok[1], *gain = NULL;
    char who[320];
    long v, spf = 1, skew = 0;
    unsigned k = 2;
    int have_baseline = 0;

    memset(s, 0, sizeof *s);
    if (k < l->n && strchr("0123456789.+-", *l->tok[k])) {
        gain = l->tok[k++];
        /* adc_res, adc_zero, init_value, checksum, block_size: integers, each optional */
        for (; k < l->n && k < 8 && parse_long(l->tok[k], LONG_MIN, LONG_MAX, &v); ++k)
            if (k == 4)
                s->adc_zero = v;
    }
    desc = line_from(l, k);
    snprintf(s->description, sizeof s->description, "%s", desc);
    snprintf(who, sizeof who, "record %s, signal %u%s%s%s", h->name, i, *desc ? " (" : "",
             s->description, *desc ? ")" : "");

    if (strcmp(l->tok[0], "~") == 0)
        FAIL("%s: %s: no signal file ('~'); ecgsim plays samples stored in a file", where, who);
    if (strlen(l->tok[0]) >= sizeof s->file_name)
        FAIL("%s: %s: file name of %lu characters is too long", where, who,
             (unsigned long)strlen(l->tok[0]));
    strcpy(s->file_name, l->tok[0]);

    p = fmt;
    if (!scan_digits(&p, &v) || v > 999)
        p = "?";
    s->format = (int)v;
    if (*p == 'x' && (++p, !scan_digits(&p, &spf)))
        p = "?";
    if (*p == ':' && (++p, !scan_digits(&p, &skew)))
        p = "?";
    if (*p == '+' && (++p, !scan_digits(&p, &s->byte_offset)))
        p = "?";
    if (*p)
        FAIL("%s: %s: format field '%s' is not format[xSPF][:skew][+offset]", where, who, fmt);
    /* "x0" means 1 in WFDB; more would put this signal at a multiple of the record's rate. */
    if (spf > 1)
        FAIL("%s: %s: format field '%s': %ld samples per frame are not supported (only 1: "
             "ecgsim sends every lead at the record's one rate)", where, who, fmt, spf);
    if (skew != 0)
        FAIL("%s: %s: format field '%s': skew %ld is not supported (only 0)", where, who, fmt,
             skew);
    if (s->format != 16 && s->format != 212 && s->format != 24)
        FAIL("%s: %s: format field '%s': WFDB format %d is not supported (16, 212, 24 are)",
             where, who, fmt, s->format);

    s->uv_per_unit = 1000.0; /* mV unless stated */
    p = gain ? gain : "0";
    if (!scan_decimal(&p, &s->adc_gain))
        p = "?";
    if (*p == '(') {
        char *end;
        ++p;
        errno = 0;
        v = strtol(p, &end, 10);
        have_baseline = end != p && *end == ')' && errno == 0 && v >= INT32_MIN && v <= INT32_MAX;
        p = have_baseline ? end + 1 : "?";
        s->baseline = v;
    }
    if (*p == '/') {
        s->uv_per_unit = uv_per_unit(p + 1);
        if (s->uv_per_unit == 0)
            FAIL("%s: %s: units '%s' of gain field '%s' are not a voltage (mV, uV or V)", where,
                 who, p + 1, gain);
        p = "";
    }
    if (*p)
        FAIL("%s: %s: gain field '%s' is not gain[(baseline)][/units]", where, who, gain);
    if (s->adc_gain < 0)
        FAIL("%s: %s: gain field '%s': a negative gain is not supported (the protocol carries "
             "a gain > 0)", where, who, gain);
    if (s->adc_gain == 0)
        s->adc_gain = 200.0; /* WFDB's DEFGAIN */
    if (!have_baseline)
        s->baseline = s->adc_zero;
    return 0;
}

int wfdb_header_parse(wfdb_header *h, const char *text, const char *where, char *err,
                      size_t err_len)
{
    static hea_line l; /* 8 KiB: off the stack */
    const char *pos = text;
    unsigned i;
    int rc;

    memset(h, 0, sizeof *h);
    if (strncmp(pos, "\xef\xbb\xbf", 3) == 0)
        pos += 3; /* a UTF-8 byte-order mark left by a Windows editor */
    if ((rc = next_line(&pos, &l, where, err, err_len)) <= 0) {
        if (rc == 0)
            snprintf(err, err_len, "%s: no record line", where);
        return -1;
    }
    if (parse_record_line(h, &l, where, err, err_len) != 0)
        return -1;
    for (i = 0; i < h->n_sig; ++i) {
        if ((rc = next_line(&pos, &l, where, err, err_len)) <= 0) {
            if (rc == 0)
                snprintf(err, err_len, "%s: record %s: signal %u: missing signal line (%u signals "
                         "announced)", where, h->name, i, h->n_sig);
            return -1;
        }
        if (l.n < 2)
            FAIL("%s: record %s: signal %u: line '%s' has no format field", where, h->name, i,
                 l.orig);
        if (parse_signal_line(h, i, &l, where, err, err_len) != 0)
            return -1;
    }
    return 0;
}

/* ---- sources ---------------------------------------------------------------------------- */

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

/* The whole of a (small) text file, NUL-terminated, in malloc'd memory; NULL with err set. */
static char *read_text(const char *path, char *err, size_t err_len)
{
    FILE *fp = fopen(path, "rb");
    char *text;
    size_t n;
    if (!fp) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return NULL;
    }
    text = malloc(HEA_MAX_BYTES + 1);
    if (!text) {
        fclose(fp);
        snprintf(err, err_len, "%s: out of memory", path);
        return NULL;
    }
    n = fread(text, 1, HEA_MAX_BYTES + 1, fp);
    if (ferror(fp) || n > HEA_MAX_BYTES) {
        snprintf(err, err_len, ferror(fp) ? "%s: read error" : "%s: larger than %ld bytes: not a "
                 "WFDB header", path, HEA_MAX_BYTES);
        fclose(fp);
        free(text);
        return NULL;
    }
    fclose(fp);
    text[n] = '\0';
    if (strlen(text) != n) {
        snprintf(err, err_len, "%s: holds NUL bytes: not a WFDB header", path);
        free(text);
        return NULL;
    }
    return text;
}

int source_open_wfdb(sim_source *src, const char *record, char *err, size_t err_len)
{
    static wfdb_header h;
    char hea[4096], dir[4096], *text;
    const char *slash;
    unsigned n, i;
    int rc;

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
    if (!(text = read_text(hea, err, err_len)))
        return -1;
    rc = wfdb_header_parse(&h, text, hea, err, err_len);
    free(text);
    if (rc != 0)
        return -1;

    snprintf(src->name, sizeof src->name, "%s", h.name);
    src->n_sig = h.n_sig;
    src->fs = h.fs;
    src->n_samples = h.n_samples;
    src->wire_format = ECGB_FMT_INT16;
    src->rail = 0;
    for (i = 0; i < h.n_sig; ++i) {
        const wfdb_signal *s = &h.sig[i], *s0 = &h.sig[0];
        sim_file *f = src->n_files ? &src->files[src->n_files - 1] : NULL;
        int32_t rail = s->format == 212 ? 2047 : s->format == 16 ? 32767 : 8388607;
        unsigned k;

        if (s->adc_gain != s0->adc_gain || s->uv_per_unit != s0->uv_per_unit ||
            s->baseline != s0->baseline)
            FAIL("%s: signal %u has gain %g (baseline %ld) but signal 0 has %g (%ld); "
                 "protocol v1 carries one gain and baseline per frame",
                 hea, i, s->adc_gain, s->baseline, s0->adc_gain, s0->baseline);
        snprintf(src->lead_names[i], sizeof src->lead_names[i], "%s", s->description);
        src->lead_ids[i] = (uint8_t)ecgb_lead_code(src->lead_names[i]);

        /* A file's signals are consecutive lines sharing its format and byte offset. */
        if (!f || strcmp(f->path + strlen(dir), s->file_name) != 0) {
            for (k = 0; k < src->n_files; ++k)
                if (strcmp(src->files[k].path + strlen(dir), s->file_name) == 0)
                    FAIL("%s: signal %u: file %s also holds signals before signal %u; a file's "
                         "signals must be consecutive", hea, i, s->file_name, f->first_sig);
            f = &src->files[src->n_files++];
            snprintf(f->path, sizeof f->path, "%s%s", dir, s->file_name);
            f->format = s->format;
            f->offset = s->byte_offset;
            f->first_sig = i;
        } else if (f->format != s->format || f->offset != s->byte_offset) {
            FAIL("%s: signal %u: format field says format %d at byte %ld but signal %u of file "
                 "%s says format %d at byte %ld", hea, i, s->format, s->byte_offset,
                 f->first_sig, s->file_name, f->format, f->offset);
        }
        f->n_sig++;
        if (s->format == 24)
            src->wire_format = ECGB_FMT_INT24;
        if (rail > src->rail)
            src->rail = rail;
    }
    src->gain_uv = (float)(h.sig[0].uv_per_unit / h.sig[0].adc_gain);
    src->baseline = (int32_t)h.sig[0].baseline;
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
