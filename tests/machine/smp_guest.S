/*
 * Two VPs for `mshv run --vps 2` (flat, protected mode, linked at 1 MiB): the
 * BSP copies a real-mode trampoline to 0x8000, sends INIT (ICR 0x000c4500:
 * all excluding self, level assert) and a STARTUP IPI with vector 8
 * (0x000c4608: the AP starts at 0800:0000 in real mode), then waits for the
 * AP's flag at 0x7000. The AP prints "AP up" on COM1, sets the flag and
 * halts; the BSP prints "BSP saw the AP" and ends with isa-debug-exit 0x21.
 */
	.set COM1, 0x3f8
	.set DEBUG_EXIT, 0xf4
	.set ICR_LOW, 0xfee00300
	.set FLAG, 0x7000

start:
	movl $0, FLAG
	mov $ap, %esi
	mov $0x8000, %edi
	mov $(ap_end - ap), %ecx
	cld
	rep movsb
	movl $0x000c4500, ICR_LOW		/* INIT */
	movl $0x000c4608, ICR_LOW		/* STARTUP, vector 8 */
1:	pause
	cmpl $1, FLAG
	jne 1b
	mov $bsp_msg, %esi
	mov $COM1, %dx
2:	lodsb
	test %al, %al
	jz 3f
	out %al, %dx
	jmp 2b
3:	mov $0x21, %al
4:	out %al, $DEBUG_EXIT
	jmp 4b

bsp_msg:
	.asciz "BSP saw the AP\n"

	.code16
ap:					/* copied to 0x8000, runs at 0800:0000 */
	mov $COM1, %dx
	mov $'A', %al
	out %al, %dx
	mov $'P', %al
	out %al, %dx
	mov $' ', %al
	out %al, %dx
	mov $'u', %al
	out %al, %dx
	mov $'p', %al
	out %al, %dx
	mov $'\n', %al
	out %al, %dx
	xor %ax, %ax
	mov %ax, %ds
	movl $1, FLAG
5:	cli
	hlt
	jmp 5b
ap_end:
	.code32
