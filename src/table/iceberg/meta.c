/* meta.c - Iceberg table metadata documents: snapshots, the metadata and
 * snapshot logs, bounded history, schemas and partition specs to and from
 * JSON, and the times the commands take. */
#include "table/iceberg/iceberg_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t cf_ice_new_snapshot_id(void)
{
    uint64_t x;
    cf_random_bytes(&x, sizeof x);
    x &= INT64_MAX;
    return x ? (int64_t)x : 1;
}

json_t *cf_ice_snapshot(json_t *meta, int64_t id)
{
    json_t *snaps = json_object_get(meta, "snapshots"), *s;
    size_t i;

    if (id < 0)
        id = cf_ice_current_snapshot_id(meta);
    if (id < 0)
        return NULL;
    json_array_foreach(snaps, i, s)
        if (json_integer_value(json_object_get(s, "snapshot-id")) == id)
            return s;
    return NULL;
}

int64_t cf_ice_current_snapshot_id(json_t *meta)
{
    json_t *main_ref = json_object_get(json_object_get(meta, "refs"), "main");
    json_t *cur = json_object_get(meta, "current-snapshot-id");

    if (json_is_integer(cur))
        return json_integer_value(cur) >= 0 ? json_integer_value(cur) : -1;
    if (main_ref && json_is_integer(json_object_get(main_ref, "snapshot-id")))
        return json_integer_value(json_object_get(main_ref, "snapshot-id"));
    return -1;
}

/* ---- schemas --------------------------------------------------------- */

const char *cf_ice_type_name(cf_type t, char *buf, size_t n)
{
    switch (t.id) {
    case CF_T_BOOL: return "boolean";
    case CF_T_INT32: return "int";
    case CF_T_INT64: return "long";
    case CF_T_FLOAT: return "float";
    case CF_T_DOUBLE: return "double";
    case CF_T_STRING: return "string";
    case CF_T_BINARY: return "binary";
    case CF_T_DATE: return "date";
    case CF_T_TIMESTAMP: return "timestamptz";
    case CF_T_TIMESTAMP_NTZ: return "timestamp";
    case CF_T_TIME: return "time";
    /* Text in batches, but FLBA(16) UUID / FLBA decimal in data files, so
     * the table declares the real types readers expect of those files. */
    case CF_T_UUID: return "uuid";
    case CF_T_DECIMAL:
        if (t.precision < 1 || t.precision > 38)
            return NULL;
        snprintf(buf, n, "decimal(%d, %d)", t.precision, t.scale);
        return buf;
    }
    return NULL;
}

static int parse_ice_type(const char *s, cf_type *t)
{
    int p, sc;
    memset(t, 0, sizeof *t);
    if (!strcmp(s, "boolean")) t->id = CF_T_BOOL;
    else if (!strcmp(s, "int")) t->id = CF_T_INT32;
    else if (!strcmp(s, "long")) t->id = CF_T_INT64;
    else if (!strcmp(s, "float")) t->id = CF_T_FLOAT;
    else if (!strcmp(s, "double")) t->id = CF_T_DOUBLE;
    else if (!strcmp(s, "string")) t->id = CF_T_STRING;
    else if (!strcmp(s, "binary") || !strncmp(s, "fixed[", 6)) t->id = CF_T_BINARY;
    else if (!strcmp(s, "date")) t->id = CF_T_DATE;
    else if (!strcmp(s, "timestamptz")) t->id = CF_T_TIMESTAMP;
    else if (!strcmp(s, "timestamp")) t->id = CF_T_TIMESTAMP_NTZ;
    else if (!strcmp(s, "time")) t->id = CF_T_TIME;
    else if (!strcmp(s, "uuid")) t->id = CF_T_UUID;
    else if (sscanf(s, "decimal(%d ,%d)", &p, &sc) == 2 || sscanf(s, "decimal(%d, %d)", &p, &sc) == 2) {
        t->id = CF_T_DECIMAL;
        t->precision = p;
        t->scale = sc;
    } else
        return -1;
    return 0;
}

static json_t *schema_json_by_id(json_t *meta, int schema_id)
{
    json_t *schemas = json_object_get(meta, "schemas"), *s;
    size_t i;
    if (schema_id < 0)
        schema_id = (int)json_integer_value(json_object_get(meta, "current-schema-id"));
    json_array_foreach(schemas, i, s)
        if (json_integer_value(json_object_get(s, "schema-id")) == schema_id)
            return s;
    return NULL;
}

cf_schema *cf_ice_schema_from_json(json_t *meta, int schema_id, cf_err *err)
{
    json_t *sj = schema_json_by_id(meta, schema_id), *f, *ids;
    cf_schema *s;
    size_t i;

    if (!sj) {
        cf_err_set(err, CF_E_CORRUPT, "table metadata has no schema %d", schema_id);
        return NULL;
    }
    if (!(s = cf_schema_new())) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    json_array_foreach(json_object_get(sj, "fields"), i, f) {
        const char *name = json_string_value(json_object_get(f, "name"));
        json_t *ty = json_object_get(f, "type");
        cf_type t;
        int id = (int)json_integer_value(json_object_get(f, "id"));
        if (!name || !json_is_string(ty) || id <= 0) {
            cf_err_set(err, CF_E_UNSUPPORTED, "schema field %zu: nested or malformed fields are not supported", i);
            goto fail;
        }
        if (parse_ice_type(json_string_value(ty), &t)) {
            cf_err_set(err, CF_E_UNSUPPORTED, "field %s: Iceberg type %s is not supported", name,
                       json_string_value(ty));
            goto fail;
        }
        if (cf_schema_add(s, name, t, !json_is_true(json_object_get(f, "required")), id, err) < 0)
            goto fail;
    }
    ids = json_object_get(sj, "identifier-field-ids");
    if (json_array_size(ids)) {
        size_t n = json_array_size(ids);
        if (!(s->pk = calloc(n, sizeof *s->pk))) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto fail;
        }
        for (i = 0; i < n; i++) {
            int id = (int)json_integer_value(json_array_get(ids, i)), k;
            for (k = 0; k < s->nfields && s->fields[k].field_id != id; k++)
                ;
            if (k == s->nfields) {
                cf_err_set(err, CF_E_CORRUPT, "identifier field id %d is not in the schema", id);
                goto fail;
            }
            s->pk[s->npk++] = k;
        }
    }
    return s;
fail:
    cf_schema_free(s);
    return NULL;
}

/* ---- partition specs ------------------------------------------------- */

static int field_by_name(const cf_schema *s, const char *name, size_t n)
{
    for (int i = 0; i < s->nfields; i++)
        if (strlen(s->fields[i].name) == n && !strncmp(s->fields[i].name, name, n))
            return i;
    return -1;
}

static int add_pfield(cf_ice_spec *sp, const cf_schema *s, const char *col, size_t coln,
                      cf_ice_xform xf, int nb, cf_err *err)
{
    int k = field_by_name(s, col, coln);
    cf_ice_pfield *f;
    cf_type_id t;

    if (k < 0)
        return cf_err_set(err, CF_E_ARG, "partition column '%.*s' is not in the schema", (int)coln, col);
    if (sp->nfields >= 16)
        return cf_err_set(err, CF_E_ARG, "more than 16 partition fields");
    t = s->fields[k].type.id;
    f = &sp->f[sp->nfields];
    memset(f, 0, sizeof *f);
    f->xf = xf;
    f->n = nb;
    f->source_id = s->fields[k].field_id;
    f->field_id = 1000 + sp->nfields;
    switch (xf) {
    case CF_ICE_IDENTITY:
        if (t != CF_T_BOOL && t != CF_T_INT32 && t != CF_T_INT64 && t != CF_T_STRING &&
            t != CF_T_DATE && t != CF_T_UUID)
            return cf_err_set(err, CF_E_UNSUPPORTED, "identity partitions on %s columns are not supported",
                              cf_type_name(t));
        f->result = s->fields[k].type;
        snprintf(f->name, sizeof f->name, "%s", s->fields[k].name);
        break;
    case CF_ICE_DAY:
        if (t != CF_T_DATE && t != CF_T_TIMESTAMP && t != CF_T_TIMESTAMP_NTZ)
            return cf_err_set(err, CF_E_ARG, "day() needs a date or timestamp column");
        f->result = (cf_type){ .id = CF_T_DATE };
        snprintf(f->name, sizeof f->name, "%s_day", s->fields[k].name);
        break;
    case CF_ICE_YEAR:
    case CF_ICE_MONTH:
        if (t != CF_T_DATE && t != CF_T_TIMESTAMP && t != CF_T_TIMESTAMP_NTZ)
            return cf_err_set(err, CF_E_ARG, "%s() needs a date or timestamp column",
                              xf == CF_ICE_YEAR ? "year" : "month");
        f->result = (cf_type){ .id = CF_T_INT32 };
        snprintf(f->name, sizeof f->name, "%s_%s", s->fields[k].name, xf == CF_ICE_YEAR ? "year" : "month");
        break;
    case CF_ICE_HOUR:
        if (t != CF_T_TIMESTAMP && t != CF_T_TIMESTAMP_NTZ)
            return cf_err_set(err, CF_E_ARG, "hour() needs a timestamp column");
        f->result = (cf_type){ .id = CF_T_INT32 };
        snprintf(f->name, sizeof f->name, "%s_hour", s->fields[k].name);
        break;
    case CF_ICE_TRUNCATE:
        if (nb <= 0)
            return cf_err_set(err, CF_E_ARG, "truncate width must be positive");
        if (t != CF_T_INT32 && t != CF_T_INT64 && t != CF_T_STRING && t != CF_T_BINARY)
            return cf_err_set(err, CF_E_UNSUPPORTED, "truncate() on %s columns is not supported",
                              cf_type_name(t));
        f->result = s->fields[k].type;
        snprintf(f->name, sizeof f->name, "%s_trunc", s->fields[k].name);
        break;
    case CF_ICE_BUCKET:
        if (nb <= 0)
            return cf_err_set(err, CF_E_ARG, "bucket count must be positive");
        if (t != CF_T_INT32 && t != CF_T_INT64 && t != CF_T_STRING && t != CF_T_DATE &&
            t != CF_T_BINARY && t != CF_T_TIMESTAMP && t != CF_T_TIMESTAMP_NTZ && t != CF_T_TIME)
            return cf_err_set(err, CF_E_UNSUPPORTED, "bucket() on %s columns is not supported",
                              cf_type_name(t));
        f->result = (cf_type){ .id = CF_T_INT32 };
        snprintf(f->name, sizeof f->name, "%s_bucket", s->fields[k].name);
        break;
    }
    sp->nfields++;
    return 0;
}

int cf_ice_spec_parse(const char *const *exprs, int n, const cf_schema *s,
                      cf_ice_spec *out, cf_err *err)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < n; i++) {
        const char *e = exprs[i], *open = strchr(e, '('), *close = strrchr(e, ')');
        int nb = 0;
        if (!open) {
            if (add_pfield(out, s, e, strlen(e), CF_ICE_IDENTITY, 0, err))
                return -1;
            continue;
        }
        if (!close || close < open)
            return cf_err_set(err, CF_E_ARG, "bad partition expression '%s'", e);
        if (!strncmp(e, "day(", 4) || !strncmp(e, "days(", 5)) {
            if (add_pfield(out, s, open + 1, (size_t)(close - open - 1), CF_ICE_DAY, 0, err))
                return -1;
        } else if (!strncmp(e, "year(", 5) || !strncmp(e, "years(", 6)) {
            if (add_pfield(out, s, open + 1, (size_t)(close - open - 1), CF_ICE_YEAR, 0, err))
                return -1;
        } else if (!strncmp(e, "month(", 6) || !strncmp(e, "months(", 7)) {
            if (add_pfield(out, s, open + 1, (size_t)(close - open - 1), CF_ICE_MONTH, 0, err))
                return -1;
        } else if (!strncmp(e, "hour(", 5) || !strncmp(e, "hours(", 6)) {
            if (add_pfield(out, s, open + 1, (size_t)(close - open - 1), CF_ICE_HOUR, 0, err))
                return -1;
        } else if (sscanf(e, "truncate[%d](", &nb) == 1) {
            if (add_pfield(out, s, open + 1, (size_t)(close - open - 1), CF_ICE_TRUNCATE, nb, err))
                return -1;
        } else if ((sscanf(e, "truncate(%d,", &nb) == 1 || sscanf(e, "truncate(%d ,", &nb) == 1) &&
                   strchr(open, ',')) {
            const char *c = strchr(open, ',') + 1;
            while (*c == ' ')
                c++;
            if (add_pfield(out, s, c, (size_t)(close - c), CF_ICE_TRUNCATE, nb, err))
                return -1;
        } else if (!strncmp(e, "identity(", 9)) {
            if (add_pfield(out, s, open + 1, (size_t)(close - open - 1), CF_ICE_IDENTITY, 0, err))
                return -1;
        } else if (sscanf(e, "bucket[%d](", &nb) == 1) {
            if (add_pfield(out, s, open + 1, (size_t)(close - open - 1), CF_ICE_BUCKET, nb, err))
                return -1;
        } else if (sscanf(e, "bucket(%d,", &nb) == 1 || sscanf(e, "bucket(%d ,", &nb) == 1) {
            const char *c = strchr(open, ',') + 1;
            while (*c == ' ')
                c++;
            if (add_pfield(out, s, c, (size_t)(close - c), CF_ICE_BUCKET, nb, err))
                return -1;
        } else
            return cf_err_set(err, CF_E_ARG, "unknown partition transform in '%s' (identity, "
                              "year(col), month(col), day(col), hour(col), bucket(N,col), "
                              "truncate(W,col))", e);
    }
    return 0;
}

int cf_ice_spec_from_json(json_t *meta, const cf_schema *s, cf_ice_spec *out, cf_err *err)
{
    int spec_id = (int)json_integer_value(json_object_get(meta, "default-spec-id"));
    json_t *specs = json_object_get(meta, "partition-specs"), *sp = NULL, *f;
    size_t i;

    json_array_foreach(specs, i, f)
        if (json_integer_value(json_object_get(f, "spec-id")) == spec_id)
            sp = f;
    memset(out, 0, sizeof *out);
    out->spec_id = spec_id;
    if (!sp)
        return 0;
    json_array_foreach(json_object_get(sp, "fields"), i, f) {
        const char *tr = json_string_value(json_object_get(f, "transform"));
        int src = (int)json_integer_value(json_object_get(f, "source-id")), k, nb = 0;
        cf_ice_xform xf;
        if (!tr)
            return cf_err_set(err, CF_E_CORRUPT, "partition field without a transform");
        if (!strcmp(tr, "identity"))
            xf = CF_ICE_IDENTITY;
        else if (!strcmp(tr, "day"))
            xf = CF_ICE_DAY;
        else if (!strcmp(tr, "year"))
            xf = CF_ICE_YEAR;
        else if (!strcmp(tr, "month"))
            xf = CF_ICE_MONTH;
        else if (!strcmp(tr, "hour"))
            xf = CF_ICE_HOUR;
        else if (sscanf(tr, "bucket[%d]", &nb) == 1)
            xf = CF_ICE_BUCKET;
        else if (sscanf(tr, "truncate[%d]", &nb) == 1)
            xf = CF_ICE_TRUNCATE;
        else
            return cf_err_set(err, CF_E_UNSUPPORTED, "partition transform '%s' is not supported", tr);
        for (k = 0; k < s->nfields && s->fields[k].field_id != src; k++)
            ;
        if (k == s->nfields)
            return cf_err_set(err, CF_E_CORRUPT, "partition source id %d is not in the schema", src);
        if (add_pfield(out, s, s->fields[k].name, strlen(s->fields[k].name), xf, nb, err))
            return -1;
        out->f[out->nfields - 1].field_id = (int)json_integer_value(json_object_get(f, "field-id"));
        snprintf(out->f[out->nfields - 1].name, sizeof out->f[0].name, "%s",
                 json_string_value(json_object_get(f, "name")) ? json_string_value(json_object_get(f, "name")) : "p");
    }
    return 0;
}

json_t *cf_ice_spec_to_json(const cf_ice_spec *sp)
{
    json_t *fields = json_array();
    for (int i = 0; i < sp->nfields; i++) {
        const cf_ice_pfield *f = &sp->f[i];
        char tr[32];
        switch (f->xf) {
        case CF_ICE_IDENTITY: snprintf(tr, sizeof tr, "identity"); break;
        case CF_ICE_DAY: snprintf(tr, sizeof tr, "day"); break;
        case CF_ICE_YEAR: snprintf(tr, sizeof tr, "year"); break;
        case CF_ICE_MONTH: snprintf(tr, sizeof tr, "month"); break;
        case CF_ICE_HOUR: snprintf(tr, sizeof tr, "hour"); break;
        case CF_ICE_BUCKET: snprintf(tr, sizeof tr, "bucket[%d]", f->n); break;
        case CF_ICE_TRUNCATE: snprintf(tr, sizeof tr, "truncate[%d]", f->n); break;
        }
        json_array_append_new(fields, json_pack("{s:s, s:s, s:i, s:i}", "name", f->name,
                              "transform", tr, "source-id", f->source_id, "field-id", f->field_id));
    }
    return fields;
}

void cf_ice_add_snapshot(const cf_ice_table *t, json_t *meta, int64_t sid, int64_t parent_id,
                         int64_t seq, int64_t now_ms, const char *mlist, json_t *summary)
{
    json_t *snap;

    snap = json_pack("{s:I, s:I, s:I, s:s, s:o, s:i}", "snapshot-id", (json_int_t)sid,
                     "sequence-number", (json_int_t)seq, "timestamp-ms", (json_int_t)now_ms,
                     "manifest-list", mlist, "summary", summary,
                     "schema-id", (int)json_integer_value(json_object_get(meta, "current-schema-id")));
    if (parent_id >= 0)
        json_object_set_new(snap, "parent-snapshot-id", json_integer(parent_id));
    json_array_append_new(json_object_get(meta, "snapshots"), snap);
    json_array_append_new(json_object_get(meta, "snapshot-log"),
                          json_pack("{s:I, s:I}", "timestamp-ms", (json_int_t)now_ms,
                                    "snapshot-id", (json_int_t)sid));
    json_object_set_new(meta, "current-snapshot-id", json_integer(sid));
    json_object_set_new(meta, "refs", json_pack("{s:{s:I, s:s}}", "main", "snapshot-id",
                                                (json_int_t)sid, "type", "branch"));
    json_object_set_new(meta, "last-sequence-number", json_integer(seq));
    cf_ice_log_metadata(t, meta, now_ms);
}

void cf_ice_log_metadata(const cf_ice_table *t, json_t *meta, int64_t now_ms)
{
    json_t *mlog, *v;
    int maxv;

    if (t->meta_location) {
        const char *prev = t->meta_location;
        if (!json_is_array(json_object_get(meta, "metadata-log")))
            json_object_set_new(meta, "metadata-log", json_array());
        mlog = json_object_get(meta, "metadata-log");
        json_array_append_new(mlog, json_pack("{s:I, s:s}", "timestamp-ms",
                              json_integer_value(json_object_get(meta, "last-updated-ms")),
                              "metadata-file", prev));
        v = json_object_get(json_object_get(meta, "properties"), "write.metadata.previous-versions-max");
        maxv = v && json_is_string(v) ? atoi(json_string_value(v)) : 100;
        if (maxv < 1)
            maxv = 1;
        while (json_array_size(mlog) > (size_t)maxv)
            json_array_remove(mlog, 0);
    }
    json_object_set_new(meta, "last-updated-ms", json_integer(now_ms));
}

/* A property that must be a whole number; -1 when absent or malformed. */
static int64_t prop_int(json_t *meta, const char *key)
{
    const char *v = json_string_value(json_object_get(json_object_get(meta, "properties"), key));
    char *end;
    long long x;
    if (!v || !*v)
        return -1;
    x = strtoll(v, &end, 10);
    return *end || x < 0 ? -1 : (int64_t)x;
}

static bool held_by_ref(json_t *meta, int64_t id)
{
    const char *name;
    json_t *ref;
    json_object_foreach(json_object_get(meta, "refs"), name, ref)
        if (json_integer_value(json_object_get(ref, "snapshot-id")) == id)
            return true;
    return false;
}

int cf_ice_expire_history(json_t *meta, int64_t now_ms)
{
    int64_t max_age = prop_int(meta, "history.expire.max-snapshot-age-ms");
    int64_t min_keep = prop_int(meta, "history.expire.min-snapshots-to-keep");
    int64_t cur = cf_ice_current_snapshot_id(meta);
    json_t *snaps = json_object_get(meta, "snapshots"), *kept, *log, *sn;
    size_t i, n = json_array_size(snaps);
    int dropped = 0;

    if (max_age < 0)
        return 0;                       /* not asked for: keep everything */
    if (min_keep < 1)
        min_keep = 1;
    if (n <= (size_t)min_keep)
        return 0;
    kept = json_array();
    json_array_foreach(snaps, i, sn) {
        int64_t id = json_integer_value(json_object_get(sn, "snapshot-id"));
        int64_t ts = json_integer_value(json_object_get(sn, "timestamp-ms"));
        if (id == cur || i + (size_t)min_keep >= n || ts >= now_ms - max_age || held_by_ref(meta, id))
            json_array_append(kept, sn);
        else
            dropped++;
    }
    if (!dropped) {
        json_decref(kept);
        return 0;
    }
    json_object_set_new(meta, "snapshots", kept);
    log = json_array();
    json_array_foreach(json_object_get(meta, "snapshot-log"), i, sn)
        if (cf_ice_snapshot(meta, json_integer_value(json_object_get(sn, "snapshot-id"))))
            json_array_append(log, sn);
    json_object_set_new(meta, "snapshot-log", log);
    return dropped;
}

int cf_ice_parse_time(const char *s, int64_t now_ms, int64_t *ms)
{
    char *end;
    long long v;
    struct tm tm;
    const char *rest;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno == ERANGE)
        return -1;
    if (end != s && !*end) {
        *ms = v;
        return 0;
    }
    if (end != s && v >= 0 && (!strcmp(end, "d") || !strcmp(end, "h") || !strcmp(end, "m") ||
                               !strcmp(end, "s"))) {
        int64_t unit = *end == 'd' ? 86400000 : *end == 'h' ? 3600000 : *end == 'm' ? 60000 : 1000;
        if (v > INT64_MAX / unit || (now_ms < 0 && v * unit > now_ms - INT64_MIN))
            return -1;                  /* further back than time goes */
        *ms = now_ms - (int64_t)v * unit;
        return 0;
    }
    memset(&tm, 0, sizeof tm);
    if (!(rest = strptime(s, "%Y-%m-%d", &tm)))
        return -1;
    if (*rest == 'T' || *rest == ' ') {
        const char *r2 = strptime(rest + 1, "%H:%M:%S", &tm);
        if (!r2 && !(r2 = strptime(rest + 1, "%H:%M", &tm)))
            return -1;
        rest = r2;
        if (*rest == '.')
            while (*++rest >= '0' && *rest <= '9')
                ;
    }
    if (*rest && strcmp(rest, "Z") && strcmp(rest, "+00:00"))
        return -1;
    {
        time_t secs = timegm(&tm);
        if ((int64_t)secs > INT64_MAX / 1000 || (int64_t)secs < INT64_MIN / 1000)
            return -1;
        *ms = (int64_t)secs * 1000;
    }
    return 0;
}

void cf_ice_format_time(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}
