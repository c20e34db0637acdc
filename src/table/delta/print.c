/* print.c - print rows of a batch as an aligned table, JSON lines or CSV,
 * for the scan and changes commands. */
#include "table/delta/delta_print.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_SAMPLE 200      /* rows looked at to size the table columns */
#define TABLE_MAX_WIDTH 40

struct cf_delta_printer {
    FILE       *out;
    int         fmt;
    int         ncols;
    char      **names;
    int        *width;
    int64_t     limit, printed;
    /* table mode: the first rows wait here until the widths are known */
    cf_buf      cells;            /* NUL-separated cells */
    size_t     *row_off;
    int        *row_null;         /* per cell: 1 = null */
    size_t      nbuf;
    bool        flushed;
    cf_buf      scratch;
};

int cf_delta_format_parse(const char *s)
{
    if (!strcmp(s, "table"))
        return CF_DELTA_FMT_TABLE;
    if (!strcmp(s, "jsonl") || !strcmp(s, "json"))
        return CF_DELTA_FMT_JSONL;
    if (!strcmp(s, "csv"))
        return CF_DELTA_FMT_CSV;
    return -1;
}

cf_delta_printer *cf_delta_printer_new(FILE *out, int fmt, const cf_schema *s, int64_t limit)
{
    cf_delta_printer *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->out = out;
    p->fmt = fmt;
    p->ncols = s->nfields;
    p->limit = limit;
    p->names = calloc((size_t)s->nfields + 1, sizeof *p->names);
    p->width = calloc((size_t)s->nfields + 1, sizeof *p->width);
    p->row_off = calloc(TABLE_SAMPLE + 1, sizeof *p->row_off);
    p->row_null = calloc((size_t)(TABLE_SAMPLE + 1) * ((size_t)s->nfields + 1), sizeof *p->row_null);
    cf_buf_init(&p->cells, 0);
    cf_buf_init(&p->scratch, 0);
    if (!p->names || !p->width || !p->row_off || !p->row_null) {
        cf_delta_printer_free(p);
        return NULL;
    }
    for (int i = 0; i < s->nfields; i++) {
        if (!(p->names[i] = strdup(s->fields[i].name))) {
            cf_delta_printer_free(p);
            return NULL;
        }
        p->width[i] = (int)strlen(s->fields[i].name);
    }
    if (fmt == CF_DELTA_FMT_CSV) {
        for (int i = 0; i < p->ncols; i++)
            fprintf(out, "%s%s", i ? "," : "", p->names[i]);
        fputc('\n', out);
    }
    return p;
}

void cf_delta_printer_free(cf_delta_printer *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->ncols; i++)
        free(p->names[i]);
    free(p->names);
    free(p->width);
    free(p->row_off);
    free(p->row_null);
    cf_buf_free(&p->cells);
    cf_buf_free(&p->scratch);
    free(p);
}

bool cf_delta_printer_full(const cf_delta_printer *p)
{
    return p->limit >= 0 && p->printed >= p->limit;
}

/* Text of a value (not NUL-terminated in out). */
static int value_text(const cf_column *c, size_t row, cf_buf *out, bool *is_null, bool iso)
{
    if (!cf_col_valid(c, row)) {
        *is_null = true;
        return 0;
    }
    *is_null = false;
    if (c->type.id == CF_T_DOUBLE || c->type.id == CF_T_FLOAT) {
        double d = c->type.id == CF_T_DOUBLE ? cf_col_f64(c, row) : cf_col_f32(c, row);
        char buf[40];
        snprintf(buf, sizeof buf, "%.15g", d);
        if (strtod(buf, NULL) != d)
            snprintf(buf, sizeof buf, "%.17g", d);
        return cf_buf_printf(out, NULL, "%s", buf);
    }
    if (c->type.id == CF_T_BINARY) {
        size_t n;
        const uint8_t *b = cf_col_bytes(c, row, &n);
        for (size_t i = 0; i < n; i++)
            if (cf_buf_printf(out, NULL, "%02x", b[i]))
                return -1;
        return 0;
    }
    size_t mark = out->len;
    if (cf_delta_pv_format(c, row, out, is_null, NULL))
        return -1;
    if (iso && (c->type.id == CF_T_TIMESTAMP || c->type.id == CF_T_TIMESTAMP_NTZ) && out->len > mark + 10) {
        out->data[mark + 10] = 'T';
        if (c->type.id == CF_T_TIMESTAMP)
            return cf_buf_putc(out, 'Z', NULL);
    }
    return 0;
}

static bool is_number(cf_type t)
{
    return t.id == CF_T_INT32 || t.id == CF_T_INT64 || t.id == CF_T_FLOAT || t.id == CF_T_DOUBLE ||
           t.id == CF_T_TIME || (t.id == CF_T_DECIMAL && !cf_type_is_varlen(t));
}

static void put_json_string(FILE *out, const char *s, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c == '\r')
            fputs("\\r", out);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void put_csv(FILE *out, const char *s, size_t n)
{
    bool quote = false;
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote) {
        fwrite(s, 1, n, out);
        return;
    }
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            fputc('"', out);
        fputc(s[i], out);
    }
    fputc('"', out);
}

static void table_line(cf_delta_printer *p, const char *const *cells, const int *nulls)
{
    for (int i = 0; i < p->ncols; i++) {
        const char *s = nulls && nulls[i] ? "NULL" : cells[i];
        int len = (int)strlen(s);
        if (len > TABLE_MAX_WIDTH)
            fprintf(p->out, "%s%.*s...", i ? " | " : "", TABLE_MAX_WIDTH - 3, s);
        else
            fprintf(p->out, "%s%-*s", i ? " | " : "", p->width[i], s);
    }
    fputc('\n', p->out);
}

static void table_flush(cf_delta_printer *p)
{
    const char **cells = calloc((size_t)p->ncols + 1, sizeof *cells);
    if (!cells)
        return;
    table_line(p, (const char *const *)p->names, NULL);
    for (int i = 0; i < p->ncols; i++) {
        for (int k = 0; k < p->width[i]; k++)
            fputc('-', p->out);
        if (i + 1 < p->ncols)
            fputs("-+-", p->out);
    }
    fputc('\n', p->out);
    for (size_t r = 0; r < p->nbuf; r++) {
        const char *c = (const char *)p->cells.data + p->row_off[r];
        for (int i = 0; i < p->ncols; i++) {
            cells[i] = c;
            c += strlen(c) + 1;
        }
        table_line(p, cells, &p->row_null[r * (size_t)p->ncols]);
    }
    free(cells);
    p->nbuf = 0;
    cf_buf_reset(&p->cells);
    p->flushed = true;
}

int cf_delta_printer_row(cf_delta_printer *p, const cf_column *const *cols, const size_t *rows)
{
    if (cf_delta_printer_full(p))
        return 0;
    p->printed++;
    if (p->fmt == CF_DELTA_FMT_TABLE) {
        const char **cells = calloc((size_t)p->ncols + 1, sizeof *cells);
        int *nulls = calloc((size_t)p->ncols + 1, sizeof *nulls);
        size_t *offs = calloc((size_t)p->ncols + 1, sizeof *offs);
        bool buffering = !p->flushed && p->nbuf < TABLE_SAMPLE;
        cf_buf *dst = buffering ? &p->cells : &p->scratch;
        size_t start = dst->len;
        if (!cells || !nulls || !offs) {
            free(cells);
            free(nulls);
            free(offs);
            return -1;
        }
        if (!buffering)
            cf_buf_reset(dst), start = 0;
        for (int i = 0; i < p->ncols; i++) {
            bool isnull;
            offs[i] = dst->len;
            value_text(cols[i], rows[i], dst, &isnull, false);
            cf_buf_putc(dst, 0, NULL);
            nulls[i] = isnull;
            int w = isnull ? 4 : (int)strlen((const char *)dst->data + offs[i]);
            if (buffering && w > p->width[i])
                p->width[i] = w > TABLE_MAX_WIDTH ? TABLE_MAX_WIDTH : w;
        }
        if (buffering) {
            p->row_off[p->nbuf] = start;
            memcpy(&p->row_null[p->nbuf * (size_t)p->ncols], nulls, sizeof *nulls * (size_t)p->ncols);
            p->nbuf++;
        } else {
            if (!p->flushed)
                table_flush(p);
            for (int i = 0; i < p->ncols; i++)
                cells[i] = (const char *)dst->data + offs[i];
            table_line(p, cells, nulls);
        }
        free(cells);
        free(nulls);
        free(offs);
        return 0;
    }
    if (p->fmt == CF_DELTA_FMT_JSONL)
        fputc('{', p->out);
    for (int i = 0; i < p->ncols; i++) {
        bool isnull;
        cf_buf_reset(&p->scratch);
        value_text(cols[i], rows[i], &p->scratch, &isnull, p->fmt == CF_DELTA_FMT_JSONL);
        const char *s = p->scratch.data ? (const char *)p->scratch.data : "";
        if (p->fmt == CF_DELTA_FMT_JSONL) {
            if (i)
                fputc(',', p->out);
            put_json_string(p->out, p->names[i], strlen(p->names[i]));
            fputc(':', p->out);
            if (isnull)
                fputs("null", p->out);
            else if (cols[i]->type.id == CF_T_BOOL)
                fwrite(s, 1, p->scratch.len, p->out);
            else if (is_number(cols[i]->type) && !(cols[i]->type.id == CF_T_DOUBLE && !isfinite(cf_col_f64(cols[i], rows[i]))))
                fwrite(s, 1, p->scratch.len, p->out);
            else
                put_json_string(p->out, s, p->scratch.len);
        } else {
            if (i)
                fputc(',', p->out);
            if (!isnull)
                put_csv(p->out, s, p->scratch.len);
        }
    }
    if (p->fmt == CF_DELTA_FMT_JSONL)
        fputc('}', p->out);
    fputc('\n', p->out);
    return 0;
}

int cf_delta_printer_batch(cf_delta_printer *p, const cf_batch *b, const int *cols)
{
    const cf_column **cv = calloc((size_t)p->ncols + 1, sizeof *cv);
    size_t *rv = calloc((size_t)p->ncols + 1, sizeof *rv);
    if (!cv || !rv) {
        free(cv);
        free(rv);
        return -1;
    }
    for (int i = 0; i < p->ncols; i++)
        cv[i] = &b->cols[cols ? cols[i] : i];
    for (size_t r = 0; r < b->nrows && !cf_delta_printer_full(p); r++) {
        for (int i = 0; i < p->ncols; i++)
            rv[i] = r;
        cf_delta_printer_row(p, cv, rv);
    }
    free(cv);
    free(rv);
    return 0;
}

void cf_delta_printer_end(cf_delta_printer *p)
{
    if (p->fmt == CF_DELTA_FMT_TABLE) {
        if (!p->flushed)
            table_flush(p);
        fprintf(p->out, "(%" PRId64 " row%s)\n", p->printed, p->printed == 1 ? "" : "s");
    }
    fflush(p->out);
}
