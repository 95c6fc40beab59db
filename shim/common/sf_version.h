/* sf_version.h - the library's version.  One source: VERSION in the
 * Makefile, passed as -DSF_VERSION; debian/changelog must match it
 * (make check-version). */
#ifndef SF_VERSION_H
#define SF_VERSION_H

#ifndef SF_VERSION
#define SF_VERSION "unknown" /* built without the Makefile */
#endif

#endif
