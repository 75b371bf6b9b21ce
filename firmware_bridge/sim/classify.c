/*
 * ecgsim --classify EXPORT: the export's C99 INT8 model and the C preprocessing it needs, run on the
 * simulated device's own samples, each verdict sent as a label frame (PROTOCOL.md section 2b).
 *
 * ecgsim is one prebuilt binary that needs no model when it is built, and it cannot compile: the
 * host's Python (python -m ecgedge.export.mcu_device) builds the model's classifier for this source
 * (its rate and leads) into a shared object in the ecgedge cache and prints its path; ecgsim loads it
 * with dlopen. The shared object's interface is ecgedge/export/mcu_c/ecgedge_device.h (ABI 1; the
 * verdict layout below must match it).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim.h"

#define DEVICE_ABI 1

typedef struct { /* ecgedge_device_verdict, ABI 1 */
    uint64_t first_sample, end_sample;
    int label;
    const char *label_text;
    int n_classes;
    int8_t scores[SIM_MAX_CLASSES];
    float scale;
    int zero_point;
    unsigned flags;
    const float *window;
} device_verdict;

/* Run python -m ecgedge.export.mcu_device ... and read the shared object's path from its stdout.
 * Its stderr (the one-line reason when it fails) goes to ours. */
static int build(const char *argv0, const char *export, double hop_s, const sim_source *src,
                 char *path, size_t path_len, char *err, size_t err_len)
{
    char fs[64], hop[64], leads[ECGB_MAX_LEADS * 33] = "";
    const char *python = sim_host_python(argv0);
    int fd[2], status;
    size_t got = 0;
    ssize_t r;
    pid_t pid;
    unsigned i;

    snprintf(fs, sizeof fs, "%.17g", src->fs);
    snprintf(hop, sizeof hop, "%.17g", hop_s);
    for (i = 0; i < src->n_sig; ++i) {
        if (i)
            strcat(leads, ",");
        strcat(leads, src->lead_names[i]);
    }
    if (pipe(fd) != 0) {
        snprintf(err, err_len, "--classify: pipe: %s", strerror(errno));
        return -1;
    }
    fflush(stdout);
    pid = fork();
    if (pid < 0) {
        snprintf(err, err_len, "--classify: fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        char *args[] = {(char *)python, "-m", "ecgedge.export.mcu_device", (char *)export, "--fs-in", fs,
                        "--leads", leads, "--hop-s", hop, NULL};
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execvp(python, args);
        fprintf(stderr, "ecgsim --classify: cannot run %s: %s; set ECGSIM_PYTHON to a Python with ecgedge\n",
                python, strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    while (got + 1 < path_len && (r = read(fd[0], path + got, path_len - 1 - got)) > 0)
        got += (size_t)r;
    close(fd[0]);
    path[got] = '\0';
    while (got > 0 && (path[got - 1] == '\n' || path[got - 1] == '\r'))
        path[--got] = '\0';
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || got == 0) {
        snprintf(err, err_len, "--classify %s: no classifier built (%s -m ecgedge.export.mcu_device said why above)",
                 export, python);
        return -1;
    }
    return 0;
}

int classifier_open(sim_classifier *c, const char *export, double hop_s, const sim_source *src,
                    uint8_t stream_id, const char *argv0, char *err, size_t err_len)
{
    char path[4096];
    int (*abi)(void);
    const char *(*describe)(void);
    int (*source_leads)(void);
    unsigned i;

    memset(c, 0, sizeof *c);
    if (build(argv0, export, hop_s, src, path, sizeof path, err, err_len) != 0)
        return -1;
    c->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!c->handle) {
        snprintf(err, err_len, "--classify: cannot load %s: %s", path, dlerror());
        return -1;
    }
    *(void **)&abi = dlsym(c->handle, "ecgedge_device_abi");
    *(void **)&describe = dlsym(c->handle, "ecgedge_device_describe");
    *(void **)&source_leads = dlsym(c->handle, "ecgedge_device_source_leads");
    *(void **)&c->push = dlsym(c->handle, "ecgedge_device_push");
    *(void **)&c->reset = dlsym(c->handle, "ecgedge_device_reset");
    if (!abi || !describe || !source_leads || !c->push || !c->reset || abi() != DEVICE_ABI ||
        source_leads() != (int)src->n_sig) {
        snprintf(err, err_len, "--classify: %s is not an ecgedge device classifier (ABI %d) for %u leads", path,
                 DEVICE_ABI, src->n_sig);
        dlclose(c->handle);
        c->handle = NULL;
        return -1;
    }
    c->n_sig = src->n_sig;
    for (i = 0; i < src->n_sig; ++i) {
        c->gain_mv[i] = src->gain_uv[i] / 1000.0f;
        c->baseline[i] = src->baseline[i];
    }
    for (i = 0; i < SIM_MAX_PENDING; ++i) {
        c->pending[i].stream_id = stream_id;
        c->pending[i].fs_mhz = (uint32_t)(src->fs * 1000.0 + 0.5);
    }
    c->restart = 1;
    snprintf(c->describe, sizeof c->describe, "%s (%s)", describe(), path);
    return 0;
}

void classifier_push(sim_classifier *c, const int32_t *adc, unsigned lead_off, unsigned long long sample_no)
{
    float mv[ECGB_MAX_LEADS];
    device_verdict v;
    ecgb_label *l;
    unsigned i;
    int k;

    if (!c->handle)
        return;
    if (c->restart) {
        c->reset(sample_no);
        c->restart = 0;
    }
    for (i = 0; i < c->n_sig; ++i)
        mv[i] = (float)(adc[i] - c->baseline[i]) * c->gain_mv[i];
    if (!c->push(mv, lead_off, &v))
        return;
    c->windows++;
    if (c->n_pending == SIM_MAX_PENDING)
        return; /* cannot happen: the frame in hand is sent before the next window ends */
    l = &c->pending[c->n_pending++];
    l->seq = c->seq++;
    l->n_classes = (uint8_t)(v.n_classes > SIM_MAX_CLASSES ? SIM_MAX_CLASSES : v.n_classes);
    l->label = (uint8_t)v.label;
    l->first_sample = v.first_sample;
    l->end_sample = v.end_sample;
    l->scale = v.scale;
    l->zero_point = (int8_t)v.zero_point;
    l->flags = (uint8_t)(v.flags & ECGB_LABEL_FLAG_LEAD_OFF);
    memset(l->label_text, 0, sizeof l->label_text);
    for (k = 0; k < (int)ECGB_LABEL_TEXT && v.label_text && v.label_text[k]; ++k)
        l->label_text[k] = v.label_text[k];
    memcpy(l->scores, v.scores, sizeof l->scores);
}

void classifier_gap(sim_classifier *c)
{
    c->restart = 1;
}

void classifier_close(sim_classifier *c)
{
    if (c->handle)
        dlclose(c->handle);
    c->handle = NULL;
}
