/* sf_version.c - the version, findable in the library file itself: the
 * launcher's --version reads it from there (what(1) style), so it reports
 * the library it would preload, not the one it was installed with. */
#include "common/sf_version.h"

__attribute__((used)) static const char sf_version_tag[] =
        "@(#)libsfshim " SF_VERSION;
