/* sf_leave.h - knowing when a call was left without returning.
 *
 * Code beneath an unmodified program calls back into it (a libcurl write
 * callback) or runs while its signal handlers may fire (the classic
 * resolver timeout: alarm() and a siglongjmp out of getaddrinfo).  Such a
 * program may leave the shim's frames without returning: by longjmp or
 * siglongjmp to a point above them, or by thread cancellation.  Whatever
 * the shim holds across the call (a flight others wait on, a re-entrancy
 * depth) must then be released, or followers wait forever and the thread's
 * later calls all look re-entrant.
 *
 * glibc runs, on both ways out, the handlers of the frames being jumped
 * over that were registered with the exported _pthread_cleanup_push (the
 * non-exception form): __libc_siglongjmp calls _longjmp_unwind, which calls
 * __pthread_cleanup_upto for the frames between the jump and its target,
 * and cancellation's forced unwind runs the same list as frames go.  (The
 * pthread_cleanup_push macro, built with -fexceptions as the shim is, uses
 * attribute cleanup instead, which a longjmp does not run.)  Checked on
 * glibc 2.36, plain and under ASan and TSan.  Elsewhere (no glibc) the
 * call runs unguarded. */
#ifndef SF_LEAVE_H
#define SF_LEAVE_H

/* Runs call(arg).  If control leaves call() by a longjmp/siglongjmp to a
 * point outside sf_leave_guarded(), or by the thread's cancellation,
 * left(left_arg) runs first, on the way out (for a jump out of a signal
 * handler: inside that handler, so left() must stay short and take only
 * locks that the interrupted code cannot hold).  After a normal return
 * left() never runs. */
void sf_leave_guarded(void (*call)(void *), void *arg, void (*left)(void *),
                      void *left_arg);

#endif
