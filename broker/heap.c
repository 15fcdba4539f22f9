/*
 * heap.c - the broker's malloc settings; why, in heap.h.
 */
#include "heap.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* Did the user set this glibc tunable, either way glibc reads it? */
static bool user_set(const char *tunable, const char *legacy_env)
{
	const char *t = getenv("GLIBC_TUNABLES");
	return (t && strstr(t, tunable)) || getenv(legacy_env);
}

int hp_tune(void)
{
#ifdef __GLIBC__
	int done = 0;
	if (user_set("glibc.malloc.trim_threshold=", "MALLOC_TRIM_THRESHOLD_"))
		done |= HP_USER_TRIM;
	else if (mallopt(M_TRIM_THRESHOLD, HP_TRIM_THRESHOLD))
		done |= HP_TRIM_SET;
	if (user_set("glibc.malloc.mmap_threshold=", "MALLOC_MMAP_THRESHOLD_"))
		done |= HP_USER_MMAP;
	else if (mallopt(M_MMAP_THRESHOLD, HP_MMAP_THRESHOLD))
		done |= HP_MMAP_SET;
	return done;
#else
	return HP_UNSUPPORTED;
#endif
}
