/*
 * ecgedge_device: the classifier a device runs on its own samples. The preprocessing the model needs
 * (ecgedge/data/preprocess.py in float32 C: causal polyphase resampling to the model's rate,
 * causal Butterworth band-pass in second-order sections, per-lead z-score of each window) feeding
 * the export's C99 INT8 library (ecgedge_model_run). C99, no malloc, single precision only.
 *
 * The constants (resampler taps, band-pass sections, window, hop, the source's rate and leads)
 * come from ecgedge_device_config.h, which ecgedge.export.mcu_device generates for one export and
 * one source rate. Windows end where ecgedge stream's monitor ends them (see ecgedge_device.c),
 * so the device's verdicts and the host's can be matched by their end sample.
 */
#ifndef ECGEDGE_DEVICE_H
#define ECGEDGE_DEVICE_H

#include <stdint.h>

#define ECGEDGE_DEVICE_ABI 1
#define ECGEDGE_DEVICE_MAX_CLASSES 32
#define ECGEDGE_DEVICE_FLAG_LEAD_OFF 1u /* an electrode the model reads was off during the window */

typedef struct {
    uint64_t first_sample;  /* source index of the window's first sample */
    uint64_t end_sample;    /* source index one past its last sample (the host's WindowVerdict.end_sample) */
    int label;              /* class index (argmax of the int8 logits; first on ties) */
    const char *label_text; /* the model's name for it */
    int n_classes;
    int8_t scores[ECGEDGE_DEVICE_MAX_CLASSES]; /* int8 logits: (q - zero_point) * scale */
    float scale;
    int zero_point;
    unsigned flags;         /* ECGEDGE_DEVICE_FLAG_* */
    const float *window;    /* the model's input: leads x samples, z-scored (valid until the next push) */
} ecgedge_device_verdict;

int ecgedge_device_abi(void);
/* One line: model, source rate, resampling ratio, window, hop. */
const char *ecgedge_device_describe(void);
double ecgedge_device_fs_in(void);
int ecgedge_device_source_leads(void);
/* Start a segment: the next sample pushed has source index first_sample. */
void ecgedge_device_reset(uint64_t first_sample);
/* One sample time: mv[source leads] in mV, lead_off bit i = source lead i off. Returns 1 when a
 * window ends at this sample (its verdict in *v), else 0. A NaN or +-Inf sample is held at the
 * lead's previous sample (0 before the first) and counts as lead-off: the window that holds it is
 * flagged ECGEDGE_DEVICE_FLAG_LEAD_OFF and the filters stay finite. */
int ecgedge_device_push(const float *mv, unsigned lead_off, ecgedge_device_verdict *v);

#endif
