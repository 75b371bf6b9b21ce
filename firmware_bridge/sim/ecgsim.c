/*
 * ecgsim: a simulated acquisition device. Streams raw ADC integers (a record read by the host's
 * WFDB reader, ecgedge.data.device_samples, or any raw file) as ecgbridge frames over stdout, a pty, or
 * TCP, at real-time pace or faster, optionally with injected faults. Deterministic for a given
 * --seed. See firmware_bridge/README.md.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

#define MAX_LEAD_OFF 16
#define MAX_DROP_RANGES 256

static const char usage[] =
    "usage: ecgsim [options] RECORD\n"
    "       ecgsim [options] --raw FILE --fs HZ --leads N --gain-uv UV[,UV...]\n"
    "              [--baseline ADU[,ADU...]] [--lead-names I,II,...] [--raw-format int16|int32]\n"
    "              [--rail ADU] [--raw-unlink]\n"
    "\n"
    "Streams raw ADC integers (little-endian, interleaved) as ecgbridge frames\n"
    "(firmware_bridge/PROTOCOL.md): version 1 when every lead shares one gain and baseline,\n"
    "version 2 (a gain and baseline per lead) otherwise. ecgsim parses no WFDB: a RECORD is\n"
    "read by the host's reader (python -m ecgedge.data.device_samples, through wfdb: every format,\n"
    "ECG leads only, invalid samples not sent), which runs ecgsim again on its ADC integers.\n"
    "Python: $ECGSIM_PYTHON, else the repository's .venv, else python3.\n"
    "\n"
    "input:\n"
    "  --gain-uv UV[,UV...]     uV per ADC unit: one for every lead, or one per lead\n"
    "  --baseline ADU[,ADU...]  ADC value of 0 mV: one for every lead, or one per lead (default 0)\n"
    "  --raw-format F           int16 (default) or int32; in int32, -2147483648 marks an invalid\n"
    "                           sample: those sample times are not sent (the receiver sees a gap)\n"
    "  --rail ADU               the ADC's largest value (--lead-off :rail; default: the format's)\n"
    "  --protocol 1|2           force the protocol version (1 needs one shared gain and baseline)\n"
    "  --raw-unlink             remove FILE once open (a temporary interchange file)\n"
    "\n"
    "output (default stdout):\n"
    "  --pty                    create a pty, print 'PTY /dev/pts/N' on stderr, wait for a reader\n"
    "  --tcp-listen PORT        serve 127.0.0.1:PORT (0: any free port; 'LISTEN 127.0.0.1:P' on stderr)\n"
    "  --tcp-connect HOST:PORT  connect to a receiver\n"
    "pace and framing:\n"
    "  --speed X                1 = real time (default), 50 = 50x, 0 = as fast as possible\n"
    "  --samples-per-frame N    default: 40 ms of signal\n"
    "  --stream-id N            0..255 (default 0)\n"
    "  --sample-format F        int16 or int24 (default: int16, int24 with --raw-format int32)\n"
    "  --seconds S              stop after S seconds of signal\n"
    "  --max-samples N          stop after N samples per lead\n"
    "  --loop                   restart the record at its end (sample index keeps counting)\n"
    "faults (all deterministic for a --seed, default 1):\n"
    "  --drop-bytes P           drop each wire byte with probability P\n"
    "  --flip-bits P            flip each wire bit with probability P\n"
    "  --drop-frames LIST|P     drop frames by number (e.g. 5,10-12; frame n has seq n mod 65536)\n"
    "                           or with probability P (a number with a '.')\n"
    "  --lead-off LEAD@T0-T1[:rail]  electrode off from T0 to T1 s: lead-off bit set, samples at\n"
    "                           the baseline (0 mV), or at the ADC rail with ':rail'; repeatable;\n"
    "                           LEAD is a name (V1) or a 0-based index\n"
    "  --disconnect-after S[:PAUSE]  every S s of signal drop the link for PAUSE s (default 1) of\n"
    "                           signal, then reconnect/accept again (stdout: silent for PAUSE s)\n"
    "  --seed N\n"
    "  --quiet                  no progress lines on stderr\n"
    "classification on the device:\n"
    "  --classify EXPORT        run EXPORT's C99 INT8 model (ecgedge export --mcu) and the C\n"
    "                           preprocessing on the samples acquired, and send each window's label\n"
    "                           in a label frame (PROTOCOL.md 2b); the host's Python builds the\n"
    "                           classifier for this source (python -m ecgedge.export.mcu_device)\n"
    "  --classify-hop S         seconds between window ends (default 1, as ecgedge stream)\n"
    "  --beats                  run the C QRS detector (ecgb_qrs) on lead II (MLII), else the first\n"
    "                           lead, and send its beats in beat frames (PROTOCOL.md 2c); always on\n"
    "                           with --classify\n";

typedef struct {
    int lead;
    double t0, t1;
    int rail;
} lead_off_spec;

typedef struct {
    unsigned long long lo, hi;
} frame_range;

typedef struct {
    const char *record, *raw;
    int raw_unlink;
    double raw_fs;
    raw_calibration cal;
    raw_width raw_width;
    long rail;
    unsigned protocol; /* 0: from the calibration */
    unsigned raw_leads;
    const char *raw_lead_names;
    sim_link link;
    double speed;
    unsigned samples_per_frame;
    unsigned stream_id;
    int sample_format; /* 0: from the source */
    double seconds;
    long long max_samples;
    int loop;
    double drop_bytes, flip_bits, drop_frames_p;
    frame_range drop_frames[MAX_DROP_RANGES];
    unsigned n_drop_frames;
    const char *lead_off_text[MAX_LEAD_OFF];
    lead_off_spec lead_off[MAX_LEAD_OFF];
    unsigned n_lead_off;
    double disconnect_every, disconnect_pause;
    unsigned long long seed;
    int quiet;
    const char *classify;
    double classify_hop;
    int beats;
} options;

/* ---- deterministic randomness: splitmix64 ---- */

static unsigned long long rng;

static unsigned long long next_u64(void)
{
    unsigned long long z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform(void)
{
    return (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- argument parsing ---- */

static void die(const char *msg, const char *arg)
{
    fprintf(stderr, "ecgsim: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    exit(2);
}

static double parse_double(const char *s, const char *opt)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end)
        die("not a number", opt);
    return v;
}

static long long parse_int(const char *s, const char *opt, long long lo, long long hi)
{
    char *end;
    long long v;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die("not an integer in range", opt);
    return v;
}

/* A comma list of numbers into out[max]; returns how many. */
static unsigned parse_list(const char *s, const char *opt, double *dout, long *lout, unsigned max)
{
    unsigned n = 0;
    while (*s) {
        char item[64];
        size_t len = strcspn(s, ",");
        if (n == max || len == 0 || len >= sizeof item)
            die("wants one value or one per lead, comma-separated", opt);
        memcpy(item, s, len);
        item[len] = '\0';
        if (dout)
            dout[n] = parse_double(item, opt);
        else
            lout[n] = (long)parse_int(item, opt, INT32_MIN, INT32_MAX);
        ++n;
        s += len;
        if (*s == ',')
            ++s;
    }
    return n;
}

static double parse_probability(const char *s, const char *opt)
{
    double p = parse_double(s, opt);
    if (!(p >= 0 && p <= 1))
        die("probability must be in [0, 1]", opt);
    return p;
}

static void parse_drop_frames(options *o, const char *s)
{
    char *end;
    if (strchr(s, '.') || strchr(s, 'e')) {
        o->drop_frames_p = parse_probability(s, "--drop-frames");
        return;
    }
    while (*s) {
        frame_range r;
        r.lo = r.hi = strtoull(s, &end, 10);
        if (end == s)
            die("--drop-frames wants numbers like 5,10-12 or a probability like 0.01", s);
        s = end;
        if (*s == '-') {
            r.hi = strtoull(s + 1, &end, 10);
            if (end == s + 1 || r.hi < r.lo)
                die("--drop-frames: bad range", s);
            s = end;
        }
        if (o->n_drop_frames == MAX_DROP_RANGES)
            die("--drop-frames: too many entries", NULL);
        o->drop_frames[o->n_drop_frames++] = r;
        if (*s == ',')
            ++s;
        else if (*s)
            die("--drop-frames: unexpected text", s);
    }
}

static void parse_args(options *o, int argc, char **argv)
{
    int i;
    memset(o, 0, sizeof *o);
    o->link.kind = LINK_STDOUT;
    o->speed = 1.0;
    o->max_samples = -1;
    o->seconds = -1;
    o->seed = 1;
    o->raw_width = RAW_INT16;
    o->disconnect_pause = 1.0;
    o->classify_hop = 1.0;
    for (i = 1; i < argc; ++i) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define VALUE() (v ? (++i, v) : (die("missing value for", a), ""))
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        } else if (strcmp(a, "--raw") == 0) {
            o->raw = VALUE();
        } else if (strcmp(a, "--fs") == 0) {
            o->raw_fs = parse_double(VALUE(), a);
        } else if (strcmp(a, "--leads") == 0) {
            o->raw_leads = (unsigned)parse_int(VALUE(), a, 1, ECGB_MAX_LEADS);
        } else if (strcmp(a, "--gain-uv") == 0) {
            o->cal.n_gains = parse_list(VALUE(), a, o->cal.gain_uv, NULL, ECGB_MAX_LEADS);
        } else if (strcmp(a, "--baseline") == 0) {
            o->cal.n_baselines = parse_list(VALUE(), a, NULL, o->cal.baseline, ECGB_MAX_LEADS);
        } else if (strcmp(a, "--raw-format") == 0) {
            v = VALUE();
            if (strcmp(v, "int16") == 0)
                o->raw_width = RAW_INT16;
            else if (strcmp(v, "int32") == 0)
                o->raw_width = RAW_INT32;
            else
                die("--raw-format is int16 or int32", v);
        } else if (strcmp(a, "--rail") == 0) {
            o->rail = (long)parse_int(VALUE(), a, 1, 8388607);
        } else if (strcmp(a, "--raw-unlink") == 0) {
            o->raw_unlink = 1;
        } else if (strcmp(a, "--protocol") == 0) {
            o->protocol = (unsigned)parse_int(VALUE(), a, 1, 2);
        } else if (strcmp(a, "--lead-names") == 0) {
            o->raw_lead_names = VALUE();
        } else if (strcmp(a, "--pty") == 0) {
            o->link.kind = LINK_PTY;
        } else if (strcmp(a, "--tcp-listen") == 0) {
            o->link.kind = LINK_TCP_LISTEN;
            o->link.port = (int)parse_int(VALUE(), a, 0, 65535);
        } else if (strcmp(a, "--tcp-connect") == 0) {
            const char *hp = VALUE(), *colon = strrchr(hp, ':');
            if (!colon || colon == hp || (size_t)(colon - hp) >= sizeof o->link.host)
                die("--tcp-connect wants HOST:PORT", hp);
            o->link.kind = LINK_TCP_CONNECT;
            snprintf(o->link.host, sizeof o->link.host, "%.*s", (int)(colon - hp), hp);
            o->link.port = (int)parse_int(colon + 1, a, 1, 65535);
        } else if (strcmp(a, "--speed") == 0) {
            o->speed = parse_double(VALUE(), a);
            if (!(o->speed >= 0))
                die("--speed must be >= 0", NULL);
        } else if (strcmp(a, "--samples-per-frame") == 0) {
            o->samples_per_frame = (unsigned)parse_int(VALUE(), a, 1, 65535);
        } else if (strcmp(a, "--stream-id") == 0) {
            o->stream_id = (unsigned)parse_int(VALUE(), a, 0, 255);
        } else if (strcmp(a, "--sample-format") == 0) {
            v = VALUE();
            if (strcmp(v, "int16") == 0)
                o->sample_format = ECGB_FMT_INT16;
            else if (strcmp(v, "int24") == 0)
                o->sample_format = ECGB_FMT_INT24;
            else
                die("--sample-format is int16 or int24", v);
        } else if (strcmp(a, "--seconds") == 0) {
            o->seconds = parse_double(VALUE(), a);
            if (!(o->seconds >= 0))
                die("--seconds must be >= 0", NULL);
        } else if (strcmp(a, "--max-samples") == 0) {
            o->max_samples = parse_int(VALUE(), a, 0, (long long)1 << 62);
        } else if (strcmp(a, "--loop") == 0) {
            o->loop = 1;
        } else if (strcmp(a, "--drop-bytes") == 0) {
            o->drop_bytes = parse_probability(VALUE(), a);
        } else if (strcmp(a, "--flip-bits") == 0) {
            o->flip_bits = parse_probability(VALUE(), a);
        } else if (strcmp(a, "--drop-frames") == 0) {
            parse_drop_frames(o, VALUE());
        } else if (strcmp(a, "--lead-off") == 0) {
            if (o->n_lead_off == MAX_LEAD_OFF)
                die("at most 16 --lead-off options", NULL);
            o->lead_off_text[o->n_lead_off++] = VALUE();
        } else if (strcmp(a, "--disconnect-after") == 0) {
            char buf[64], *colon;
            snprintf(buf, sizeof buf, "%s", VALUE());
            colon = strchr(buf, ':');
            if (colon) {
                *colon = '\0';
                o->disconnect_pause = parse_double(colon + 1, a);
            }
            o->disconnect_every = parse_double(buf, a);
            if (!(o->disconnect_every > 0) || !(o->disconnect_pause >= 0))
                die("--disconnect-after wants SECONDS[:PAUSE] with SECONDS > 0", v);
        } else if (strcmp(a, "--seed") == 0) {
            o->seed = (unsigned long long)parse_int(VALUE(), a, 0, (long long)1 << 62);
        } else if (strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
        } else if (strcmp(a, "--classify") == 0) {
            o->classify = VALUE();
        } else if (strcmp(a, "--beats") == 0) {
            o->beats = 1;
        } else if (strcmp(a, "--classify-hop") == 0) {
            o->classify_hop = parse_double(VALUE(), a);
            if (!(o->classify_hop > 0))
                die("--classify-hop wants seconds > 0", v);
        } else if (a[0] == '-' && a[1] != '\0') {
            die("unknown option (see --help)", a);
        } else if (!o->record) {
            o->record = a;
        } else {
            die("more than one record given", a);
        }
#undef VALUE
    }
    if (!o->record == !o->raw)
        die("give either a RECORD or --raw FILE (see --help)", NULL);
    if (o->record)
        return;
    if (!(o->raw_fs > 0) || o->raw_leads == 0 || o->cal.n_gains == 0)
        die("--raw needs --fs HZ, --leads N and --gain-uv UV", NULL);
    o->link.quiet = o->quiet;
}

/* ---- a WFDB record: the host's reader ---- */

static int executable(const char *path)
{
    return access(path, X_OK) == 0;
}

static char self[4096];

static void find_self(const char *argv0)
{
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0 && (argv0 == NULL || realpath(argv0, self) == NULL))
        snprintf(self, sizeof self, "%s", argv0 ? argv0 : "ecgsim");
    else if (len > 0)
        self[len] = '\0';
}

const char *sim_host_python(const char *argv0)
{
    static char repo[4096], venv[4200], pypath[8400], reader[4200];
    const char *python = getenv("ECGSIM_PYTHON"), *old = getenv("PYTHONPATH");
    int i;
    char *slash;

    find_self(argv0);
    snprintf(repo, sizeof repo, "%s", self);
    for (i = 0; i < 3 && (slash = strrchr(repo, '/')) != NULL; ++i)
        *slash = '\0'; /* REPO/firmware_bridge/build/ecgsim -> REPO */
    snprintf(reader, sizeof reader, "%s/ecgedge/data/device_samples.py", repo);
    if (i == 3 && access(reader, R_OK) == 0) {
        snprintf(pypath, sizeof pypath, "%s%s%s", repo, old && *old ? ":" : "", old ? old : "");
        setenv("PYTHONPATH", pypath, 1);
        snprintf(venv, sizeof venv, "%s/.venv/bin/python", repo);
        if (!python && executable(venv))
            python = venv;
    }
    return python ? python : "python3";
}

/* One WFDB reader, not two: exec the host's (ecgedge.data.device_samples, wfdb), which writes the record's
 * ADC integers to a temporary file and execs this program again with --raw ... --raw-unlink and
 * the options given here. Python: $ECGSIM_PYTHON, else the repository's .venv (this program
 * lives in REPO/firmware_bridge/build), else python3 on the PATH. Does not return. */
static void play_record_via_host(int argc, char **argv, const char *record)
{
    static char *args[520];
    const char *python = sim_host_python(argv[0]);
    int i, k = 0;

    if (argc > 500)
        die("too many arguments", NULL);
    args[k++] = (char *)python;
    args[k++] = "-m";
    args[k++] = "ecgedge.data.device_samples";
    args[k++] = "--ecgsim";
    args[k++] = self;
    args[k++] = (char *)record;
    for (i = 1; i < argc; ++i)
        if (argv[i] != record)
            args[k++] = argv[i];
    args[k] = NULL;
    fflush(stdout);
    execvp(python, args);
    fprintf(stderr, "ecgsim: cannot run the host's WFDB reader (%s -m ecgedge.data.device_samples): %s; set "
                    "ECGSIM_PYTHON to a Python with ecgedge and wfdb\n", python, strerror(errno));
    exit(2);
}

/* LEAD@T0-T1[:rail], resolved against the source's lead names. */
static void resolve_lead_off(options *o, const sim_source *src)
{
    unsigned k, i;
    for (k = 0; k < o->n_lead_off; ++k) {
        char buf[128], *at, *dash, *colon, *end;
        lead_off_spec *s = &o->lead_off[k];
        snprintf(buf, sizeof buf, "%s", o->lead_off_text[k]);
        at = strchr(buf, '@');
        dash = at ? strchr(at + 1, '-') : NULL;
        if (!at || !dash)
            die("--lead-off wants LEAD@T0-T1[:rail]", o->lead_off_text[k]);
        *at = '\0';
        *dash = '\0';
        colon = strchr(dash + 1, ':');
        s->rail = 0;
        if (colon) {
            *colon = '\0';
            if (strcmp(colon + 1, "rail") == 0)
                s->rail = 1;
            else if (strcmp(colon + 1, "zero") != 0)
                die("--lead-off: suffix is ':rail' or ':zero'", o->lead_off_text[k]);
        }
        s->t0 = parse_double(at + 1, "--lead-off");
        s->t1 = parse_double(dash + 1, "--lead-off");
        s->lead = -1;
        for (i = 0; i < src->n_sig; ++i)
            if (ecgb_lead_code(buf) != 0 ? ecgb_lead_code(buf) == src->lead_ids[i]
                                         : strcmp(buf, src->lead_names[i]) == 0)
                s->lead = (int)i;
        if (s->lead < 0) {
            long idx = strtol(buf, &end, 10);
            if (end != buf && *end == '\0' && idx >= 0 && idx < (long)src->n_sig)
                s->lead = (int)idx;
        }
        if (s->lead < 0)
            die("--lead-off: no such lead in the record", buf);
    }
}

/* ---- streaming ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_until(double t)
{
    double d = t - now_s();
    struct timespec ts;
    if (d <= 0)
        return;
    ts.tv_sec = (time_t)d;
    ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int frame_dropped(const options *o, unsigned long long frame_no)
{
    unsigned i;
    for (i = 0; i < o->n_drop_frames; ++i)
        if (frame_no >= o->drop_frames[i].lo && frame_no <= o->drop_frames[i].hi)
            return 1;
    return o->drop_frames_p > 0 && uniform() < o->drop_frames_p;
}

typedef struct {
    unsigned long long frames_sent, frames_dropped, bytes, bytes_dropped, bits_flipped,
        disconnects;
} counters;

/* Apply byte drops and bit flips to an encoded frame in place; returns the new length. */
static size_t damage(const options *o, uint8_t *buf, size_t len, counters *c)
{
    size_t i, out = 0;
    unsigned bit;
    for (i = 0; i < len; ++i) {
        uint8_t b = buf[i];
        if (o->drop_bytes > 0 && uniform() < o->drop_bytes) {
            c->bytes_dropped++;
            continue;
        }
        if (o->flip_bits > 0)
            for (bit = 0; bit < 8; ++bit)
                if (uniform() < o->flip_bits) {
                    b ^= (uint8_t)(1u << bit);
                    c->bits_flipped++;
                }
        buf[out++] = b;
    }
    return out;
}

/* Next sample of every lead, restarting at the end with --loop. 1 ok, 0 end, -1 error. */
static int next_sample(const options *o, sim_source *src, long long *in_pass, int32_t *out)
{
    int rc = source_read(src, out);
    if (rc == 0 && o->loop && *in_pass > 0) {
        if (source_rewind(src) != 0)
            return -1;
        *in_pass = 0;
        rc = source_read(src, out);
    }
    if (rc == 1)
        ++*in_pass;
    return rc;
}

int main(int argc, char **argv)
{
    static int32_t samples[ECGB_MAX_FRAME + ECGB_MAX_LEADS];
    static uint8_t wire[ECGB_MAX_WIRE];
    options o;
    sim_source src;
    counters c;
    sim_classifier cls;
    static sim_beats bt;
    ecgb_beats bf;
    ecgb_frame f;
    char err[512];
    unsigned long long frame_no = 0, sample_no = 0, limit = ~0ull, invalid = 0;
    long long in_pass = 0;
    double t0 = 0, next_disconnect;
    unsigned spf, max_spf, i;
    int status = 0, done = 0, invalid_after = 0, same = 1;

    parse_args(&o, argc, argv);
    if (o.record)
        play_record_via_host(argc, argv, o.record);
    signal(SIGPIPE, SIG_IGN); /* a vanished reader shows up as EPIPE from write() */
    rng = o.seed;
    memset(&c, 0, sizeof c);

    if (source_open_raw(&src, o.raw, o.raw_width, o.raw_fs, o.raw_leads, &o.cal,
                        o.raw_lead_names, o.rail, err, sizeof err) != 0)
        die(err, NULL);
    if (o.raw_unlink)
        remove(o.raw); /* open: readable (and rewindable for --loop) until closed */
    resolve_lead_off(&o, &src);
    memset(&cls, 0, sizeof cls);
    if (o.classify && classifier_open(&cls, o.classify, o.classify_hop, &src, (uint8_t)o.stream_id, argv[0], err,
                                      sizeof err) != 0)
        die(err, NULL);
    if (o.classify && !o.quiet)
        fprintf(stderr, "ecgsim: --classify: %s\n", cls.describe);
    memset(&bt, 0, sizeof bt);
    if ((o.beats || o.classify) && beats_open(&bt, &src, (uint8_t)o.stream_id, err, sizeof err) != 0)
        die(err, NULL);
    if (bt.on && !o.quiet)
        fprintf(stderr, "ecgsim: --beats: the C QRS detector on lead %s\n", ecgb_lead_name(src.lead_ids[bt.lead]));
    if (o.sample_format == 0)
        o.sample_format = (int)src.wire_format;
    for (i = 1; i < src.n_sig; ++i)
        same &= src.gain_uv[i] == src.gain_uv[0] && src.baseline[i] == src.baseline[0];
    if (o.protocol == 0)
        o.protocol = same ? ECGB_VERSION_1 : ECGB_VERSION_2; /* v1 whenever it can: any receiver */
    else if (o.protocol == ECGB_VERSION_1 && !same)
        die("the leads have different gains or baselines; protocol 1 carries one per frame "
            "(use --protocol 2)", NULL);
    max_spf = ecgb_max_samples_per_lead_v(o.protocol, src.n_sig, (unsigned)o.sample_format);
    spf = o.samples_per_frame;
    if (spf == 0) {
        spf = (unsigned)(src.fs * 0.040 + 0.5);
        spf = spf < 1 ? 1 : spf > max_spf ? max_spf : spf;
    } else if (spf > max_spf) {
        fprintf(stderr, "ecgsim: %u samples per frame of %u leads exceed the %u-byte frame limit; "
                        "at most %u\n", spf, src.n_sig, ECGB_MAX_FRAME, max_spf);
        return 2;
    }
    if (o.max_samples >= 0)
        limit = (unsigned long long)o.max_samples;
    if (o.seconds >= 0 && (unsigned long long)(o.seconds * src.fs + 0.5) < limit)
        limit = (unsigned long long)(o.seconds * src.fs + 0.5);

    memset(&f, 0, sizeof f);
    f.stream_id = (uint8_t)o.stream_id;
    f.version = (uint8_t)o.protocol;
    f.fs_mhz = (uint32_t)(src.fs * 1000.0 + 0.5);
    f.gain_uv = src.gain_uv[0];
    f.baseline = src.baseline[0];
    memcpy(f.lead_gain_uv, src.gain_uv, sizeof f.lead_gain_uv);
    memcpy(f.lead_baseline, src.baseline, sizeof f.lead_baseline);
    f.sample_format = (uint8_t)o.sample_format;
    f.n_leads = (uint8_t)src.n_sig;
    f.device_flags = ECGB_FLAG_SIMULATED;
    memcpy(f.lead_ids, src.lead_ids, sizeof f.lead_ids);
    if (!o.quiet) {
        fprintf(stderr, "ecgsim: %s: %u leads (", src.name, src.n_sig);
        for (i = 0; i < src.n_sig; ++i)
            fprintf(stderr, "%s%s", i ? "," : "", ecgb_lead_name(src.lead_ids[i]));
        fprintf(stderr, ") at %g Hz, ", src.fs);
        for (i = 0; i < (same ? 1u : src.n_sig); ++i)
            fprintf(stderr, "%s%g", i ? "/" : "", (double)src.gain_uv[i]);
        fprintf(stderr, " uV/LSB, baseline ");
        for (i = 0; i < (same ? 1u : src.n_sig); ++i)
            fprintf(stderr, "%s%ld", i ? "/" : "", (long)src.baseline[i]);
        fprintf(stderr, ", %s, protocol v%u, %u samples per frame\n",
                o.sample_format == ECGB_FMT_INT16 ? "int16" : "int24", o.protocol, spf);
    }

    if (link_setup(&o.link, err, sizeof err) != 0 || link_open(&o.link, err, sizeof err) != 0)
        die(err, NULL);
    t0 = now_s();
    next_disconnect = o.disconnect_every;

    while (!done && sample_no < limit) {
        unsigned n = 0, k, off_now;
        size_t len = 0;
        ecgb_status st;
        f.lead_off = 0;
        while (n < spf && sample_no + n < limit) {
            int rc = next_sample(&o, &src, &in_pass, &samples[n * src.n_sig]);
            if (rc < 0) {
                fprintf(stderr, "ecgsim: read error in %s\n", src.name);
                status = 1;
            }
            if (rc != 1) {
                done = 1;
                break;
            }
            for (k = 0; k < src.n_sig && samples[n * src.n_sig + k] != SIM_INVALID; ++k) {
            }
            if (k < src.n_sig) {
                /* No valid reading at this sample time: not sent. The frame in hand ends here,
                 * so the next one starts after the run and the receiver reports exactly it. */
                classifier_gap(&cls); /* the device's windows start again after the run */
                beats_gap(&bt);
                if (n == 0) {
                    ++sample_no;
                    ++invalid;
                    continue;
                }
                invalid_after = 1;
                break;
            }
            off_now = 0;
            for (k = 0; k < o.n_lead_off; ++k) {
                const lead_off_spec *s = &o.lead_off[k];
                double t = (double)(sample_no + n) / src.fs;
                if (t >= s->t0 && t < s->t1) {
                    samples[n * src.n_sig + (unsigned)s->lead] =
                        s->rail ? src.rail : src.baseline[s->lead];
                    off_now |= 1u << s->lead;
                }
            }
            f.lead_off |= (uint16_t)off_now;
            classifier_push(&cls, &samples[n * src.n_sig], off_now, sample_no + n);
            beats_push(&bt, &samples[n * src.n_sig], off_now, sample_no + n);
            ++n;
        }
        if (n == 0)
            break;

        if (o.disconnect_every > 0 && (double)sample_no / src.fs >= next_disconnect) {
            /* Cable pulled: the device keeps sampling, so the pause costs samples and seqs. */
            unsigned long long skip = (unsigned long long)(o.disconnect_pause * src.fs + 0.5);
            int32_t scratch[ECGB_MAX_LEADS];
            c.disconnects++;
            if (!o.quiet)
                fprintf(stderr, "ecgsim: disconnect at sample %llu for %g s\n", sample_no,
                        o.disconnect_pause);
            link_close(&o.link, 0);
            if (o.speed > 0)
                sleep_until(now_s() + o.disconnect_pause / o.speed);
            sample_no += n + (unsigned)invalid_after; /* this frame is lost too */
            invalid += (unsigned)invalid_after;
            invalid_after = 0;
            frame_no++;
            for (; skip > 0 && sample_no < limit; --skip, ++sample_no)
                if (next_sample(&o, &src, &in_pass, scratch) != 1) {
                    done = 1;
                    break;
                }
            frame_no += (unsigned long long)(o.disconnect_pause * src.fs + 0.5) / spf;
            cls.n_pending = 0; /* the device's verdicts in the pause are lost with its frames */
            classifier_gap(&cls);
            beats_discard(&bt);
            next_disconnect += o.disconnect_every;
            if (done || sample_no >= limit)
                break;
            if (o.link.kind != LINK_STDOUT && link_open(&o.link, err, sizeof err) != 0)
                die(err, NULL);
            t0 = now_s() - (o.speed > 0 ? (double)sample_no / src.fs / o.speed : 0);
            continue;
        }

        f.seq = (uint16_t)frame_no;
        f.first_sample = sample_no;
        f.samples_per_lead = (uint16_t)n;
        st = ecgb_encode(&f, samples, wire, sizeof wire, &len);
        if (st != ECGB_OK) {
            fprintf(stderr, "ecgsim: cannot encode frame %llu: %s\n", frame_no,
                    ecgb_status_name(st));
            status = 1;
            break;
        }
        if (o.speed > 0) /* a frame leaves when its last sample has been acquired */
            sleep_until(t0 + (double)(sample_no + n) / src.fs / o.speed);
        if (frame_dropped(&o, frame_no)) {
            c.frames_dropped++;
        } else {
            len = damage(&o, wire, len, &c);
            if (link_write(&o.link, wire, len) != 0) {
                if (o.link.kind == LINK_STDOUT) {
                    if (!o.quiet)
                        fprintf(stderr, "ecgsim: reader closed stdout\n");
                    break;
                }
                if (!o.quiet)
                    fprintf(stderr, "ecgsim: reader went away; waiting for the next one\n");
                link_close(&o.link, 0);
                if (link_open(&o.link, err, sizeof err) != 0)
                    die(err, NULL);
                t0 = now_s() - (o.speed > 0 ? (double)sample_no / src.fs / o.speed : 0);
            } else {
                c.frames_sent++;
                c.bytes += len;
            }
        }
        for (k = 0; k < cls.n_pending; ++k) {
            /* A verdict follows the frame that carries its window's last sample, over the same link. */
            if (ecgb_encode_label(&cls.pending[k], wire, sizeof wire, &len) != ECGB_OK) {
                fprintf(stderr, "ecgsim: cannot encode the label of window ending at %llu\n",
                        (unsigned long long)cls.pending[k].end_sample);
                status = 1;
                continue;
            }
            len = damage(&o, wire, len, &c);
            if (link_write(&o.link, wire, len) == 0) {
                cls.labels_sent++;
                c.bytes += len;
            }
        }
        cls.n_pending = 0;
        while (beats_frame(&bt, &bf)) {
            /* the beats these samples decided follow them too */
            if (ecgb_encode_beats(&bf, wire, sizeof wire, &len) != ECGB_OK) {
                fprintf(stderr, "ecgsim: cannot encode the beats up to sample %llu\n",
                        (unsigned long long)bf.end_sample);
                status = 1;
                continue;
            }
            len = damage(&o, wire, len, &c);
            if (link_write(&o.link, wire, len) == 0) {
                bt.frames_sent++;
                c.bytes += len;
            }
        }
        frame_no++;
        sample_no += n + (unsigned)invalid_after;
        invalid += (unsigned)invalid_after;
        invalid_after = 0;
    }
    link_close(&o.link, 1);
    link_teardown(&o.link);
    source_close(&src);
    classifier_close(&cls);
    if (!o.quiet && o.classify)
        fprintf(stderr, "ecgsim: --classify: %llu windows classified, %llu label frames sent\n", cls.windows,
                cls.labels_sent);
    if (!o.quiet && bt.on)
        fprintf(stderr, "ecgsim: --beats: %llu beats found, %llu beat frames sent\n", bt.beats_found,
                bt.frames_sent);
    if (!o.quiet)
        fprintf(stderr,
                "ecgsim: done: %llu samples per lead, %llu frames sent, %llu dropped, %llu bytes, "
                "%llu bytes dropped, %llu bits flipped, %llu disconnects, %llu invalid sample "
                "times not sent\n",
                sample_no, c.frames_sent, c.frames_dropped, c.bytes, c.bytes_dropped,
                c.bits_flipped, c.disconnects, invalid);
    return status;
}
