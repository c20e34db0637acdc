/* log.h - leveled log lines to stderr: one line per call, UTC timestamp,
 * level and a short component name.  Thread-safe (one stdio call per line). */
#ifndef CF_LOG_H
#define CF_LOG_H

typedef enum {
    CF_LOG_ERROR = 0,
    CF_LOG_WARN,
    CF_LOG_INFO,
    CF_LOG_DEBUG,
} cf_log_level;

/* Lines above this level are dropped.  Default CF_LOG_INFO. */
void cf_log_set_level(cf_log_level lvl);
cf_log_level cf_log_get_level(void);
/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int  cf_log_level_parse(const char *s);
const char *cf_log_level_name(cf_log_level lvl);
static inline int cf_log_enabled(cf_log_level lvl) { return (int)lvl <= (int)cf_log_get_level(); }

/* Print "2026-01-31T12:00:00.123Z INFO  comp: message\n" to stderr. */
void cf_log(cf_log_level lvl, const char *comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Called before each log line is written, e.g. to erase a progress line on a
 * terminal.  NULL to remove. */
void cf_log_set_pre_hook(void (*hook)(void));

#endif
