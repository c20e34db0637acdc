/* route.c - table location templates resolved from topic names; see route.h. */
#include "runtime/route.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

bool cf_route_is_template(const char *tmpl)
{
    return tmpl && strchr(tmpl, '{') != NULL;
}

static bool safe_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

void cf_route_sanitize(const char *in, char *out, size_t cap)
{
    size_t n = strlen(in), keep = n, i;
    bool cut = false;

    if (cap < 2) {
        if (cap)
            out[0] = '\0';
        return;
    }
    if (keep > CF_ROUTE_VALUE_MAX) {
        keep = CF_ROUTE_VALUE_MAX - 9;      /* room for "-" and 8 hex digits */
        cut = true;
    }
    if (keep > cap - 1 - (cut ? 9 : 0))
        keep = cap - 1 - (cut ? 9 : 0);
    for (i = 0; i < keep; i++)
        out[i] = safe_char((unsigned char)in[i]) ? in[i] : '_';
    if (cut) {
        uint32_t h = 2166136261u;           /* FNV-1a of the whole original */
        for (size_t k = 0; k < n; k++)
            h = (h ^ (unsigned char)in[k]) * 16777619u;
        snprintf(out + i, 10, "-%08x", h);
        i += 9;
    }
    out[i] = '\0';
    if (!i)
        strcpy(out, "_");
}

void cf_route_topic_table(const char *topic, char *out, size_t cap)
{
    const char *dot = strrchr(topic, '.');
    snprintf(out, cap, "%s", dot ? dot + 1 : topic);
}

void cf_route_topic_schema(const char *topic, char *out, size_t cap)
{
    const char *last = strrchr(topic, '.'), *prev = last;

    if (!last) {
        snprintf(out, cap, "%s", "");
        return;
    }
    while (prev > topic && prev[-1] != '.')
        prev--;
    snprintf(out, cap, "%.*s", (int)(last - prev), prev);
}

static const char *last_slash(const char *s)
{
    return strrchr(s, '/');
}

int cf_route_check(const char *tmpl, cf_err *err)
{
    const char *slash = last_slash(tmpl), *p;

    if (!cf_route_is_template(tmpl))
        return 0;
    if (!slash || slash == tmpl)
        return cf_err_set(err, CF_E_ARG, "table template '%s': needs a fixed parent directory, "
                          "e.g. /data/delta/{table}", tmpl);
    if (memchr(tmpl, '{', (size_t)(slash - tmpl)) || memchr(tmpl, '}', (size_t)(slash - tmpl)))
        return cf_err_set(err, CF_E_ARG, "table template '%s': placeholders only in the last path component",
                          tmpl);
    for (p = slash + 1; *p; p++) {
        if (*p == '}')
            return cf_err_set(err, CF_E_ARG, "table template '%s': '}' without '{'", tmpl);
        if (*p != '{')
            continue;
        if (strncmp(p, "{table}", 7) && strncmp(p, "{topic}", 7) && strncmp(p, "{schema}", 8))
            return cf_err_set(err, CF_E_ARG, "table template '%s': unknown placeholder at '%.20s' "
                              "(known: {table}, {schema}, {topic})", tmpl, p);
        p = strchr(p, '}');
    }
    return 0;
}

int cf_route_expand(const char *tmpl, const char *topic, char *out, size_t cap, cf_err *err)
{
    char raw[1024], val[CF_ROUTE_VALUE_MAX + 1];
    size_t n = 0;

    if (cf_route_check(tmpl, err))
        return -1;
    for (const char *p = tmpl; *p;) {
        const char *add;
        size_t len, skip;
        if (*p == '{' && !strncmp(p, "{table}", 7)) {
            cf_route_topic_table(topic, raw, sizeof raw);
            skip = 7;
        } else if (*p == '{' && !strncmp(p, "{schema}", 8)) {
            cf_route_topic_schema(topic, raw, sizeof raw);
            skip = 8;
        } else if (*p == '{' && !strncmp(p, "{topic}", 7)) {
            snprintf(raw, sizeof raw, "%s", topic);
            skip = 7;
        } else {
            skip = 0;
        }
        if (skip) {
            cf_route_sanitize(raw, val, sizeof val);
            add = val;
            len = strlen(val);
            p += skip;
        } else {
            add = p;
            len = 1;
            p++;
        }
        if (n + len >= cap)
            return cf_err_set(err, CF_E_ARG, "table location for topic '%.200s' is too long", topic);
        memcpy(out + n, add, len);
        n += len;
    }
    out[n] = '\0';
    {
        /* Defence in depth: the resolved name is one plain path component. */
        const char *b = last_slash(out) + 1;
        if (!*b || !strcmp(b, ".") || !strcmp(b, ".."))
            return cf_err_set(err, CF_E_ARG, "table template '%s' resolves to '%s' for topic '%.200s'",
                              tmpl, out, topic);
    }
    return 0;
}

int cf_route_parent(const char *tmpl, char *out, size_t cap)
{
    const char *slash = last_slash(tmpl);

    if (!slash || (size_t)(slash - tmpl) >= cap)
        return -1;
    memcpy(out, tmpl, (size_t)(slash - tmpl));
    out[slash - tmpl] = '\0';
    return 0;
}

bool cf_route_entry_matches(const char *tmpl, const char *name)
{
    const char *last = last_slash(tmpl), *open, *close;
    size_t pre, post, n = strlen(name);

    last = last ? last + 1 : tmpl;
    if (!(open = strchr(last, '{')) || !(close = strrchr(last, '}')))
        return !strcmp(last, name);
    pre = (size_t)(open - last);
    post = strlen(close + 1);
    if (n <= pre + post || strncmp(name, last, pre) || strcmp(name + n - post, close + 1))
        return false;
    for (size_t i = pre; i < n - post; i++)
        if (!safe_char((unsigned char)name[i]))
            return false;
    return true;
}
