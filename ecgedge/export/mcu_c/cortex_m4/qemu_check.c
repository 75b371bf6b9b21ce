/* Runs the generated library on every check window (check_data.c) and prints, per window, the int8
 * logits and the SysTick ticks it took; then the stack high-water mark and a calibration of ticks
 * against a loop of known length. Under qemu-system-arm -icount shift=0 every instruction advances
 * the virtual clock by 1 ns, so SysTick ticks are instruction counts divided by a constant. */
#include <stdint.h>
#include <string.h>

#include "ecgedge_model.h"
#include "semihost.h"

extern const float ecgedge_check_windows[][ECGEDGE_MODEL_INPUT_VALUES];
extern const uint32_t ecgedge_check_count;
uint32_t stack_high_water_bytes(void);

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static float window[ECGEDGE_MODEL_INPUT_VALUES];  /* the caller's input buffer, as a device would have it */

static char *put_int(char *p, int32_t v)
{
    char tmp[12];
    int n = 0;
    uint32_t u = v < 0 ? (uint32_t)(-(v + 1)) + 1u : (uint32_t)v;
    if (v < 0) *p++ = '-';
    do { tmp[n++] = (char)('0' + u % 10u); u /= 10u; } while (u);
    while (n) *p++ = tmp[--n];
    return p;
}

static uint32_t ticks_since(uint32_t start) { return (start - SYST_CVR) & 0xFFFFFFu; }

/* Per-layer ticks of the first window: ecgedge_model.c is compiled with
 * -DECGEDGE_LAYER_DONE(i)=ecgedge_layer_done(i) (about ten instructions per layer). */
#define MAX_LAYERS 64
static uint32_t layer_ticks[MAX_LAYERS], layer_mark, layer_count, profiling;

void ecgedge_layer_done(int layer)
{
    uint32_t now = SYST_CVR;
    if (profiling && layer < MAX_LAYERS) {
        layer_ticks[layer] = (layer_mark - now) & 0xFFFFFFu;
        layer_count = (uint32_t)layer + 1u;
    }
    layer_mark = SYST_CVR;
}

int main(void)
{
    char line[96];
    uint32_t i, t0, loop_ticks;
    int8_t out[ECGEDGE_MODEL_CLASSES];
    int k;
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5u;  /* enable, processor clock, no interrupt */
    /* calibration: 2 instructions per iteration (subs, bne), 1,000,000 iterations */
    t0 = SYST_CVR;
    __asm__ volatile("ldr r0, =1000000\n1: subs r0, r0, #1\n bne 1b\n" ::: "r0", "cc");
    loop_ticks = ticks_since(t0);
    for (i = 0; i < ecgedge_check_count; i++) {
        char *p = line;
        uint32_t ticks;
        memcpy(window, ecgedge_check_windows[i], sizeof window);
        profiling = i == 0;
        t0 = layer_mark = SYST_CVR;
        ecgedge_model_run(window, out);
        ticks = ticks_since(t0);
        *p++ = 'W';
        for (k = 0; k < ECGEDGE_MODEL_CLASSES; k++) { *p++ = ' '; p = put_int(p, out[k]); }
        *p++ = ' ';
        p = put_int(p, (int32_t)ticks);
        *p++ = '\n';
        *p = 0;
        semihost_write0(line);
    }
    for (i = 0; i < layer_count; i++) {
        char *p = line;
        memcpy(p, "L ", 2); p += 2;
        p = put_int(p, (int32_t)i);
        *p++ = ' ';
        p = put_int(p, (int32_t)layer_ticks[i]);
        *p++ = '\n';
        *p = 0;
        semihost_write0(line);
    }
    {
        char *p = line;
        memcpy(p, "CAL ", 4); p += 4;
        p = put_int(p, (int32_t)loop_ticks);
        memcpy(p, " STACK ", 7); p += 7;
        p = put_int(p, (int32_t)stack_high_water_bytes());
        *p++ = '\n';
        *p = 0;
        semihost_write0(line);
    }
    return 0;
}
