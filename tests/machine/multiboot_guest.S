/*
 * A multiboot v1 kernel for `mshv run` tests: checks the boot loader's magic,
 * prints a greeting, the command line and the upper memory size (KiB, hex) from
 * the boot information on COM1, then ends with isa-debug-exit code 0x21
 * (process exit status 0x43). Built as a 32-bit ELF linked at 1 MiB.
 */
	.set MB_MAGIC, 0x1BADB002
	.set MB_FLAGS, 0x3			/* align modules, memory info */
	.set COM1, 0x3f8
	.set DEBUG_EXIT, 0xf4

	.section .multiboot, "a"
	.align 4
	.long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

	.text
	.code32
	.globl _start
_start:
	mov $stack_top, %esp
	cmp $0x2BADB002, %eax
	jne bad_magic
	mov %ebx, %edi				/* the boot information */
	mov $greeting, %esi
	call puts
	mov $cmdline_label, %esi
	call puts
	mov 16(%edi), %esi			/* cmdline */
	call puts
	mov $newline, %esi
	call puts
	mov $mem_label, %esi
	call puts
	mov 8(%edi), %eax			/* mem_upper */
	call puthex
	mov $newline, %esi
	call puts
	mov $0x21, %al
exit:
	out %al, $DEBUG_EXIT
	jmp exit
bad_magic:
	mov $0x7f, %al
	jmp exit

/* print the NUL-terminated string at %esi (waits for THR empty, as a real driver does) */
puts:
	mov $COM1 + 5, %dx
1:	in %dx, %al
	test $0x20, %al
	jz 1b
	lodsb
	test %al, %al
	jz 2f
	mov $COM1, %dx
	out %al, %dx
	jmp puts
2:	ret

/* print %eax as 8 hex digits */
puthex:
	mov %eax, %ebx
	mov $8, %ecx
1:	rol $4, %ebx
	mov %ebx, %eax
	and $0xf, %eax
	mov hexdigits(%eax), %al
	mov $COM1, %dx
	out %al, %dx
	loop 1b
	ret

	.section .rodata
greeting:	.asciz "hello from a multiboot guest\n"
cmdline_label:	.asciz "cmdline: "
mem_label:	.asciz "mem_upper: "
newline:	.asciz "\n"
hexdigits:	.ascii "0123456789abcdef"

	.bss
	.align 16
	.skip 4096
stack_top:
