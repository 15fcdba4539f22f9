#include "options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int no_parse(const char *address, char *base, size_t baselen,
             struct no_opts *o, const char *const *allowed, char *err,
             size_t errlen)
{
	memset(o, 0, sizeof *o);
	const char *q = strchr(address, '?');
	size_t bl = q ? (size_t)(q - address) : strlen(address);
	if (bl == 0) {
		snprintf(err, errlen, "empty address");
		return -EINVAL;
	}
	if (bl >= baselen) {
		snprintf(err, errlen, "address too long (at most %zu bytes)", baselen - 1);
		return -ENAMETOOLONG;
	}
	memcpy(base, address, bl);
	base[bl] = '\0';
	while (q && *q) {
		const char *s = q + 1;
		const char *e = strchr(s, '&');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		const char *eq = memchr(s, '=', l);
		if (!eq || eq == s) {
			snprintf(err, errlen, "option '%.*s': expected key=value", (int)l, s);
			return -EINVAL;
		}
		size_t kl = (size_t)(eq - s), vl = l - kl - 1;
		if (o->n == NO_MAX || kl >= sizeof o->key[0] || vl >= sizeof o->val[0]) {
			snprintf(err, errlen, "option '%.*s': too many or too long", (int)l, s);
			return -EINVAL;
		}
		memcpy(o->key[o->n], s, kl);
		o->key[o->n][kl] = '\0';
		memcpy(o->val[o->n], eq + 1, vl);
		o->val[o->n][vl] = '\0';
		int known = 0;
		for (int i = 0; allowed && allowed[i]; i++)
			known |= strcmp(allowed[i], o->key[o->n]) == 0;
		if (!known) {
			snprintf(err, errlen, "unknown option '%s'", o->key[o->n]);
			return -EINVAL;
		}
		o->n++;
		q = e;
	}
	return 0;
}

const char *no_get(const struct no_opts *o, const char *key)
{
	for (int i = 0; i < o->n; i++)
		if (strcmp(o->key[i], key) == 0)
			return o->val[i];
	return NULL;
}

int no_get_int(const struct no_opts *o, const char *key, int64_t def,
               int64_t *out, char *err, size_t errlen)
{
	const char *v = no_get(o, key);
	*out = def;
	if (!v)
		return 0;
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || end == v || *end || x < 0) {
		snprintf(err, errlen, "option %s=%s: expected a non-negative integer", key, v);
		return -EINVAL;
	}
	*out = x;
	return 0;
}
