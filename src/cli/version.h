/* version.h - cdcflow's version string. */
#ifndef CF_VERSION_H
#define CF_VERSION_H
#define CF_VERSION "0.1.0"
#endif
