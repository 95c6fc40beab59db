/* sf_guard.c - the per-thread re-entrancy depth (see sf_guard.h). */
#include "common/sf_guard.h"

__thread int sf_guard_depth __attribute__((tls_model("initial-exec")));
