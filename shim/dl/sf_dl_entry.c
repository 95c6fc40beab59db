/* sf_dl_entry.c - the exported dlopen: an entry point in assembly.
 *
 * Every call without RTLD_DEEPBIND, and every RTLD_DEEPBIND call that
 * sf_dl_deep_wanted() declines, leaves by a jump to the real dlopen with
 * the stack exactly as the caller left it: glibc reads the caller's own
 * return address and picks the caller's RUNPATH, $ORIGIN and namespace as
 * if the shim were not there.  Only x86-64 has the entry; elsewhere the
 * shim exports no dlopen and RTLD_DEEPBIND modules stay unreached. */
#include "dl/sf_dl_open.h"

#if defined(__x86_64__)

/* The stack is realigned to 16 bytes around each C call (8 bytes of
 * return address plus two saved registers plus 8 of padding); %rdi and
 * %rsi (file, mode) are saved and put back before the jump. */
__asm__(".text\n"
        ".globl dlopen\n"
        ".type dlopen, @function\n"
        ".p2align 4\n"
        "dlopen:\n"
        "	.cfi_startproc\n"
        "	endbr64\n"
        "	testl $0x8, %esi\n" /* RTLD_DEEPBIND */
        "	jnz 2f\n"
        "1:	movq sf_dl_real_dlopen_ptr(%rip), %rax\n"
        "	testq %rax, %rax\n"
        "	jz 3f\n"
        "	jmp *%rax\n"
        "2:	pushq %rdi\n"
        "	.cfi_adjust_cfa_offset 8\n"
        "	pushq %rsi\n"
        "	.cfi_adjust_cfa_offset 8\n"
        "	subq $8, %rsp\n"
        "	.cfi_adjust_cfa_offset 8\n"
        "	movq 24(%rsp), %rdx\n" /* the caller's return address */
        "	call sf_dl_deep_wanted\n"
        "	addq $8, %rsp\n"
        "	.cfi_adjust_cfa_offset -8\n"
        "	popq %rsi\n"
        "	.cfi_adjust_cfa_offset -8\n"
        "	popq %rdi\n"
        "	.cfi_adjust_cfa_offset -8\n"
        "	testl %eax, %eax\n"
        "	jz 1b\n"
        "	jmp sf_dl_deep_open\n"
        "3:	pushq %rdi\n"
        "	.cfi_adjust_cfa_offset 8\n"
        "	pushq %rsi\n"
        "	.cfi_adjust_cfa_offset 8\n"
        "	subq $8, %rsp\n"
        "	.cfi_adjust_cfa_offset 8\n"
        "	call sf_dl_resolve\n"
        "	addq $8, %rsp\n"
        "	.cfi_adjust_cfa_offset -8\n"
        "	popq %rsi\n"
        "	.cfi_adjust_cfa_offset -8\n"
        "	popq %rdi\n"
        "	.cfi_adjust_cfa_offset -8\n"
        "	testq %rax, %rax\n"
        "	jz 4f\n"
        "	jmp *%rax\n"
        "4:	xorl %eax, %eax\n" /* no dlopen below: fail as dlopen does */
        "	ret\n"
        "	.cfi_endproc\n"
        ".size dlopen, .-dlopen\n");

#endif
