/* sf_export.h - marks the interposed entry points.
 *
 * Everything is built with -fvisibility=hidden; only functions marked here
 * are visible, and shim/sfshim.map decides their versions. */
#ifndef SF_EXPORT_H
#define SF_EXPORT_H

#define SF_EXPORT __attribute__((visibility("default")))

/* Binds a wrapper to name@version ("@@" when it is the default). */
#define SF_SYMVER(wrapper, versioned) __asm__(".symver " #wrapper "," versioned)

#endif
