/* delta_print.h - row printers of the table commands (table, jsonl, csv). */
#ifndef CF_DELTA_PRINT_H
#define CF_DELTA_PRINT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "table/delta/delta_int.h"

enum { CF_DELTA_FMT_TABLE = 0, CF_DELTA_FMT_JSONL, CF_DELTA_FMT_CSV };

typedef struct cf_delta_printer cf_delta_printer;

/* "table" | "jsonl" | "csv" -> CF_DELTA_FMT_*, -1 if unknown. */
int  cf_delta_format_parse(const char *s);
/* Columns are named by s (copied).  limit < 0: no limit.  NULL on OOM. */
cf_delta_printer *cf_delta_printer_new(FILE *out, int fmt, const cf_schema *s, int64_t limit);
void cf_delta_printer_free(cf_delta_printer *p);           /* NULL-safe */
/* One row: value rows[i] of column cols[i] for each printer column. */
int  cf_delta_printer_row(cf_delta_printer *p, const cf_column *const *cols, const size_t *rows);
/* Every row of b; cols maps printer columns to b's columns (NULL = same). */
int  cf_delta_printer_batch(cf_delta_printer *p, const cf_batch *b, const int *cols);
bool cf_delta_printer_full(const cf_delta_printer *p);
/* Flush; the table format ends with "(N rows)". */
void cf_delta_printer_end(cf_delta_printer *p);

#endif
