/* sf_leave.c - see sf_leave.h. */
#include "core/sf_leave.h"

#include <pthread.h>

#ifdef __GLIBC__
/* Exported by glibc (GLIBC_2.2.5, and GLIBC_2.34 since libpthread merged
 * into libc) but declared in <pthread.h> only for compilers without
 * exceptions; the buffer's layout is there. */
extern void _pthread_cleanup_push(struct _pthread_cleanup_buffer *buffer,
                                  void (*routine)(void *), void *arg);
extern void _pthread_cleanup_pop(struct _pthread_cleanup_buffer *buffer,
                                 int execute);

/* The buffer must be on the real stack: glibc compares its address with
 * the jump target's stack pointer to decide whether its frame is being
 * left.  ASan's fake stack (detect_stack_use_after_return) would move it to
 * the heap, so this frame is not instrumented.  noinline: the frame must
 * exist between the caller and call(). */
__attribute__((noinline, no_sanitize_address)) void
sf_leave_guarded(void (*call)(void *), void *arg, void (*left)(void *),
                 void *left_arg)
{
	struct _pthread_cleanup_buffer buf;
	_pthread_cleanup_push(&buf, left, left_arg);
	call(arg);
	_pthread_cleanup_pop(&buf, 0);
}
#else
void sf_leave_guarded(void (*call)(void *), void *arg, void (*left)(void *),
                      void *left_arg)
{
	(void)left;
	(void)left_arg;
	call(arg);
}
#endif
