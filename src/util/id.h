/* id.h - random identifiers and the wall clock, for names of new files and
 * commit timestamps. */
#ifndef CF_ID_H
#define CF_ID_H

#include <stddef.h>
#include <stdint.h>

/* n random bytes from the kernel (getrandom); if that fails, a
 * time-and-pid mix that is unique but not secret.  Never fails. */
void cf_random_bytes(void *p, size_t n);
/* A random (version 4) UUID as 36 lower-case characters and a NUL. */
void cf_uuid(char out[37]);
/* Milliseconds since the epoch (CLOCK_REALTIME). */
int64_t cf_now_ms(void);

#endif
