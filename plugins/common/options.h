/*
 * options.h - the "?k=v&k=v" tail of a plugin address.
 */
#ifndef RIFT_OPTIONS_H
#define RIFT_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#define NO_MAX 8

struct no_opts {
	int n;
	char key[NO_MAX][32];
	char val[NO_MAX][128];
};

/* Split address into the part before '?' (into base) and its options.
 * Returns 0, or -EINVAL with a message in err. Keys not in allowed
 * (a NULL-terminated list) are refused. */
int no_parse(const char *address, char *base, size_t baselen,
             struct no_opts *o, const char *const *allowed, char *err,
             size_t errlen);
/* The value of key, or NULL. */
const char *no_get(const struct no_opts *o, const char *key);
/* key as a non-negative integer (def when absent): 0 or -EINVAL. */
int no_get_int(const struct no_opts *o, const char *key, int64_t def,
               int64_t *out, char *err, size_t errlen);

#endif
