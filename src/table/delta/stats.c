/* stats.c - Delta's JSON side of a table: the Spark StructType schemaString,
 * per-file statistics, and partition values as strings. */
#include "table/delta/delta_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- calendar ---------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * well-known civil calendar arithmetic). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int64_t floordiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

static void fmt_date(int32_t days, char *buf, size_t n)
{
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, n, "%04" PRId64 "-%02d-%02d", y, m, d);
}

/* sep ' ' or 'T'; frac_digits 3 or 6; zulu appends 'Z'. */
static void fmt_ts(int64_t us, char sep, int frac_digits, bool zulu, char *buf, size_t n)
{
    int64_t days = floordiv(us, 86400000000LL), rem = us - days * 86400000000LL;
    int64_t y;
    int m, d;
    int64_t secs = rem / 1000000, frac = rem % 1000000;

    civil_from_days(days, &y, &m, &d);
    if (frac_digits == 3)
        snprintf(buf, n, "%04" PRId64 "-%02d-%02d%c%02d:%02d:%02d.%03d%s", y, m, d, sep,
                 (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), (int)(frac / 1000),
                 zulu ? "Z" : "");
    else
        snprintf(buf, n, "%04" PRId64 "-%02d-%02d%c%02d:%02d:%02d.%06d%s", y, m, d, sep,
                 (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), (int)frac,
                 zulu ? "Z" : "");
}

void cf_delta_fmt_ts_ms(int64_t ms, char *buf, size_t n)
{
    fmt_ts(ms * 1000, ' ', 3, false, buf, n);
}

int cf_delta_parse_date(const char *s, int32_t *out)
{
    int y, m, d;
    char tail;
    if (sscanf(s, "%d-%d-%d%c", &y, &m, &d, &tail) != 3 || m < 1 || m > 12 || d < 1 || d > 31)
        return -1;
    *out = (int32_t)days_from_civil(y, m, d);
    return 0;
}

int cf_delta_parse_ts(const char *s, int64_t *out)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    int64_t frac = 0;

    if (sscanf(s, "%d-%d-%d%n", &y, &mo, &d, &n) != 3 || mo < 1 || mo > 12 || d < 1 || d > 31)
        return -1;
    s += n;
    if (*s == ' ' || *s == 'T') {
        if (sscanf(s + 1, "%d:%d:%d%n", &h, &mi, &sec, &n) != 3)
            return -1;
        s += 1 + n;
        if (*s == '.') {
            int digits = 0;
            for (s++; *s >= '0' && *s <= '9'; s++, digits++)
                if (digits < 6)
                    frac = frac * 10 + (*s - '0');
            for (; digits < 6; digits++)
                frac *= 10;
        }
    }
    if (*s && strcmp(s, "Z") && strcmp(s, "+00:00"))
        return -1;
    *out = (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) * 1000000LL + frac;
    return 0;
}

/* ---- schema ------------------------------------------------------------- */

const char *cf_delta_type_name(cf_type t, char *buf, size_t n)
{
    switch (t.id) {
    case CF_T_BOOL: return "boolean";
    case CF_T_INT32: return "integer";
    case CF_T_INT64: return "long";
    case CF_T_TIME: return "long";           /* microseconds of day */
    case CF_T_FLOAT: return "float";
    case CF_T_DOUBLE: return "double";
    case CF_T_STRING: return "string";
    case CF_T_UUID: return "string";
    case CF_T_BINARY: return "binary";
    case CF_T_DATE: return "date";
    case CF_T_TIMESTAMP: return "timestamp";
    /* needs the timestampNtz table feature (reader 3 / writer 7) */
    case CF_T_TIMESTAMP_NTZ: return "timestamp_ntz";
    case CF_T_DECIMAL:
        if (t.precision <= 0)
            return "string";                 /* unbounded numeric: kept as text */
        snprintf(buf, n, "decimal(%d,%d)", t.precision, t.scale);
        return buf;
    }
    return "string";
}

static int parse_type(const char *t, cf_type *out, cf_err *err)
{
    int p, sc;
    memset(out, 0, sizeof *out);
    if (!strcmp(t, "boolean")) out->id = CF_T_BOOL;
    else if (!strcmp(t, "integer") || !strcmp(t, "short") || !strcmp(t, "byte")) out->id = CF_T_INT32;
    else if (!strcmp(t, "long")) out->id = CF_T_INT64;
    else if (!strcmp(t, "float")) out->id = CF_T_FLOAT;
    else if (!strcmp(t, "double")) out->id = CF_T_DOUBLE;
    else if (!strcmp(t, "string")) out->id = CF_T_STRING;
    else if (!strcmp(t, "binary")) out->id = CF_T_BINARY;
    else if (!strcmp(t, "date")) out->id = CF_T_DATE;
    else if (!strcmp(t, "timestamp")) out->id = CF_T_TIMESTAMP;
    else if (!strcmp(t, "timestamp_ntz")) out->id = CF_T_TIMESTAMP_NTZ;
    else if (sscanf(t, "decimal(%d,%d)", &p, &sc) == 2 && p >= 1 && p <= 38 && sc >= 0 && sc <= p)
        *out = (cf_type){ CF_T_DECIMAL, p, sc };
    else
        return cf_err_set(err, CF_E_UNSUPPORTED, "column type '%s' is not supported", t);
    return 0;
}

int cf_delta_schema_type(cf_type t, cf_type *out)
{
    char buf[32];
    return parse_type(cf_delta_type_name(t, buf, sizeof buf), out, NULL);
}

char *cf_delta_schema_json(const cf_schema *s, cf_err *err)
{
    json_t *root = json_object(), *fields = json_array();
    char *out = NULL;

    if (!root || !fields)
        goto oom;
    json_object_set_new(root, "type", json_string("struct"));
    for (int i = 0; i < s->nfields; i++) {
        char tb[32];
        json_t *f = json_object();
        if (!f)
            goto oom;
        json_object_set_new(f, "name", json_string(s->fields[i].name));
        json_object_set_new(f, "type", json_string(cf_delta_type_name(s->fields[i].type, tb, sizeof tb)));
        json_object_set_new(f, "nullable", json_boolean(s->fields[i].nullable));
        json_object_set_new(f, "metadata", json_object());
        json_array_append_new(fields, f);
    }
    json_object_set_new(root, "fields", fields);
    fields = NULL;
    out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!out)
        cf_err_set(err, CF_E_NOMEM, "out of memory");
    return out;
oom:
    json_decref(root);
    json_decref(fields);
    cf_err_set(err, CF_E_NOMEM, "out of memory");
    return NULL;
}

cf_schema *cf_delta_schema_parse(const char *text, cf_err *err)
{
    json_error_t je;
    json_t *root = json_loads(text, 0, &je), *fields, *f;
    cf_schema *s = NULL;
    size_t i;

    if (!root) {
        cf_err_set(err, CF_E_PARSE, "schema JSON: %s", je.text);
        return NULL;
    }
    fields = json_object_get(root, "fields");
    if (!json_is_array(fields) || !json_is_string(json_object_get(root, "type"))) {
        cf_err_set(err, CF_E_PARSE, "schema is not a struct type");
        goto fail;
    }
    if (!(s = cf_schema_new())) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto fail;
    }
    json_array_foreach(fields, i, f) {
        json_t *jn = json_object_get(f, "name"), *jt = json_object_get(f, "type");
        cf_type t;
        if (!json_is_string(jn) || !*json_string_value(jn)) {
            cf_err_set(err, CF_E_PARSE, "schema field %zu has no name", i);
            goto fail;
        }
        if (!json_is_string(jt)) {
            cf_err_set(err, CF_E_UNSUPPORTED, "column '%s' has a nested type", json_string_value(jn));
            goto fail;
        }
        if (parse_type(json_string_value(jt), &t, err))
            goto fail;
        if (cf_schema_find(s, json_string_value(jn)) >= 0) {
            cf_err_set(err, CF_E_PARSE, "column '%s' appears twice", json_string_value(jn));
            goto fail;
        }
        if (cf_schema_add(s, json_string_value(jn), t, !json_is_false(json_object_get(f, "nullable")),
                          0, err) < 0)
            goto fail;
    }
    json_decref(root);
    return s;
fail:
    json_decref(root);
    cf_schema_free(s);
    return NULL;
}

/* ---- stats ----------------------------------------------------------- */

/* Longest prefix of at most `max` bytes that ends on a UTF-8 boundary, or
 * -1 when the bytes are not valid UTF-8 (then no string stats). */
static long utf8_prefix(const char *s, size_t n, size_t max)
{
    size_t i = 0, last = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n)
            return -1;
        for (size_t k = 1; k < len; k++)
            if (((unsigned char)s[i + k] >> 6) != 2)
                return -1;
        if (c == 0)
            return -1;
        i += len;
        if (i <= max)
            last = i;
    }
    return (long)last;
}

#define STATS_STRING_PREFIX 32

static void stat_minmax(json_t *mins, json_t *maxs, const char *name, cf_type t,
                        const cf_pq_stats *st)
{
    char buf[64];
    if (!st->has_minmax)
        return;
    switch (t.id) {
    case CF_T_INT32:
    case CF_T_INT64:
    case CF_T_TIME:
        json_object_set_new(mins, name, json_integer(st->i_min));
        json_object_set_new(maxs, name, json_integer(st->i_max));
        break;
    case CF_T_FLOAT:
    case CF_T_DOUBLE:
        if (isfinite(st->d_min) && isfinite(st->d_max)) {
            json_object_set_new(mins, name, json_real(st->d_min));
            json_object_set_new(maxs, name, json_real(st->d_max));
        }
        break;
    case CF_T_DATE:
        fmt_date((int32_t)st->i_min, buf, sizeof buf);
        json_object_set_new(mins, name, json_string(buf));
        fmt_date((int32_t)st->i_max, buf, sizeof buf);
        json_object_set_new(maxs, name, json_string(buf));
        break;
    case CF_T_TIMESTAMP:
    case CF_T_TIMESTAMP_NTZ: {
        /* Millisecond precision as Spark writes; the max is rounded up so
         * that it stays an upper bound for data skipping.  An instant is
         * written in UTC ('Z'), a zone-less value without a zone. */
        int64_t lo = floordiv(st->i_min, 1000) * 1000;
        int64_t hi = -floordiv(-st->i_max, 1000) * 1000;
        bool zulu = t.id == CF_T_TIMESTAMP;
        fmt_ts(lo, 'T', 3, zulu, buf, sizeof buf);
        json_object_set_new(mins, name, json_string(buf));
        fmt_ts(hi, 'T', 3, zulu, buf, sizeof buf);
        json_object_set_new(maxs, name, json_string(buf));
        break;
    }
    case CF_T_STRING:
    case CF_T_UUID: {
        /* A truncated min is still a lower bound; a truncated max is not,
         * so it is left out. */
        long pmin = st->s_min ? utf8_prefix(st->s_min, st->s_min_len, STATS_STRING_PREFIX) : -1;
        long pmax = st->s_max ? utf8_prefix(st->s_max, st->s_max_len, STATS_STRING_PREFIX) : -1;
        if (pmin >= 0)
            json_object_set_new(mins, name, json_stringn(st->s_min, (size_t)pmin));
        if (pmax >= 0 && (size_t)pmax == st->s_max_len)
            json_object_set_new(maxs, name, json_stringn(st->s_max, (size_t)pmax));
        break;
    }
    default:
        /* boolean, binary, decimal: no min/max (a double would not be exact
         * for decimals, and a wrong bound makes readers skip live rows) */
        break;
    }
}

char *cf_delta_stats_json(const cf_schema *s, const cf_pq_file_info *fi, cf_err *err)
{
    json_t *root = json_object(), *mins = json_object(), *maxs = json_object(), *nulls = json_object();
    char *out;

    if (!root || !mins || !maxs || !nulls) {
        json_decref(root);
        json_decref(mins);
        json_decref(maxs);
        json_decref(nulls);
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    json_object_set_new(root, "numRecords", json_integer(fi->num_rows));
    for (int i = 0; i < s->nfields && i < fi->ncols; i++) {
        stat_minmax(mins, maxs, s->fields[i].name, s->fields[i].type, &fi->cols[i]);
        json_object_set_new(nulls, s->fields[i].name, json_integer(fi->cols[i].null_count));
    }
    json_object_set_new(root, "minValues", mins);
    json_object_set_new(root, "maxValues", maxs);
    json_object_set_new(root, "nullCount", nulls);
    out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(root);
    if (!out)
        cf_err_set(err, CF_E_NOMEM, "out of memory");
    return out;
}

int64_t cf_delta_stats_num_records(const char *stats)
{
    json_t *j = json_loads(stats, 0, NULL);
    json_t *n = json_object_get(j, "numRecords");
    int64_t v = json_is_integer(n) ? (int64_t)json_integer_value(n) : -1;
    json_decref(j);
    return v;
}

/* ---- partition values ------------------------------------------------ */

static int fmt_decimal(int64_t unscaled, int scale, cf_buf *out, cf_err *err)
{
    char digits[32];
    bool neg = unscaled < 0;
    uint64_t u = neg ? (uint64_t)0 - (uint64_t)unscaled : (uint64_t)unscaled;
    int n = snprintf(digits, sizeof digits, "%" PRIu64, u);

    if (neg && cf_buf_putc(out, '-', err))
        return -1;
    if (scale <= 0)
        return cf_buf_append(out, digits, (size_t)n, err);
    if (n <= scale) {
        if (cf_buf_append(out, "0.", 2, err))
            return -1;
        for (int i = n; i < scale; i++)
            if (cf_buf_putc(out, '0', err))
                return -1;
        return cf_buf_append(out, digits, (size_t)n, err);
    }
    if (cf_buf_append(out, digits, (size_t)(n - scale), err) || cf_buf_putc(out, '.', err))
        return -1;
    return cf_buf_append(out, digits + n - scale, (size_t)scale, err);
}

int cf_delta_pv_format(const cf_column *c, size_t row, cf_buf *out, bool *is_null, cf_err *err)
{
    char buf[64];

    *is_null = !cf_col_valid(c, row);
    if (*is_null)
        return 0;
    switch (c->type.id) {
    case CF_T_BOOL:
        return cf_buf_printf(out, err, "%s", cf_col_bool(c, row) ? "true" : "false");
    case CF_T_INT32:
        return cf_buf_printf(out, err, "%d", cf_col_i32(c, row));
    case CF_T_INT64:
    case CF_T_TIME:
        return cf_buf_printf(out, err, "%" PRId64, cf_col_i64(c, row));
    case CF_T_FLOAT:
        return cf_buf_printf(out, err, "%.9g", (double)cf_col_f32(c, row));
    case CF_T_DOUBLE:
        return cf_buf_printf(out, err, "%.17g", cf_col_f64(c, row));
    case CF_T_DATE:
        fmt_date(cf_col_i32(c, row), buf, sizeof buf);
        return cf_buf_printf(out, err, "%s", buf);
    case CF_T_TIMESTAMP:
    case CF_T_TIMESTAMP_NTZ:
        fmt_ts(cf_col_i64(c, row), ' ', 6, false, buf, sizeof buf);
        return cf_buf_printf(out, err, "%s", buf);
    case CF_T_DECIMAL:
        if (!cf_type_is_varlen(c->type))
            return fmt_decimal(cf_col_i64(c, row), c->type.scale, out, err);
        /* wide decimals are kept as their text */
        __attribute__((fallthrough));
    default: {
        size_t n;
        const uint8_t *p = cf_col_bytes(c, row, &n);
        return cf_buf_append(out, p, n, err);
    }
    }
}

static int parse_decimal(const char *v, int scale, int64_t *out)
{
    bool neg = *v == '-';
    int64_t u = 0;
    int frac = -1;

    if (*v == '-' || *v == '+')
        v++;
    if (!*v)
        return -1;
    for (; *v; v++) {
        if (*v == '.' && frac < 0) {
            frac = 0;
            continue;
        }
        if (*v < '0' || *v > '9')
            return -1;
        if (frac >= 0 && frac >= scale)
            continue;   /* more digits than the scale: truncated */
        if (u > (INT64_MAX - 9) / 10)
            return -1;
        u = u * 10 + (*v - '0');
        if (frac >= 0)
            frac++;
    }
    for (int f = frac < 0 ? 0 : frac; f < scale; f++) {
        if (u > INT64_MAX / 10)
            return -1;
        u *= 10;
    }
    *out = neg ? -u : u;
    return 0;
}

int cf_delta_pv_parse(cf_column *c, size_t row, const char *v, cf_err *err)
{
    char *end;
    if (!v)
        return cf_col_set_null(c, row, err);
    switch (c->type.id) {
    case CF_T_BOOL:
        return cf_col_set_bool(c, row, !strcmp(v, "true"), err);
    case CF_T_INT32:
    case CF_T_INT64:
    case CF_T_TIME: {
        long long x = strtoll(v, &end, 10);
        if (end == v || *end)
            break;
        return cf_col_set_i64(c, row, x, err);
    }
    case CF_T_FLOAT:
    case CF_T_DOUBLE: {
        double d = strtod(v, &end);
        if (end == v || *end)
            break;
        return cf_col_set_f64(c, row, d, err);
    }
    case CF_T_DATE: {
        int32_t d;
        if (cf_delta_parse_date(v, &d))
            break;
        return cf_col_set_i64(c, row, d, err);
    }
    case CF_T_TIMESTAMP:
    case CF_T_TIMESTAMP_NTZ: {
        int64_t t;
        if (cf_delta_parse_ts(v, &t))
            break;
        return cf_col_set_i64(c, row, t, err);
    }
    case CF_T_DECIMAL:
        if (!cf_type_is_varlen(c->type)) {
            int64_t u;
            if (parse_decimal(v, c->type.scale, &u))
                break;
            return cf_col_set_i64(c, row, u, err);
        }
        __attribute__((fallthrough));
    default:
        return cf_col_set_bytes(c, row, v, strlen(v), err);
    }
    return cf_err_set(err, CF_E_CORRUPT, "partition value '%s' is not a %s", v,
                      cf_type_name(c->type.id));
}
