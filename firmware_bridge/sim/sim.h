/* ecgsim internals: a sample source (WFDB record or raw file) and a byte link. */
#ifndef ECGSIM_H
#define ECGSIM_H

#include <stdint.h>
#include <stdio.h>

#include "ecgbridge.h"

#define SIM_MAX_FILES ECGB_MAX_LEADS

/* One signal file of a record: its signals are consecutive and interleaved in the file. */
typedef struct {
    FILE *fp;
    char path[4096];
    int format;          /* WFDB format: 16, 212, 24 */
    long offset;         /* bytes skipped at the start ("16+24": format 16 at offset 24) */
    unsigned first_sig;  /* index of its first signal in the record */
    unsigned n_sig;
    int have_pending;    /* format 212: second sample of a byte triple not yet returned */
    int32_t pending;
} sim_file;

typedef struct {
    char name[256];
    unsigned n_sig;
    double fs;                 /* Hz */
    float gain_uv;             /* uV per ADC unit, shared by every signal */
    int32_t baseline;          /* ADC value of 0 mV, shared */
    int32_t rail;              /* largest value the source format can hold */
    unsigned wire_format;      /* ECGB_FMT_INT16 or ECGB_FMT_INT24 */
    long long n_samples;       /* samples per signal from the header, -1 when unknown */
    char lead_names[ECGB_MAX_LEADS][32];
    uint8_t lead_ids[ECGB_MAX_LEADS];
    sim_file files[SIM_MAX_FILES];
    unsigned n_files;
} sim_source;

/* One signal line of a WFDB header, as the device uses it. */
typedef struct {
    char file_name[256];  /* as written: letter case kept, no extension assumed */
    int format;           /* WFDB format: 16, 212, 24 */
    long byte_offset;     /* "+N" of the format field: bytes before the first sample */
    double adc_gain;      /* ADC units per physical unit; 200 where the header gives 0 or none */
    long baseline;        /* ADC value of 0 physical units; the ADC zero where not written */
    double uv_per_unit;   /* 1 (uV), 1000 (mV, also when no units are written), 1e6 (V) */
    long adc_zero;
    char description[32]; /* lead name, e.g. "II" or "MLII"; "" when absent */
} wfdb_signal;

/* The header of a single-segment WFDB record. */
typedef struct {
    char name[256];
    unsigned n_sig;
    double fs;                 /* Hz; 250 where not written */
    long long n_samples;       /* per signal; -1 when not written or 0 (WFDB: unknown) */
    char base_time[32];        /* as written, "" when absent; not interpreted */
    char base_date[32];
    wfdb_signal sig[ECGB_MAX_LEADS];
} wfdb_header;

/* Parse the text of a .hea file (NUL-terminated; "\n" or "\r\n" lines, comments, blank
 * lines). `where` names the header in messages. 0 on success, else -1 with a one-line reason
 * in err naming the record, the signal and the field. */
int wfdb_header_parse(wfdb_header *h, const char *text, const char *where, char *err,
                      size_t err_len);

/* Open a WFDB record (path without extension, or the .hea path). 0 on success, else -1 with
 * a one-line reason in err. */
int source_open_wfdb(sim_source *src, const char *record, char *err, size_t err_len);

/* Open raw little-endian int16 interleaved samples. lead_names: comma list or NULL. */
int source_open_raw(sim_source *src, const char *path, double fs, unsigned n_leads, double gain_uv,
                    long baseline, const char *lead_names, char *err, size_t err_len);

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

#endif
