/* log: leveled, structured (logfmt) logging to stderr, one line per event:
 *   ts=2026-11-21T23:40:01.123Z level=info comp=sequencer msg="round committed" size=512
 * Thread-safe (one write(2) per line). Never pass secret material: nothing here redacts. */
#ifndef TEGULA_LOG_H
#define TEGULA_LOG_H

typedef enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO = 1,
    LOG_WARN = 2,
    LOG_ERROR = 3,
} log_level;

/* Process-wide settings; call once at startup. `component` names the process role. */
void log_init(const char *component, log_level min_level);
/* Parses "debug", "info", "warn", "error"; returns -1 if unknown. */
int log_level_parse(const char *name, log_level *out);
void log_set_level(log_level min_level);
log_level log_get_level(void);

/* msg is a human sentence; fields is a logfmt tail built with printf ("size=%zu root=%s"),
 * may be NULL. Values containing spaces must be quoted by the caller. */
void log_event(log_level level, const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(msg, ...) log_event(LOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...) log_event(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...) log_event(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_event(LOG_ERROR, msg, __VA_ARGS__)

#endif
