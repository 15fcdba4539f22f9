#include "keys.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char z85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          ".-:+=^!/*?&<>()[]{}@%$#";

int rk_read(const char *path, char out[RK_Z85_LEN + 1], char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "key file %s: %s", path, strerror(e));
		return -e;
	}
	char line[256];
	int rc = -EINVAL;
	snprintf(err, errlen, "key file %s: no key in it (expected 40 Z85 characters)", path);
	while (fgets(line, sizeof line, f)) {
		size_t l = strcspn(line, "\r\n");
		line[l] = '\0';
		while (l && (line[l - 1] == ' ' || line[l - 1] == '\t'))
			line[--l] = '\0';
		if (l == 0 || line[0] == '#')
			continue;
		bool ok = l == RK_Z85_LEN;
		for (size_t i = 0; ok && i < l; i++)
			ok = strchr(z85, line[i]) != NULL;
		if (ok) {
			memcpy(out, line, RK_Z85_LEN + 1);
			rc = 0;
		} else {
			snprintf(err, errlen, "key file %s: malformed key (expected 40 Z85 characters)",
			         path);
		}
		break;
	}
	fclose(f);
	return rc;
}

int rk_write(const char *path, const char *comment, const char *key, unsigned mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	char buf[512];
	int n = snprintf(buf, sizeof buf, "# %s\n%s\n", comment, key);
	int rc = 0;
	if (n < 0 || (size_t)n >= sizeof buf || write(fd, buf, (size_t)n) != n)
		rc = -EIO;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}
