/* route.h - table location templates: one pipeline, one table per topic.
 *
 * A template such as "/data/delta/{table}" names each topic's table.  The
 * placeholders are resolved from the topic name alone (Debezium names
 * topics PREFIX.SCHEMA.TABLE), so a topic always lands in one table and the
 * resume point of a topic can be found without reading any message:
 *   {topic}  the whole topic name
 *   {table}  its last dot-separated part
 *   {schema} the part before that ("" when the topic has no dot)
 * Every resolved value is sanitised to [A-Za-z0-9_-] and placeholders may
 * only appear in the template's last path component, so the result always
 * sits directly under the template's fixed parent directory. */
#ifndef CF_ROUTE_H
#define CF_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include "util/err.h"

/* Longest sanitised value; longer ones are cut and end in a hash of the
 * original, so distinct long names stay distinct and fit a file name. */
#define CF_ROUTE_VALUE_MAX 200
#define CF_ROUTE_PATH_MAX  4096

/* true when `tmpl` holds a '{'. */
bool cf_route_is_template(const char *tmpl);
/* Check a template: known placeholders, all in the last path component,
 * a non-empty fixed parent.  0, or -1 with *err set (CF_E_ARG). */
int  cf_route_check(const char *tmpl, cf_err *err);
/* Copy `in` to `out` (cap >= CF_ROUTE_VALUE_MAX + 1) with every byte
 * outside [A-Za-z0-9_-] replaced by '_'; empty becomes "_". */
void cf_route_sanitize(const char *in, char *out, size_t cap);
/* The {table}/{schema} values of a topic, unsanitised, into out (cap bytes). */
void cf_route_topic_table(const char *topic, char *out, size_t cap);
void cf_route_topic_schema(const char *topic, char *out, size_t cap);
/* Resolve `tmpl` for `topic` into out.  0, or -1 with *err set. */
int  cf_route_expand(const char *tmpl, const char *topic, char *out, size_t cap, cf_err *err);
/* The fixed parent directory of a checked template ("/data/delta" for
 * "/data/delta/{table}"), and whether directory entry `name` could be one
 * of its tables (the last component's literal text around the
 * placeholders matches). */
int  cf_route_parent(const char *tmpl, char *out, size_t cap);
bool cf_route_entry_matches(const char *tmpl, const char *name);

#endif
