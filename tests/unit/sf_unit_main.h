/* sf_unit_main.h - what every unit test's main() ends with: runs its
 * suite with check's normal output. */
#ifndef SF_UNIT_MAIN_H
#define SF_UNIT_MAIN_H

#include <check.h>
#include <stdlib.h>

/* Runs s (and frees it); EXIT_FAILURE when any test failed. */
static inline int sf_unit_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
