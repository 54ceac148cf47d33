/*
 * A 32-bit multiboot v1 kernel for QEMU's -kernel on q35, built and booted by
 * tests/qemu/qemu_boot.py.
 *
 * It prints over COM1 (16550 at 0x3f8), reads the HPET (MMIO at 0xfed00000), takes
 * TICKS timer interrupts from the PIT (ISA IRQ 0, IOAPIC pin 2) through the IOAPIC
 * and the LAPIC, prints "done" and ends through isa-debug-exit (port 0xf4).
 *
 * Everything it prints is deterministic, so the serial output is the same under
 * every accelerator. Interrupts are enabled only on the `sti; hlt` that waits for
 * a tick, so a handler always interrupts that HLT: it drops the interrupt frame
 * and jumps on instead of returning with IRET (which this host's KVM cannot
 * emulate in 32-bit protected mode).
 */

#define COM1        0x3f8
#define DEBUG_EXIT  0xf4
#define LAPIC       0xfee00000
#define IOAPIC      0xfec00000
#define HPET        0xfed00000
#define TIMER_VEC   0x30
#define SPURIOUS    0xff
#define MB_MAGIC    0x1badb002
#define MB_LOADED   0x2badb002
#define PIT_DIVISOR 11932           /* 1193182 Hz / 11932: 100 Hz */
#define MIN_MS      ((TICKS - 1) * 10)

    .text
    .code32
    .balign 4
multiboot_header:                   /* first in .text: within the file's first 8 KiB */
    .long MB_MAGIC
    .long 0                         /* flags: an ELF kernel needs none */
    .long -MB_MAGIC

    .globl _start
_start:
    cli
    cld
    mov %eax, %edi                  /* the loader's magic */
    lgdt gdt_desc
    ljmp $0x08, $1f
1:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov $stack_top, %esp

    call serial_init
    cmp $MB_LOADED, %edi
    jne 1f
    mov $s_multiboot, %esi
    call puts
1:
    call idt_init
    /* Mask both 8259s: IRQ 0 reaches the CPU only through the IOAPIC. */
    mov $0xff, %al
    out %al, $0x21
    out %al, $0xa1

    /* LAPIC: software enable, spurious vector; accept every priority. */
    movl $(0x100 | SPURIOUS), LAPIC + 0xf0
    movl $0, LAPIC + 0x80

    /* HPET: print the counter period, start the main counter, keep its first value. */
    mov HPET + 0x4, %eax            /* capabilities, high half: period in fs */
    mov %eax, hpet_period
    mov $s_period, %esi
    call puts
    mov hpet_period, %eax
    call put_dec
    mov $s_fs, %esi
    call puts
    orl $1, HPET + 0x10             /* general configuration: ENABLE_CNF */
    mov HPET + 0xf0, %eax
    mov %eax, hpet_start

    /* IOAPIC pin 2 (the PIT on q35): TIMER_VEC, fixed, edge, physical APIC 0, unmasked. */
    movl $0x15, IOAPIC
    movl $0, IOAPIC + 0x10
    movl $0x14, IOAPIC
    movl $TIMER_VEC, IOAPIC + 0x10

    /* PIT channel 0, lobyte/hibyte, mode 2 (rate generator) at 100 Hz. */
    mov $0x34, %al
    out %al, $0x43
    mov $(PIT_DIVISOR & 0xff), %al
    out %al, $0x40
    mov $(PIT_DIVISOR >> 8), %al
    out %al, $0x40

wait_tick:
    sti
    hlt
    cli
    jmp wait_tick                   /* woken without an interrupt: wait again */

/* Vector TIMER_VEC: count the tick and print it; after TICKS of them, finish. */
timer:
    add $12, %esp                   /* drop EIP, CS, EFLAGS: no IRET (see the header) */
    movl $0, LAPIC + 0xb0           /* EOI */
    incl ticks
    mov $s_tick, %esi
    call puts
    mov ticks, %eax
    call put_dec
    mov $'\n', %al
    call putc
    cmpl $TICKS, ticks
    jb wait_tick

    /* Check the HPET against the ticks seen. */
    mov HPET + 0xf0, %eax
    sub hpet_start, %eax
    mov %eax, %ebx                  /* counter ticks elapsed */
    mov $(MIN_MS * 1000000), %eax   /* MIN_MS in fs, as a 64-bit dividend */
    mov $1000000, %ecx
    mul %ecx
    divl hpet_period                /* counter ticks that MIN_MS take */
    mov $s_hpet_ok, %esi
    cmp %eax, %ebx
    jae 1f
    mov $s_hpet_slow, %esi
1:  call puts
    mov $MIN_MS, %eax
    call put_dec
    mov $s_ms, %esi
    call puts
    mov $s_done, %esi
    call puts

    mov $EXIT_VALUE, %al
    jmp debug_exit

/* Vector SPURIOUS: no EOI (the LAPIC wants none), back to the wait. */
spurious:
    add $12, %esp
    jmp wait_tick

/* Any other vector, ECX = its number: report it and exit with FAULT_VALUE. */
unexpected:
    mov %ecx, %ebp
    mov $s_unexpected, %esi
    call puts
    mov %ebp, %eax
    call put_dec
    mov $'\n', %al
    call putc
    mov $FAULT_VALUE, %al

/*
 * isa-debug-exit with AL: QEMU exits with (AL << 1) | 1 once its main loop has
 * stopped the vCPU. QEMU 11.1's mshv vCPU thread (mshv_cpu_exec) goes back to
 * its event loop, where it sees the stop, only when a RUN_VP fails (QEMU's kick
 * signal came while the VP ran) or ends in an exit that mshv_run_vcpu does not
 * handle, such as an unrecoverable exception. A kick that arrives while the
 * thread is in user space is lost: a VP that then halts (the PIT stops with the
 * VM's clock) or keeps making port or MMIO exits runs on for ever. So after the
 * port write the guest triple-faults (an empty IDT, then #UD): every RUN_VP from
 * then on ends in an unrecoverable exception, and the vCPU thread passes its
 * event loop each time. Under KVM the triple fault is a guest reset, which
 * -no-reboot turns into the same shutdown.
 */
debug_exit:
    out %al, $DEBUG_EXIT
    lidt no_idt_desc
    ud2

/* 16550: no interrupts, 8N1, FIFOs on. */
serial_init:
    mov $(COM1 + 1), %dx
    mov $0, %al
    out %al, %dx                    /* IER */
    mov $(COM1 + 3), %dx
    mov $0x80, %al
    out %al, %dx                    /* LCR: DLAB */
    mov $COM1, %dx
    mov $1, %al
    out %al, %dx                    /* divisor low: 115200 baud */
    mov $(COM1 + 1), %dx
    mov $0, %al
    out %al, %dx                    /* divisor high */
    mov $(COM1 + 3), %dx
    mov $0x03, %al
    out %al, %dx                    /* LCR: 8N1 */
    mov $(COM1 + 2), %dx
    mov $0xc7, %al
    out %al, %dx                    /* FCR */
    ret

/* putc: AL to COM1 once the transmitter holding register is empty. */
putc:
    mov %eax, %ecx
    mov $(COM1 + 5), %dx
1:  in %dx, %al                     /* LSR */
    test $0x20, %al
    jz 1b
    mov %ecx, %eax
    mov $COM1, %dx
    out %al, %dx
    ret

/* puts: the NUL-terminated string at ESI. */
puts:
    lodsb
    test %al, %al
    jz 1f
    call putc
    jmp puts
1:  ret

/* put_dec: EAX in decimal. */
put_dec:
    mov $10, %ebx
    mov $numbuf_end, %edi
1:  xor %edx, %edx
    div %ebx
    add $'0', %dl
    dec %edi
    mov %dl, (%edi)
    test %eax, %eax
    jnz 1b
    mov %edi, %esi
    jmp puts

/* 256 interrupt gates: stub N (16 bytes apart) loads N into ECX and goes to `unexpected`;
 * TIMER_VEC and SPURIOUS have handlers of their own. */
idt_init:
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $4, %eax
    add $stubs, %eax
    call set_gate
    inc %ecx
    cmp $256, %ecx
    jb 1b
    mov $TIMER_VEC, %ecx
    mov $timer, %eax
    call set_gate
    mov $SPURIOUS, %ecx
    mov $spurious, %eax
    call set_gate
    lidt idt_desc
    ret

/* set_gate: IDT entry ECX -> handler EAX (32-bit interrupt gate, code selector 0x08). */
set_gate:
    mov %eax, %edx
    and $0xffff, %eax
    or $0x00080000, %eax
    mov %eax, idt(,%ecx,8)
    and $0xffff0000, %edx
    or $0x8e00, %edx
    mov %edx, idt + 4(,%ecx,8)
    ret

    .balign 16
stubs:
    .set vector, 0
    .rept 256
    .balign 16
    mov $vector, %ecx
    jmp unexpected
    .set vector, vector + 1
    .endr

    .data
    .balign 8
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff        /* 0x08: code, flat 4 GiB */
    .quad 0x00cf92000000ffff        /* 0x10: data, flat 4 GiB */
gdt_desc:
    .word 23
    .long gdt
idt_desc:
    .word 256 * 8 - 1
    .long idt
no_idt_desc:                        /* an empty IDT: any exception is a triple fault */
    .word 0
    .long 0
ticks:       .long 0
hpet_period: .long 0
hpet_start:  .long 0
s_multiboot: .asciz "multiboot ok\n"
s_period:    .asciz "hpet period "
s_fs:        .asciz " fs\n"
s_tick:      .asciz "tick "
s_hpet_ok:   .asciz "hpet advanced at least "
s_hpet_slow: .asciz "hpet advanced less than "
s_ms:        .asciz " ms\n"
s_done:      .asciz "done\n"
s_unexpected: .asciz "unexpected vector "
numbuf:      .space 12
numbuf_end:  .byte 0

    .bss
    .balign 8
idt:
    .space 256 * 8
    .space 4096
stack_top:
