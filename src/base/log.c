/* Library messages: routed to the application's log callback, or one line
 * on stderr by default, so a server embedded in a larger program can send
 * them wherever its own logs go. */
#include "base/base.h"

#include <stdarg.h>
#include <stdio.h>

static const char *level_name(ss_log_level level)
{
    switch (level) {
    case SS_LOG_DEBUG:
        return "debug";
    case SS_LOG_INFO:
        return "info";
    case SS_LOG_WARNING:
        return "warning";
    case SS_LOG_ERROR:
        return "error";
    }
    return "unknown"; /* a value cast from outside the enum */
}

/* Default sink: warnings and errors on stderr; debug and info dropped. */
static void log_to_stderr(ss_server *srv, ss_log_level level, const char *message, void *data)
{
    (void)srv;
    (void)data;
    if (level >= SS_LOG_WARNING)
        fprintf(stderr, "socketserver: %s\n", message);
}

void ss__log(ss_log_fn sink, ss_server *srv, void *data, ss_log_level level, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    (sink != NULL ? sink : log_to_stderr)(srv, level, message, data);
}

SS_API const char *ss_log_level_name(ss_log_level level)
{
    return level_name(level);
}
