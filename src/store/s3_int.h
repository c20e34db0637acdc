/* s3_int.h - the S3 backend's pure helpers and test hooks (SigV4 payload
 * hash, key encoding, XML text), exposed so unit tests can check them
 * against known values without a server. */
#ifndef CF_S3_INT_H
#define CF_S3_INT_H

#include <stddef.h>
#include "store/store.h"

/* Lower-case hex SHA-256 of n bytes at p, NUL-terminated: the value of
 * x-amz-content-sha256.  Can't fail. */
void cf_s3_sha256_hex(const void *p, size_t n, char out[65]);

/* Append s[0..n) URI-encoded the SigV4 way (RFC 3986 unreserved bytes kept,
 * everything else %XX upper-case), '/' kept when keep_slash (object keys)
 * and encoded otherwise (query values).  -1 with *err when the buffer's cap
 * is hit. */
int cf_s3_uri_encode(cf_buf *out, const char *s, size_t n, int keep_slash, cf_err *err);

/* Decode the XML text s[0..n) (the five named entities and &#N; / &#xH;)
 * into out (at most cap-1 bytes and a NUL).  The decoded length, or -1 if
 * an entity is malformed or the text does not fit. */
long cf_s3_xml_unescape(const char *s, size_t n, char *out, size_t cap);

/* Test hook: ask for at most n keys per ListObjectsV2 page (S3's own
 * maximum, 1000, when n <= 0), so pagination is tested on few objects. */
void cf_s3_set_list_page(cf_store *st, int n);

#endif
