/* ecgsim internals: a sample source (a raw interchange file) and a byte link. */
#ifndef ECGSIM_H
#define ECGSIM_H

#include <stdint.h>
#include <stdio.h>

#include "ecgb_qrs.h"
#include "ecgbridge.h"

/* In an int32 raw file: no valid sample at this time for this lead (a WFDB record's NaN /
 * invalid value). ecgsim does not send such sample times: the receiver sees a gap. */
#define SIM_INVALID INT32_MIN

typedef enum { RAW_INT16 = 2, RAW_INT32 = 4 } raw_width;

/* Raw little-endian samples, interleaved (sample t of every lead, then t + 1), as written by
 * ecgedge.data.device_samples from a WFDB record read with wfdb, or by hand. */
typedef struct {
    char name[256];
    FILE *fp;
    raw_width width;           /* bytes per sample in the file */
    unsigned n_sig;
    double fs;                 /* Hz */
    float gain_uv[ECGB_MAX_LEADS];     /* uV per ADC unit, per lead */
    int32_t baseline[ECGB_MAX_LEADS];  /* ADC value of 0 mV, per lead */
    int32_t rail;              /* largest value the recorder's ADC can hold (for --lead-off :rail) */
    unsigned wire_format;      /* ECGB_FMT_INT16 or ECGB_FMT_INT24 */
    char lead_names[ECGB_MAX_LEADS][32];
    uint8_t lead_ids[ECGB_MAX_LEADS];
} sim_source;

/* Calibration of a raw source: one value for every lead, or one per lead. */
typedef struct {
    double gain_uv[ECGB_MAX_LEADS];
    long baseline[ECGB_MAX_LEADS];
    unsigned n_gains, n_baselines; /* 1: the same for every lead */
} raw_calibration;

/* Open a raw file of n_leads interleaved samples of the given width. lead_names: comma list
 * or NULL (12 leads default to the standard order). rail: 0 for the width's (or int24's)
 * largest value. 0 on success, else -1 with a one-line reason in err. */
int source_open_raw(sim_source *src, const char *path, raw_width width, double fs,
                    unsigned n_leads, const raw_calibration *cal, const char *lead_names,
                    long rail, char *err, size_t err_len);

/* Read the next sample of every signal into out[n_sig]: 1 ok, 0 end of data, -1 read error. */
int source_read(sim_source *src, int32_t *out);

/* Back to the first sample (for --loop). 0 on success. */
int source_rewind(sim_source *src);

void source_close(sim_source *src);

typedef enum { LINK_STDOUT, LINK_PTY, LINK_TCP_LISTEN, LINK_TCP_CONNECT } link_kind;

typedef struct {
    link_kind kind;
    int fd;           /* the open connection, -1 when none */
    int listen_fd;    /* tcp-listen: the listening socket */
    char host[256];   /* tcp-connect */
    int port;
    int quiet;
} sim_link;

/* Prepare the link (listen socket; nothing else connects yet). 0 on success. */
int link_setup(sim_link *link, char *err, size_t err_len);

/* Wait for / make a connection: a fresh pty (path announced on stderr as "PTY /dev/pts/N",
 * then waits for the reader to open it), an accepted client, or a connected socket.
 * Writes a 0x00 delimiter first so the reader starts in sync. 0 on success. */
int link_open(sim_link *link, char *err, size_t err_len);

/* Write all bytes. 0 on success, -1 when the reader went away (EPIPE, ECONNRESET, EIO). */
int link_write(sim_link *link, const uint8_t *data, size_t len);

/* Close the connection. At the end of a pty stream, first wait (up to 10 s) for the reader to
 * drain what was written, since closing the master discards it. */
void link_close(sim_link *link, int end_of_stream);

void link_teardown(sim_link *link);

/* ---- --classify: the model on the device (classify.c) ---- */

/* The host's Python (ecgsim runs it for RECORD and to build a classifier): $ECGSIM_PYTHON, else
 * REPO/.venv/bin/python when this program is REPO/firmware_bridge/build/ecgsim (that REPO then also
 * goes on PYTHONPATH), else python3. */
const char *sim_host_python(const char *argv0);

#define SIM_MAX_CLASSES 32
#define SIM_MAX_PENDING 8

typedef struct {
    void *handle;
    int (*push)(const float *mv, unsigned lead_off, void *verdict);
    void (*reset)(uint64_t first_sample);
    unsigned n_sig;
    float gain_mv[ECGB_MAX_LEADS];
    int32_t baseline[ECGB_MAX_LEADS];
    int restart;                          /* the next sample starts a new segment */
    ecgb_label pending[SIM_MAX_PENDING];  /* verdicts waiting for the frame that carries their end */
    unsigned n_pending;
    unsigned long long windows, labels_sent;
    uint16_t seq;
    char describe[4600];                  /* model, rates, window, hop (shared object) */
} sim_classifier;

/* Build (through the host's Python: python -m ecgedge.export.mcu_device) and load the classifier of
 * export folder (or shipped model name) `export` for this source. 0, else -1 with a reason in err. */
int classifier_open(sim_classifier *c, const char *export, double hop_s, const sim_source *src,
                    uint8_t stream_id, const char *argv0, char *err, size_t err_len);
/* One acquired sample time (ADC values of every lead, index sample_no); a verdict goes to pending. */
void classifier_push(sim_classifier *c, const int32_t *adc, unsigned lead_off, unsigned long long sample_no);
/* Sample times were not acquired (invalid, or not sampled): the next sample starts a new segment. */
void classifier_gap(sim_classifier *c);
void classifier_close(sim_classifier *c);

/* ---- --beats: the C QRS detector on the device (beats.c) ---- */

#define SIM_BEAT_SEGMENTS 8

typedef struct {
    int on, started, gap, restart_pending;
    unsigned lead;                 /* the source lead the detector reads */
    float gain_mv;
    int32_t baseline;
    ecgb_qrs_t *qrs;
    struct {
        int64_t det_n;             /* detector sample det_n is stream sample `stream`, onwards */
        uint64_t stream;
    } seg[SIM_BEAT_SEGMENTS];
    unsigned n_seg;
    float chunk[ECGB_MAX_FRAME];   /* the frame in hand's samples of that lead, mV */
    unsigned n_chunk;
    uint64_t chunk_end;            /* stream sample after the last one in chunk */
    uint64_t from;                 /* the next beat frame's from_sample */
    ecgb_beats frame;
    uint16_t seq;
    unsigned long long beats_found, frames_sent;
} sim_beats;

/* Start the detector on the source's QRS lead (II or MLII, else the first). 0, else -1 with a reason. */
int beats_open(sim_beats *b, const sim_source *src, uint8_t stream_id, char *err, size_t err_len);
/* One sample time sent (ADC values of every lead, index sample_no). */
void beats_push(sim_beats *b, const int32_t *adc, unsigned lead_off, unsigned long long sample_no);
/* Sample times were not sent: the detector re-learns its thresholds after them. */
void beats_gap(sim_beats *b);
/* The frame in hand was lost (disconnect): its samples are dropped, and a gap follows. */
void beats_discard(sim_beats *b);
/* After a sample frame is sent: its samples to the detector; 1 with *out filled when beats came out. */
int beats_frame(sim_beats *b, ecgb_beats *out);

#endif
