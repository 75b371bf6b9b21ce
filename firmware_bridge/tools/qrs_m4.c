/*
 * The C QRS detector on an emulated Cortex-M4F (QEMU mps2-an386, bare metal; start-up, linker script
 * and semihosting from ecgedge/export/mcu_c/cortex_m4/). Built and run by tools/qrs_m4.py: pushes the
 * linked-in signal in 40-ms chunks, prints every beat, the SysTick ticks of init, of all pushes and of
 * the slowest push, the state's size and the stack high-water mark. With -DQRS_M4_BASELINE it calls
 * nothing of the detector (the flash the detector adds is the difference of the two images).
 */
#include <stdint.h>
#include <string.h>

#include "ecgb_qrs.h"
#include "semihost.h"

extern const float qrs_m4_signal[];
extern const uint32_t qrs_m4_count, qrs_m4_fs, qrs_m4_chunk;
uint32_t stack_high_water_bytes(void);

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static uint32_t ticks_since(uint32_t start) { return (start - SYST_CVR) & 0xFFFFFFu; }

static char *put_int(char *p, uint32_t u)
{
    char tmp[12];
    int n = 0;
    do { tmp[n++] = (char)('0' + u % 10u); u /= 10u; } while (u);
    while (n) *p++ = tmp[--n];
    return p;
}

static void say(const char *tag, uint32_t a, uint32_t b)
{
    char line[64], *p = line;
    while (*tag) *p++ = *tag++;
    p = put_int(p, a);
    *p++ = ' ';
    p = put_int(p, b);
    *p++ = '\n';
    *p = 0;
    semihost_write0(line);
}

#ifndef QRS_M4_BASELINE
static ecgb_qrs_t qrs; /* the caller-owned state: static RAM */

static uint64_t push_ticks;
static uint32_t max_push;

static void report(const ecgb_beat_t *b, int n)
{
    int i;
    for (i = 0; i < n; ++i) say("B ", (uint32_t)b[i].sample, b[i].flags);
}
#endif

int main(void)
{
    uint32_t t0, loop_ticks;
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5u;
    t0 = SYST_CVR;
    __asm__ volatile("ldr r0, =1000000\n1: subs r0, r0, #1\n bne 1b\n" ::: "r0", "cc");
    loop_ticks = ticks_since(t0);
#ifndef QRS_M4_BASELINE
    {
        ecgb_beat_t beats[8];
        uint32_t i, init_ticks;
        int n;
        t0 = SYST_CVR;
        if (ecgb_qrs_init(&qrs, (double)qrs_m4_fs, 1, NULL) != 0) {
            semihost_write0("INIT FAILED\n");
            return 1;
        }
        init_ticks = ticks_since(t0);
        for (i = 0; i < qrs_m4_count; i += qrs_m4_chunk) {
            uint32_t m = qrs_m4_count - i < qrs_m4_chunk ? qrs_m4_count - i : qrs_m4_chunk, t;
            t0 = SYST_CVR;
            n = ecgb_qrs_push(&qrs, qrs_m4_signal + i, (int)m, NULL, beats, 8);
            t = ticks_since(t0);
            push_ticks += t;
            if (t > max_push) max_push = t;
            report(beats, n);
        }
        while ((n = ecgb_qrs_finish(&qrs, beats, 8)) > 0) report(beats, n);
        say("T ", init_ticks, (uint32_t)push_ticks);
        say("M ", max_push, (uint32_t)sizeof(ecgb_qrs_t));
    }
#else
    say("T ", 0, 0);
    say("M ", 0, 0);
#endif
    say("CAL ", loop_ticks, stack_high_water_bytes());
    return 0;
}
