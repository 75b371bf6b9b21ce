/* Minimal Cortex-M4F start-up for QEMU's mps2-an386: vector table, .data/.bss set-up, FPU on,
 * the stack painted so its high-water mark can be read after the run; semihosting for output. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t __data_start, __data_end, __data_load, __bss_start, __bss_end, __stack_bottom, __stack_top;
int main(void);
void reset_handler(void);
static void fault_handler(void) { semihost_write0("FAULT\n"); semihost_exit(1); }

__attribute__((section(".vectors"), used)) static const void *vectors[16] = {
    &__stack_top, (const void *)reset_handler, (const void *)fault_handler, (const void *)fault_handler,
    (const void *)fault_handler, (const void *)fault_handler, (const void *)fault_handler,
};

#define STACK_PAINT 0xA5A5A5A5u

uint32_t stack_high_water_bytes(void)
{
    const uint32_t *p = &__stack_bottom;
    while (p < &__stack_top && *p == STACK_PAINT) p++;
    return (uint32_t)((const uint8_t *)&__stack_top - (const uint8_t *)p);
}

__attribute__((naked)) void reset_handler(void)
{
    __asm__ volatile(
        "ldr r0, =__stack_bottom\n"  /* paint the stack below the current frame-free sp */
        "ldr r1, =__stack_top\n"
        "ldr r2, =0xA5A5A5A5\n"
        "1: cmp r0, r1\n"
        "bhs 2f\n"
        "str r2, [r0], #4\n"
        "b 1b\n"
        "2: b reset_c\n");
}

__attribute__((used)) void reset_c(void)
{
    uint32_t *src = &__data_load, *dst = &__data_start;
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    while (dst < &__data_end) *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end;) *dst++ = 0;
    *cpacr |= 0xFu << 20;  /* CP10, CP11: full access to the FPU */
    __asm__ volatile("dsb\n isb");
    semihost_exit(main());
}
