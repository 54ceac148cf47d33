/*
 * The 64-bit entry of a synthetic bzImage for `mshv run` tests: the boot
 * protocol gives RSI = struct boot_params. It prints the command line
 * (boot_params.hdr.cmd_line_ptr at 0x228), the number of e820 entries (0x1e8)
 * and the type_of_loader byte (0x210) on COM1, then ends with isa-debug-exit
 * code 0x11 (exit status 0x23). Linked at the kernel's load address + 0x200.
 */
	.set COM1, 0x3f8
	.code64
	.globl _start
_start:
	mov %rsi, %r12
	lea label(%rip), %rsi
	call puts
	mov 0x228(%r12), %esi
	call puts
	lea e820_label(%rip), %rsi
	call puts
	movzbl 0x1e8(%r12), %eax
	add $'0', %al
	mov $COM1, %dx
	out %al, %dx
	lea loader_label(%rip), %rsi
	call puts
	movzbl 0x210(%r12), %eax
	call puthex2
	mov $'\n', %al
	mov $COM1, %dx
	out %al, %dx
	mov $0x11, %al
1:	out %al, $0xf4
	jmp 1b

puts:
	lodsb
	test %al, %al
	jz 2f
	mov $COM1, %dx
	out %al, %dx
	jmp puts
2:	ret

puthex2:
	mov %eax, %ebx
	shr $4, %eax
	and $0xf, %eax
	lea hexdigits(%rip), %rcx
	mov (%rcx,%rax), %al
	mov $COM1, %dx
	out %al, %dx
	mov %ebx, %eax
	and $0xf, %eax
	mov (%rcx,%rax), %al
	out %al, %dx
	ret

label:		.asciz "linux boot: cmdline="
e820_label:	.asciz " e820="
loader_label:	.asciz " loader="
hexdigits:	.ascii "0123456789abcdef"
