#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char *lg_program = "broker";
static int lg_threshold = -1;

void lg_set_program(const char *name)
{
	lg_program = name;
}

void lg_set_level(int level)
{
	lg_threshold = level;
}

int lg_level(void)
{
	if (lg_threshold < 0) {
		static const char *names[] = {"error", "warn", "info", "debug"};
		const char *env = getenv("RIFT_LOG");
		lg_threshold = LG_WARN;
		for (int i = 0; env && i < 4; i++)
			if (strcasecmp(env, names[i]) == 0)
				lg_threshold = i;
	}
	return lg_threshold;
}

void lg_vlog(int level, const char *fmt, va_list ap)
{
	static const char *names[] = {"error", "warning", "info", "debug"};
	char line[2048];
	int n;

	if (level > lg_level())
		return;
	if (level < 0 || level > LG_DEBUG)
		level = LG_ERROR;
	n = snprintf(line, sizeof line, "%s: %s: ", lg_program, names[level]);
	if (n < 0)
		return;
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	/* One write per line keeps lines whole between processes. */
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

void lg_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	lg_vlog(level, fmt, ap);
	va_end(ap);
}
