#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_component = "tegula";
static volatile int log_min_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *component, log_level min_level)
{
    if (component)
        log_component = component;
    log_min_level = min_level;
}

int log_level_parse(const char *name, log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    return -1;
}

void log_set_level(log_level min_level) { log_min_level = min_level; }
log_level log_get_level(void) { return (log_level)log_min_level; }

/* Quotes msg for logfmt: escapes backslash, quote and control characters so that one
 * event is always one line, whatever a peer managed to put into a message. */
static size_t quote_into(char *out, size_t cap, const char *msg)
{
    size_t n = 0;
    if (cap < 3)
        return 0;
    out[n++] = '"';
    for (const char *p = msg; *p && n + 4 < cap; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            out[n++] = '?';
        } else {
            out[n++] = (char)c;
        }
    }
    out[n++] = '"';
    return n;
}

void log_event(log_level level, const char *msg, const char *fields_fmt, ...)
{
    if ((int)level < log_min_level)
        return;
    char line[4096];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s msg=",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], log_component);
    size_t len = (size_t)n;
    len += quote_into(line + len, sizeof line - len - 2, msg ? msg : "");
    if (fields_fmt && *fields_fmt && len < sizeof line - 2) {
        line[len++] = ' ';
        va_list ap;
        va_start(ap, fields_fmt);
        int m = vsnprintf(line + len, sizeof line - len - 1, fields_fmt, ap);
        va_end(ap);
        if (m > 0)
            len += (size_t)m < sizeof line - len - 1 ? (size_t)m : sizeof line - len - 2;
        for (size_t i = 0; i < len; i++)
            if (line[i] == '\n' || line[i] == '\r')
                line[i] = ' ';
    }
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}
