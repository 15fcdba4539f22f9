/*
 * log.h - the one logging call of the broker, its plugins and libnetpipe.
 *
 * Every line goes to stderr as "<program>: <level>: <message>\n", written
 * with a single write(2) so lines from several processes do not interleave.
 * Levels are the NP_LOG_* values of abi/netpipe.h.
 */
#ifndef RIFT_LOG_H
#define RIFT_LOG_H

#include <stdarg.h>

#define LG_ERROR 0
#define LG_WARN  1
#define LG_INFO  2
#define LG_DEBUG 3

/* The program name at the start of every line ("broker" by default). */
void lg_set_program(const char *name);
/* Lines above this level are dropped (LG_WARN by default; the RIFT_LOG
 * environment variable, "error".."debug", overrides it at first use). */
void lg_set_level(int level);
int lg_level(void);

void lg_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lg_vlog(int level, const char *fmt, va_list ap);

#endif
