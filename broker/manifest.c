/*
 * manifest.c - ZeroVM-style manifests (DESIGN.md section 6, docs/manifest.md).
 *
 * The rules follow ZeroVM's own parser and the checks ZeroVM makes before
 * it runs anything, so that a real ZeroVM 1.x manifest gets the verdict
 * ZeroVM gives it. Where each rule comes from is written beside it and in
 * docs/manifest.md. The parser opens nothing: everything that needs a
 * plugin or the file system is checked later by the broker.
 */
#include "manifest.h"

#include "descriptor.h"
#include "log.h"
#include "netpipe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MF_MAX_FILE (1024 * 1024)  /* Rift: bigger manifests are refused */
#define MF_MAX_CHANNELS 10914      /* ZeroVM channel.c: MAX_CHANNELS_NUMBER - 1 */
#define MF_MAX_MEMORY 4294967296LL /* ZeroVM userspace.c: FOURGIG */
#define MF_MAX_TIMEOUT 2147483647LL /* ZeroVM keeps it in an int32 */
#define MF_MAX_JOB 108             /* ZeroVM: UNIX_PATH_MAX (sun_path) */
#define MF_MAX_NODE 255

#define STDIN_ALIAS "/dev/stdin"
#define STDOUT_ALIAS "/dev/stdout"
#define STDERR_ALIAS "/dev/stderr"

/* Singleton keys; Channel and Plugins are repeatable. */
enum { K_VERSION, K_PROGRAM, K_MEMORY, K_TIMEOUT, K_NODE, K_NAMESERVER,
       K_JOB, K_ETAG, K_BROKER, K_COUNT };
static const char *const key_names[K_COUNT] = {
	"Version", "Program", "Memory", "Timeout", "Node", "NameServer",
	"Job", "Etag", "Broker",
};

struct mf_ctx {
	const char *path;
	char *err;
	size_t errlen;
	struct mf_manifest *m;
	long version;             /* from the first Version line, else V1 */
	int first_line[K_COUNT];  /* 0 while a key has not been seen */
	int cap_channels;
	/* alias -> channel index + 1, open addressing */
	int *alias_tab;
	size_t alias_cap;
	/* the first tcp URI naming a node id (resolved by the NameServer) */
	int nodeid_line;
	char nodeid_uri[96];
};

/* ---- messages ---------------------------------------------------------- */

/* Copy s for a message: control bytes become '?', long text is cut. */
static const char *q(const char *s, char *buf, size_t len)
{
	size_t i = 0, j = 0;
	if (!s)
		s = "";
	while (s[i] && j + 4 < len) {
		unsigned char c = (unsigned char)s[i++];
		buf[j++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (s[i]) {
		buf[j++] = '.';
		buf[j++] = '.';
		buf[j++] = '.';
	}
	buf[j] = '\0';
	return buf;
}

static int mf_fail(struct mf_ctx *c, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int mf_fail(struct mf_ctx *c, int line, const char *fmt, ...)
{
	if (c->err && c->errlen) {
		int n;
		if (line > 0)
			n = snprintf(c->err, c->errlen, "%s:%d: ", c->path, line);
		else
			n = snprintf(c->err, c->errlen, "%s: ", c->path);
		if (n >= 0 && (size_t)n < c->errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return -EINVAL;
}

static int mf_oom(struct mf_ctx *c)
{
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s: out of memory while parsing the manifest",
		         c->path);
	return -ENOMEM;
}

/* ---- small helpers ----------------------------------------------------- */

static int is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' ||
	       ch == '\f';
}

/* Trim s in place; returns the first non-space byte. */
static char *trim(char *s)
{
	char *e;
	while (is_space(*s))
		s++;
	e = s + strlen(s);
	while (e > s && is_space(e[-1]))
		e--;
	*e = '\0';
	return s;
}

int mf_parse_int(const char *s, int64_t *out)
{
	size_t n, i = 0;
	int neg = 0, base = 10, overflow = 0;
	uint64_t acc = 0, limit;

	if (!s)
		return -EINVAL;
	while (is_space(*s))
		s++;
	n = strlen(s);
	while (n && is_space(s[n - 1]))
		n--;
	if (n == 0)
		return -EINVAL;
	if (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-';
		i = 1;
	}
	if (i == n)
		return -EINVAL;
	if (s[i] == '0' && i + 1 < n && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
		base = 16;
		i += 2;
		if (i == n)
			return -EINVAL; /* "0x" alone, as strtoll leaves it */
	} else if (s[i] == '0') {
		base = 8; /* a lone "0" is zero in any base */
	}
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		int d;
		char ch = s[i];
		if (ch >= '0' && ch <= '9')
			d = ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			d = ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			d = ch - 'A' + 10;
		else
			return -EINVAL;
		if (d >= base)
			return -EINVAL;
		if (acc > (limit - (uint64_t)d) / (uint64_t)base)
			overflow = 1;
		else
			acc = acc * (uint64_t)base + (uint64_t)d;
	}
	if (overflow)
		return -ERANGE;
	if (neg)
		*out = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
	else
		*out = (int64_t)acc;
	return 0;
}

/* Parse a number for "what" in [lo, hi]; on error fill err and fail. */
static int num(struct mf_ctx *c, int line, const char *what, const char *s,
               int64_t lo, int64_t hi, const char *range, int64_t *out)
{
	char b[128];
	int r = mf_parse_int(s, out);
	if (r == -ERANGE)
		return mf_fail(c, line, "%s '%s' does not fit in 64 bits, expected %s",
		               what, q(s, b, sizeof b), range);
	if (r < 0)
		return mf_fail(c, line, "%s '%s' is not a number, expected %s (decimal, "
		               "0x hex or 0-prefixed octal)", what, q(s, b, sizeof b), range);
	if (*out < lo || *out > hi)
		return mf_fail(c, line, "%s %lld is out of range, expected %s", what,
		               (long long)*out, range);
	return 0;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

/* ---- alias set ----------------------------------------------------------- */

static size_t hash_str(const char *s)
{
	size_t h = 1469598103934665603ULL & (size_t)-1;
	while (*s)
		h = (h ^ (unsigned char)*s++) * (size_t)1099511628211ULL;
	return h;
}

/* Return the index of the channel already using alias, or -1. */
static int alias_find(struct mf_ctx *c, const char *alias)
{
	if (!c->alias_cap)
		return -1;
	size_t i = hash_str(alias) & (c->alias_cap - 1);
	while (c->alias_tab[i]) {
		int idx = c->alias_tab[i] - 1;
		if (strcmp(c->m->channels[idx].alias, alias) == 0)
			return idx;
		i = (i + 1) & (c->alias_cap - 1);
	}
	return -1;
}

static int alias_add(struct mf_ctx *c, int idx)
{
	if ((size_t)(idx + 1) * 2 > c->alias_cap) {
		size_t ncap = c->alias_cap ? c->alias_cap * 2 : 64;
		int *nt = calloc(ncap, sizeof *nt);
		if (!nt)
			return -ENOMEM;
		for (size_t k = 0; k < c->alias_cap; k++) {
			if (!c->alias_tab[k])
				continue;
			size_t i = hash_str(c->m->channels[c->alias_tab[k] - 1].alias) & (ncap - 1);
			while (nt[i])
				i = (i + 1) & (ncap - 1);
			nt[i] = c->alias_tab[k];
		}
		free(c->alias_tab);
		c->alias_tab = nt;
		c->alias_cap = ncap;
	}
	size_t i = hash_str(c->m->channels[idx].alias) & (c->alias_cap - 1);
	while (c->alias_tab[i])
		i = (i + 1) & (c->alias_cap - 1);
	c->alias_tab[i] = idx + 1;
	return 0;
}

/* ---- keys ----------------------------------------------------------------- */

static long version_of(const char *v)
{
	/* ZeroVM compares the trimmed text with its format string, so
	 * "0x132D1B3" is not 20130611. 20140320 is the 7-field format as it
	 * first appeared in zerovm/zerovm's master (src/main/manifest.c). */
	if (strcmp(v, "20130611") == 0)
		return MF_VERSION_1;
	if (strcmp(v, "20140509") == 0 || strcmp(v, "20140320") == 0)
		return MF_VERSION_2;
	return 0;
}

static int key_version(struct mf_ctx *c, int line, const char *v)
{
	char b[128];
	long ver = version_of(v);
	if (!ver)
		return mf_fail(c, line, "unsupported Version '%s', expected 20130611 "
		               "(ZeroVM 1.x, 8-field channels) or 20140509 (ZeroVM 2.x, "
		               "7-field channels)", q(v, b, sizeof b));
	c->m->version = ver;
	return 0;
}

static int key_memory(struct mf_ctx *c, int line, char *v)
{
	char b[128];
	int64_t size, etag;
	char *comma = strchr(v, ',');
	if (!comma)
		return mf_fail(c, line, "Memory '%s' has no etag field, expected "
		               "'<size>, <etag>' (e.g. 'Memory = 67108864, 0')",
		               q(v, b, sizeof b));
	if (strchr(comma + 1, ','))
		return mf_fail(c, line, "Memory '%s' has more than 2 fields, expected "
		               "'<size>, <etag>'", q(v, b, sizeof b));
	*comma = '\0';
	if (num(c, line, "Memory size", v, 1, MF_MAX_MEMORY,
	        "1 to 4294967296 bytes", &size) < 0)
		return -EINVAL;
	if (num(c, line, "Memory etag", comma + 1, 0, 1, "0 or 1", &etag) < 0)
		return -EINVAL;
	c->m->memory = size;
	c->m->memory_etag = (int)etag;
	return 0;
}

static int valid_node(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > MF_MAX_NODE)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = v[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return 0;
	}
	return 1;
}

/* "proto:host:port" split the way ZeroVM splits it (at most 3 parts). */
struct conn {
	char *proto, *host, *port; /* port is NULL when absent */
};

static int split_conn(char *s, struct conn *k)
{
	char *a = strchr(s, ':');
	if (!a)
		return -1;
	*a = '\0';
	k->proto = trim(s);
	k->host = a + 1;
	k->port = NULL;
	char *b = strchr(k->host, ':');
	if (b) {
		*b = '\0';
		k->port = trim(b + 1);
	}
	k->host = trim(k->host);
	return 0;
}

/* An IPv4 address in dotted form, not 0.0.0.0 (ZeroVM: "malformed ip token"). */
static int valid_ipv4(const char *s)
{
	struct in_addr a;
	return inet_pton(AF_INET, s, &a) == 1 && a.s_addr != 0;
}

static int key_nameserver(struct mf_ctx *c, int line, const char *v)
{
	char b[128], buf[512];
	struct conn k = {0};
	int64_t port;
	const char *form = "udp:<ipv4>:<port> (e.g. 'NameServer = udp:127.0.0.1:54321')";

	if (strlen(v) >= sizeof buf)
		return mf_fail(c, line, "NameServer '%s' is too long, expected %s",
		               q(v, b, sizeof b), form);
	strcpy(buf, v);
	if (split_conn(buf, &k) < 0 || !k.port)
		return mf_fail(c, line, "NameServer '%s' is not a udp address, expected %s",
		               q(v, b, sizeof b), form);
	if (strcasecmp(k.proto, "udp") != 0)
		return mf_fail(c, line, "NameServer protocol '%s' is not supported, expected %s "
		               "(ZeroVM: \"name server only support udp protocol\")",
		               q(k.proto, b, sizeof b), form);
	if (!valid_ipv4(k.host))
		return mf_fail(c, line, "NameServer host '%s' is not an IPv4 address, expected %s",
		               q(k.host, b, sizeof b), form);
	if (num(c, line, "NameServer port", k.port, 1, 65535, "a port 1-65535", &port) < 0)
		return -EINVAL;
	c->m->name_server = xstrdup(v);
	return c->m->name_server ? 0 : mf_oom(c);
}

static int key_plugins(struct mf_ctx *c, const char *v)
{
	char *dir;
	const char *slash = strrchr(c->path, '/');

	if (v[0] == '/' || !slash) {
		dir = xstrdup(v);
	} else {
		size_t dl = slash == c->path ? 1 : (size_t)(slash - c->path);
		size_t vl = strlen(v);
		dir = malloc(dl + 1 + vl + 1);
		if (dir) {
			memcpy(dir, c->path, dl);
			size_t o = dl;
			if (dir[o - 1] != '/')
				dir[o++] = '/';
			memcpy(dir + o, v, vl + 1);
		}
	}
	if (!dir)
		return mf_oom(c);
	char **nd = realloc(c->m->plugin_dirs,
	                    (size_t)(c->m->nplugin_dirs + 1) * sizeof *nd);
	if (!nd) {
		free(dir);
		return mf_oom(c);
	}
	c->m->plugin_dirs = nd;
	nd[c->m->nplugin_dirs++] = dir;
	return 0;
}

/* ---- channels ------------------------------------------------------------ */

enum uri_kind { U_PATH, U_TCP, U_NET, U_NETPIPE };

static const char *const zerovm_protocols[] = {
	/* ZeroVM manifest.h PROTOCOLS, matched without case; only TCP carries
	 * channel data in ZeroVM 1.x (channel.c), the rest fail at run time. */
	"udp", "ipc", "inproc", "pgm", "epgm", "regular", "directory",
	"character", "block", "fifo", "link", "opaque", "socket",
};

/* Check one URI's syntax; return its kind and, for Netpipe, its mode. */
static int check_uri(struct mf_ctx *c, int line, const char *uri,
                     enum uri_kind *kind, uint32_t *dmode)
{
	char b[128], b2[128], derr[256];
	const char *forms = c->m->version == MF_VERSION_2
		? "an absolute path, net:<name> or Netpipe:<descriptor>"
		: "an absolute path, tcp:<host>:<port> or Netpipe:<descriptor>";

	*dmode = 0;
	if (strncmp(uri, "Netpipe:", 8) == 0 || strncasecmp(uri, "netpipe:", 8) == 0) {
		struct ds_desc d;
		int r = ds_parse(uri, 1, &d, derr, sizeof derr);
		if (r == -ENOMEM)
			return mf_oom(c);
		if (r < 0)
			return mf_fail(c, line, "channel URI '%s': %s", q(uri, b, sizeof b), derr);
		*dmode = d.mode;
		ds_free(&d);
		*kind = U_NETPIPE;
		return 0;
	}
	if (c->m->version == MF_VERSION_2 && strncmp(uri, "net:", 4) == 0) {
		/* ZeroVM 2.x: "net:" names a pipe of ZeroVM's broker. */
		if (!uri[4])
			return mf_fail(c, line, "channel URI 'net:' has no name, expected net:<name>");
		*kind = U_NET;
		return 0;
	}
	if (uri[0] == '/') {
		/* ZeroVM 1.x splits every URI at ':' before it looks for a path,
		 * so a path with ':' is "invalid channel name" there. */
		if (c->m->version == MF_VERSION_1 && strchr(uri, ':'))
			return mf_fail(c, line, "channel path '%s' contains ':', expected a path "
			               "without ':' (ZeroVM 1.x reads ':' as a protocol separator; "
			               "use Netpipe:file:<path> for such a file)", q(uri, b, sizeof b));
		*kind = U_PATH;
		return 0;
	}

	const char *colon = strchr(uri, ':');
	if (!colon)
		return mf_fail(c, line, "channel URI '%s' is not an absolute path, expected %s",
		               q(uri, b, sizeof b), forms);

	char proto[32];
	size_t pl = (size_t)(colon - uri);
	while (pl && is_space(uri[pl - 1]))
		pl--;
	snprintf(proto, sizeof proto, "%.*s", (int)(pl < sizeof proto ? pl : sizeof proto - 1), uri);
	if (strcasecmp(proto, "tcp") == 0) {
		if (c->m->version == MF_VERSION_2)
			return mf_fail(c, line, "channel URI '%s' is a ZeroVM 1.x tcp: URI but the "
			               "Version is 20140509, expected %s", q(uri, b, sizeof b), forms);
		char *buf = xstrdup(uri);
		struct conn k = {0};
		int64_t v;
		int r = 0;
		if (!buf)
			return mf_oom(c);
		split_conn(buf, &k);
		if (!k.port) {
			r = mf_fail(c, line, "channel URI '%s' has no port, expected "
			            "tcp:<host>:<port> (e.g. tcp:127.0.0.1:5555, or tcp:<node>: "
			            "with a NameServer)", q(uri, b, sizeof b));
		} else if (!*k.host) {
			r = mf_fail(c, line, "channel URI '%s' has no host, expected "
			            "tcp:<ipv4>:<port> or tcp:<node id>:<port>", q(uri, b, sizeof b));
		} else if (strchr(k.host, '.')) {
			if (!valid_ipv4(k.host))
				r = mf_fail(c, line, "channel URI '%s': host '%s' is not an IPv4 "
				            "address, expected a dotted IPv4 address other than 0.0.0.0 "
				            "or a node id", q(uri, b, sizeof b), q(k.host, b2, sizeof b2));
		} else {
			/* No '.': ZeroVM reads the host as a node id that the
			 * NameServer resolves (ExtractHost in manifest.c). */
			if (mf_parse_int(k.host, &v) < 0 || v < 0 || v > 4294967295LL)
				r = mf_fail(c, line, "channel URI '%s': host '%s' is neither an IPv4 "
				            "address nor a node id, expected tcp:<ipv4>:<port> or "
				            "tcp:<node id 0-4294967295>:<port> (host names are not "
				            "resolved)", q(uri, b, sizeof b), q(k.host, b2, sizeof b2));
			if (r == 0 && !c->nodeid_line) {
				c->nodeid_line = line;
				q(uri, c->nodeid_uri, sizeof c->nodeid_uri);
			}
		}
		/* An empty port is 0, to be filled in by the NameServer
		 * (ZeroVM's tests write "tcp:4:"). */
		if (r == 0 && k.port && *k.port)
			r = num(c, line, "tcp port", k.port, 0, 65535, "a port 0-65535", &v);
		free(buf);
		if (r < 0)
			return r;
		*kind = U_TCP;
		return 0;
	}
	for (size_t i = 0; i < sizeof zerovm_protocols / sizeof *zerovm_protocols; i++)
		if (strcasecmp(proto, zerovm_protocols[i]) == 0)
			return mf_fail(c, line, "channel URI '%s' uses ZeroVM protocol '%s', which "
			               "cannot carry a channel, expected %s", q(uri, b, sizeof b),
			               q(proto, b2, sizeof b2), forms);
	return mf_fail(c, line, "channel URI '%s' is not an absolute path and has no "
	               "known protocol, expected %s", q(uri, b, sizeof b), forms);
}

static void free_channel(struct mf_channel *ch)
{
	for (int i = 0; i < ch->nuris; i++)
		free(ch->uris[i]);
	free(ch->uris);
	free(ch->alias);
	memset(ch, 0, sizeof *ch);
}

static const char *dir_text(uint32_t mode)
{
	switch (mode) {
	case NP_READ: return "read-only";
	case NP_WRITE: return "write-only";
	case NP_RDWR: return "read-write";
	default: return "neither readable nor writable";
	}
}

static int key_channel(struct mf_ctx *c, int line, char *v)
{
	static const char *const names1 =
		"<uri>, <alias>, <type>, <etag>, <gets>, <get_size>, <puts>, <put_size>";
	static const char *const names2 =
		"<uri>, <alias>, <type>, <gets>, <get_size>, <puts>, <put_size>";
	char b[128], b2[128];
	int v1 = c->m->version != MF_VERSION_2;
	int want = v1 ? 8 : 7;
	char *f[8];
	int nf = 0;
	int r;

	if (c->m->nchannels >= MF_MAX_CHANNELS)
		return mf_fail(c, line, "too many channels, expected at most %d (ZeroVM's limit)",
		               MF_MAX_CHANNELS);

	/* Fields. A descriptor cannot contain ',', so splitting is safe. */
	for (char *p = v;;) {
		char *comma = strchr(p, ',');
		if (nf < 8)
			f[nf] = p;
		nf++;
		if (!comma)
			break;
		*comma = '\0';
		p = comma + 1;
	}
	if (nf != want)
		return mf_fail(c, line, "Channel has %d field%s, expected %d (%s) for Version %s",
		               nf, nf == 1 ? "" : "s", want, v1 ? names1 : names2,
		               v1 ? "20130611" : "20140509");
	for (int i = 0; i < nf; i++)
		f[i] = trim(f[i]);

	struct mf_channel ch;
	memset(&ch, 0, sizeof ch);
	ch.line = line;
	int64_t type, etag = 0, lim[4];
	static const char *const lim_names[4] = { "gets", "get_size", "puts", "put_size" };
	int li = v1 ? 4 : 3;

	/* Alias first: it names the channel in every later message. */
	if (!*f[1])
		return mf_fail(c, line, "Channel has an empty alias, expected a name such as "
		               "/dev/stdin or /dev/in/sensor");
	if (num(c, line, "Channel type", f[2], 0, 3,
	        "0-3 (0 sequential, 1 random read, 2 random write, 3 random read/write)",
	        &type) < 0)
		return -EINVAL;
	if (v1 && num(c, line, "Channel etag", f[3], 0, 1, "0 or 1", &etag) < 0)
		return -EINVAL;
	for (int i = 0; i < 4; i++) {
		char what[64];
		snprintf(what, sizeof what, "Channel %s limit", lim_names[i]);
		if (num(c, line, what, f[li + i], 0, INT64_MAX, "a count >= 0", &lim[i]) < 0)
			return -EINVAL;
	}

	/* Direction from the limits, as ZeroVM's CH_RW_TYPE (channel.h):
	 * readable when gets and get_size are both non-zero, writable when
	 * puts and put_size are. */
	uint32_t mode = 0;
	if (lim[0] > 0 && lim[1] > 0)
		mode |= NP_READ;
	if (lim[2] > 0 && lim[3] > 0)
		mode |= NP_WRITE;
	if (!mode)
		return mf_fail(c, line, "channel '%s' is neither readable nor writable "
		               "(gets=%lld, get_size=%lld, puts=%lld, put_size=%lld), expected "
		               "gets and get_size > 0 to read and/or puts and put_size > 0 to write",
		               q(f[1], b, sizeof b), (long long)lim[0], (long long)lim[1],
		               (long long)lim[2], (long long)lim[3]);
	if (!(mode & NP_READ) && (lim[0] > 0 || lim[1] > 0))
		lg_log(LG_WARN, "%s:%d: channel '%s' is not readable: gets=%lld and "
		       "get_size=%lld must both be > 0 to read", c->path, line,
		       q(f[1], b, sizeof b), (long long)lim[0], (long long)lim[1]);
	if (!(mode & NP_WRITE) && (lim[2] > 0 || lim[3] > 0))
		lg_log(LG_WARN, "%s:%d: channel '%s' is not writable: puts=%lld and "
		       "put_size=%lld must both be > 0 to write", c->path, line,
		       q(f[1], b, sizeof b), (long long)lim[2], (long long)lim[3]);

	/* URIs, separated by ';' */
	int nuris = 1;
	for (char *p = f[0]; (p = strchr(p, ';')); p++)
		nuris++;
	ch.uris = calloc((size_t)nuris, sizeof *ch.uris);
	if (!ch.uris)
		return mf_oom(c);
	ch.alias = xstrdup(f[1]);
	if (!ch.alias) {
		free_channel(&ch);
		return mf_oom(c);
	}
	char *p = f[0];
	for (int i = 0; i < nuris; i++) {
		char *semi = strchr(p, ';');
		if (semi)
			*semi = '\0';
		char *uri = trim(p);
		enum uri_kind kind = U_PATH;
		uint32_t dmode;
		if (!*uri) {
			free_channel(&ch);
			return mf_fail(c, line, "channel '%s' has an empty URI, expected "
			               "<uri>[;<uri>...] with no empty entries", q(f[1], b, sizeof b));
		}
		r = check_uri(c, line, uri, &kind, &dmode);
		if (r < 0) {
			free_channel(&ch);
			return r;
		}
		if (kind == U_NETPIPE && dmode && dmode != mode) {
			free_channel(&ch);
			return mf_fail(c, line, "channel '%s': descriptor '%s' says mode '%s' but the "
			               "limits make the channel %s (gets=%lld, get_size=%lld, puts=%lld, "
			               "put_size=%lld), expected ':%s' or no mode suffix",
			               q(f[1], b, sizeof b), q(uri, b2, sizeof b2),
			               ds_mode_name(dmode), dir_text(mode), (long long)lim[0],
			               (long long)lim[1], (long long)lim[2], (long long)lim[3],
			               ds_mode_name(mode));
		}
		if (kind == U_TCP && mode == NP_RDWR) {
			free_channel(&ch);
			return mf_fail(c, line, "tcp channel '%s' is both readable and writable, "
			               "expected read-only or write-only limits (ZeroVM binds readers "
			               "and connects writers: \"invalid i/o type\")",
			               q(f[1], b, sizeof b));
		}
		if (kind == U_PATH && mode == NP_RDWR && (type == 0 || type == 2)) {
			free_channel(&ch);
			return mf_fail(c, line, "channel '%s' is read-write with type %lld, expected "
			               "type 1 or 3 (ZeroVM: \"%s\")", q(f[1], b, sizeof b),
			               (long long)type, type == 0
			               ? "sequential channels cannot have r/w access"
			               : "sequential read / random write channels not supported");
		}
		ch.uris[ch.nuris] = xstrdup(uri);
		if (!ch.uris[ch.nuris]) {
			free_channel(&ch);
			return mf_oom(c);
		}
		ch.nuris++;
		p = semi ? semi + 1 : p + strlen(p);
	}

	int prev = alias_find(c, ch.alias);
	if (prev >= 0) {
		int pl = c->m->channels[prev].line;
		free_channel(&ch);
		return mf_fail(c, line, "duplicate alias '%s' (first declared at line %d), "
		               "expected every channel alias once", q(f[1], b, sizeof b), pl);
	}

	ch.type = (int)type;
	ch.etag = (int)etag;
	ch.gets = lim[0];
	ch.get_size = lim[1];
	ch.puts = lim[2];
	ch.put_size = lim[3];
	ch.mode = mode;
	if (c->m->nchannels == c->cap_channels) {
		int ncap = c->cap_channels ? c->cap_channels * 2 : 8;
		struct mf_channel *nc = realloc(c->m->channels, (size_t)ncap * sizeof *nc);
		if (!nc) {
			free_channel(&ch);
			return mf_oom(c);
		}
		c->m->channels = nc;
		c->cap_channels = ncap;
	}
	c->m->channels[c->m->nchannels++] = ch;
	if (alias_add(c, c->m->nchannels - 1) < 0)
		return mf_oom(c);
	return 0;
}

/* ---- lines ------------------------------------------------------------------ */

static int key_index(const char *key)
{
	for (int k = 0; k < K_COUNT; k++)
		if (strcmp(key, key_names[k]) == 0)
			return k;
	return -1;
}

static int do_line(struct mf_ctx *c, int line, char *key, char *val)
{
	char b[128];
	int k = key_index(key);
	int repeatable = strcmp(key, "Channel") == 0 || strcmp(key, "Plugins") == 0;

	if (k < 0 && !repeatable) {
		lg_log(LG_WARN, "%s:%d: unknown key '%s' ignored", c->path, line,
		       q(key, b, sizeof b));
		return 0;
	}
	if (!*val)
		return mf_fail(c, line, "key '%s' has an empty value, expected a value after '='",
		               key);
	if (k >= 0) {
		if (c->first_line[k])
			return mf_fail(c, line, "duplicate key '%s' (first at line %d), expected "
			               "it once", key, c->first_line[k]);
		c->first_line[k] = line;
	}

	int64_t n;
	switch (k) {
	case K_VERSION:
		return key_version(c, line, val);
	case K_PROGRAM:
		c->m->program = xstrdup(val);
		c->m->program_line = line;
		return c->m->program ? 0 : mf_oom(c);
	case K_MEMORY:
		return key_memory(c, line, val);
	case K_TIMEOUT:
		if (num(c, line, "Timeout", val, 1, MF_MAX_TIMEOUT,
		        "1 to 2147483647 seconds", &n) < 0)
			return -EINVAL;
		c->m->timeout = n;
		return 0;
	case K_NODE:
		if (!valid_node(val))
			return mf_fail(c, line, "Node '%s' is not a node name, expected a number "
			               "or a name of 1-%d characters [A-Za-z0-9._-]",
			               q(val, b, sizeof b), MF_MAX_NODE);
		c->m->node = xstrdup(val);
		return c->m->node ? 0 : mf_oom(c);
	case K_NAMESERVER:
		return key_nameserver(c, line, val);
	case K_JOB:
		if (strlen(val) > MF_MAX_JOB)
			return mf_fail(c, line, "Job path is %zu bytes long, expected at most %d "
			               "(a unix socket path)", strlen(val), MF_MAX_JOB);
		c->m->job = xstrdup(val);
		return c->m->job ? 0 : mf_oom(c);
	case K_ETAG:
		if (num(c, line, "Etag", val, 0, 1, "0 or 1", &n) < 0)
			return -EINVAL;
		c->m->etag = (int)n;
		return 0;
	case K_BROKER:
		lg_log(LG_WARN, "%s:%d: key 'Broker' (ZeroVM 2.x's broker socket) ignored",
		       c->path, line);
		return 0;
	default:
		break;
	}
	if (strcmp(key, "Channel") == 0)
		return key_channel(c, line, val);
	return key_plugins(c, val);
}

/* Split a line into key and value: "" key means a comment. */
static void split_line(char *s, char **key, char **val)
{
	char *t = s;
	*key = *val = NULL;
	while (is_space(*t))
		t++;
	if (*t == '#')
		return;
	char *eq = strchr(s, '=');
	if (!eq)
		return; /* no '=': a comment, as in ZeroVM */
	*eq = '\0';
	*key = trim(s);
	*val = trim(eq + 1);
	if (!**key)
		*key = NULL; /* "== banner" lines: ZeroVM ignores them */
}

static int final_checks(struct mf_ctx *c)
{
	static const int mandatory[] = { K_VERSION, K_PROGRAM, K_MEMORY, K_TIMEOUT };
	static const char *const example[] = {
		"Version = 20130611", "Program = <program>", "Memory = <bytes>, 0",
		"Timeout = <seconds>",
	};
	for (size_t i = 0; i < sizeof mandatory / sizeof *mandatory; i++)
		if (!c->first_line[mandatory[i]])
			return mf_fail(c, 0, "missing mandatory key '%s', expected a line '%s'",
			               key_names[mandatory[i]], example[i]);

	/* ZeroVM channel.c: "missing standard channels in manifest". */
	static const char *const std[] = { STDIN_ALIAS, STDOUT_ALIAS, STDERR_ALIAS };
	for (int i = 0; i < 3; i++)
		if (alias_find(c, std[i]) < 0)
			return mf_fail(c, 0, "missing standard channel '%s', expected a Channel "
			               "with alias %s (every manifest declares /dev/stdin, "
			               "/dev/stdout and /dev/stderr)", std[i], std[i]);

	if (c->first_line[K_NAMESERVER] && !c->first_line[K_NODE])
		return mf_fail(c, c->first_line[K_NAMESERVER], "NameServer given without Node, "
		               "expected a 'Node = <id>' line (the name server needs this "
		               "node's id)");
	if (c->nodeid_line && !c->first_line[K_NAMESERVER])
		return mf_fail(c, c->nodeid_line, "channel URI '%s' names a node id, expected a "
		               "'NameServer = udp:<ip>:<port>' line to resolve it (or an IPv4 "
		               "address)", c->nodeid_uri);
	if (c->m->version == MF_VERSION_2 && c->first_line[K_BROKER] &&
	    !c->first_line[K_NODE])
		return mf_fail(c, c->first_line[K_BROKER], "Broker given without Node, expected "
		               "a 'Node = <name>' line (ZeroVM 2.x: \"broker specified but node "
		               "is absent\")");
	return 0;
}

int mf_parse_text(const char *path, const char *text, size_t len,
                  struct mf_manifest *m, char *err, size_t errlen)
{
	struct mf_ctx c;
	int r = 0;

	if (err && errlen)
		err[0] = '\0';
	memset(&c, 0, sizeof c);
	c.path = path ? path : "<manifest>";
	c.err = err;
	c.errlen = errlen;
	c.m = m;
	if (!m)
		return mf_fail(&c, 0, "no manifest to fill, expected a struct mf_manifest");
	memset(m, 0, sizeof *m);
	if (!text)
		len = 0;

	/* NUL bytes first: the rest works on C strings. */
	const char *nul = len ? memchr(text, '\0', len) : NULL;
	if (nul) {
		int line = 1;
		for (const char *p = text; p < nul; p++)
			line += *p == '\n';
		return mf_fail(&c, line, "NUL byte in the manifest, expected a text file");
	}

	char *buf = malloc(len + 1);
	if (!buf)
		return mf_oom(&c);
	if (len)
		memcpy(buf, text, len);
	buf[len] = '\0';

	/* The first Version line decides how many fields a Channel has, even
	 * when it comes after the channels (ZeroVM's own files do that). */
	c.version = MF_VERSION_1;
	for (char *p = buf; p < buf + len;) {
		char *nl = memchr(p, '\n', (size_t)(buf + len - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(buf + len - p);
		const char *eq = memchr(p, '=', ll);
		if (eq) {
			const char *k = p, *ke = eq;
			while (k < ke && is_space(*k))
				k++;
			while (ke > k && is_space(ke[-1]))
				ke--;
			if ((size_t)(ke - k) == 7 && memcmp(k, "Version", 7) == 0) {
				char v[16];
				const char *vs = eq + 1, *ve = p + ll;
				while (vs < ve && is_space(*vs))
					vs++;
				while (ve > vs && is_space(ve[-1]))
					ve--;
				if ((size_t)(ve - vs) < sizeof v) {
					memcpy(v, vs, (size_t)(ve - vs));
					v[ve - vs] = '\0';
					if (version_of(v))
						c.version = version_of(v);
				}
				break;
			}
		}
		p += ll + 1;
	}
	m->version = c.version;

	int line = 0;
	for (char *p = buf; p <= buf + len && r == 0;) {
		char *nl = strchr(p, '\n');
		char *key, *val;
		line++;
		if (nl)
			*nl = '\0';
		split_line(p, &key, &val);
		if (key)
			r = do_line(&c, line, key, val);
		if (!nl)
			break;
		p = nl + 1;
	}
	free(buf);
	if (r == 0)
		r = final_checks(&c);
	free(c.alias_tab);
	if (r < 0) {
		mf_free(m);
		return r;
	}
	m->path = xstrdup(c.path);
	if (!m->path) {
		mf_free(m);
		return mf_oom(&c);
	}
	return 0;
}

int mf_parse_file(const char *path, struct mf_manifest *m, char *err,
                  size_t errlen)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, r;

	if (m)
		memset(m, 0, sizeof *m);
	if (err && errlen)
		err[0] = '\0';
	if (!path) {
		if (err && errlen)
			snprintf(err, errlen, "<manifest>: no file name, expected a manifest path");
		return -EINVAL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		if (err && errlen)
			snprintf(err, errlen, "%s: cannot open the manifest: %s, expected a "
			         "readable file", path, strerror(-r));
		return r;
	}
	for (;;) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16384;
			if (ncap > MF_MAX_FILE + 1)
				ncap = MF_MAX_FILE + 1;
			char *nb = realloc(buf, ncap);
			if (!nb) {
				free(buf);
				close(fd);
				if (err && errlen)
					snprintf(err, errlen, "%s: out of memory reading the manifest", path);
				return -ENOMEM;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			free(buf);
			close(fd);
			if (err && errlen)
				snprintf(err, errlen, "%s: cannot read the manifest: %s, expected a "
				         "readable file", path, strerror(-r));
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > MF_MAX_FILE) {
			free(buf);
			close(fd);
			if (err && errlen)
				snprintf(err, errlen, "%s: the manifest is larger than %d bytes, "
				         "expected at most 1 MiB", path, MF_MAX_FILE);
			return -EFBIG;
		}
	}
	close(fd);
	r = mf_parse_text(path, buf, len, m, err, errlen);
	free(buf);
	return r;
}

void mf_free(struct mf_manifest *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->nchannels; i++)
		free_channel(&m->channels[i]);
	free(m->channels);
	for (int i = 0; i < m->nplugin_dirs; i++)
		free(m->plugin_dirs[i]);
	free(m->plugin_dirs);
	free(m->path);
	free(m->program);
	free(m->node);
	free(m->name_server);
	free(m->job);
	memset(m, 0, sizeof *m);
}
