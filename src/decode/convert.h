/* convert.h - value conversions of Debezium's encodings: base64, decimals
 * (two's complement bytes, decimal text), ISO-8601 dates and timestamps.
 * Pure functions over caller buffers: no allocation, no global state. */
#ifndef CF_CONVERT_H
#define CF_CONVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decode base64 (standard or URL-safe alphabet, padding optional) into dst,
 * which must hold n*3/4+3 bytes.  Returns the decoded length, -1 if bad. */
long cf_conv_base64(const char *s, size_t n, uint8_t *dst);
/* Encode n bytes as standard padded base64 into out, which must hold
 * (n + 2) / 3 * 4 + 1 bytes; NUL-terminated. */
void cf_conv_base64_encode(const uint8_t *p, size_t n, char *out);

/* Big-endian two's complement integer of n bytes -> int64.  -1 when it
 * does not fit. */
int cf_conv_be_i64(const uint8_t *p, size_t n, int64_t *out);

/* Big-endian two's complement integer of n bytes with `scale` -> decimal
 * text ("-123.45").  dst must hold cf_conv_dec_text_max(n, scale) bytes.
 * Returns the text length. */
size_t cf_conv_dec_text_max(size_t n, int scale);
size_t cf_conv_be_dec_text(const uint8_t *p, size_t n, int scale, char *dst);

/* Parse decimal text ("-12.5", "1e3", "0.125") to `scale` fractional
 * digits, rounding half away from zero like PostgreSQL.  Writes the sign
 * and the digits of the unscaled value (no leading zeros, "0" for zero) to
 * digits (size cap `cap`) and returns the digit count, -1 if the text is not
 * a decimal number or the result does not fit.  *neg gets the sign. */
int cf_conv_dec_parse(const char *s, size_t n, int scale, bool *neg, char *digits, size_t cap);

/* Unscaled digits -> int64 when at most 18 digits. -1 otherwise. */
int cf_conv_digits_i64(const char *digits, int nd, bool neg, int64_t *out);
/* Unscaled digits + scale -> decimal text; dst holds nd + scale + 3 bytes. */
size_t cf_conv_digits_text(const char *digits, int nd, bool neg, int scale, char *dst);

/* Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t cf_conv_days_from_civil(int64_t y, unsigned m, unsigned d);

/* ISO-8601 "YYYY-MM-DD[THH:MM[:SS[.fffffffff]]][Z|+HH[:MM]|-HH[:MM]]" (a
 * space may replace the T) -> microseconds since the epoch.  With a zone
 * the result is UTC; without one it is the wall-clock value and
 * *had_zone is false.  -1 if malformed. */
int cf_conv_iso_ts(const char *s, size_t n, int64_t *us, bool *had_zone);
/* "YYYY-MM-DD" -> days since the epoch. */
int cf_conv_iso_date(const char *s, size_t n, int64_t *days);

/* Floor division, for negative nanos/millis before 1970. */
static inline int64_t cf_conv_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

#endif
