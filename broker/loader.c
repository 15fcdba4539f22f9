#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "loop.h"
#include "pipe.h"

#ifndef RIFT_PLUGIN_DIR
#define RIFT_PLUGIN_DIR "/usr/local/lib/rift/plugins"
#endif

void ld_init(struct ld_registry *reg, struct ev_loop *loop)
{
	memset(reg, 0, sizeof *reg);
	reg->loop = loop;
	reg->first_default = INT_MAX;
}

int ld_add_dir(struct ld_registry *reg, const char *dir)
{
	char **v = realloc(reg->dirs, (size_t)(reg->ndirs + 1) * sizeof *v);
	if (!v)
		return -ENOMEM;
	reg->dirs = v;
	/* Absolute, so --list-plugins and refusals name real paths. */
	char *abs = realpath(dir, NULL);
	if (!(v[reg->ndirs] = abs ? abs : strdup(dir)))
		return -ENOMEM;
	reg->ndirs++;
	return 0;
}

void ld_add_default_dirs(struct ld_registry *reg)
{
	reg->first_default = reg->ndirs;
	const char *env = getenv("RIFT_PLUGIN_PATH");
	if (env && *env) {
		char *copy = strdup(env), *save = NULL;
		for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d;
		     d = strtok_r(NULL, ":", &save))
			ld_add_dir(reg, d);
		free(copy);
	}
	ld_add_dir(reg, RIFT_PLUGIN_DIR);
}

static void host_log(const struct np_host *h, int level, const char *fmt, ...)
{
	const struct ld_plugin *pl = h->broker;
	char msg[1536];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	lg_log(level, "%s: %s", pl && pl->p ? pl->p->name : "plugin", msg);
}

static int64_t host_now(const struct np_host *h)
{
	(void)h;
	return ev_now_ms();
}

static int refuse(struct ld_registry *reg, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int refuse(struct ld_registry *reg, const char *path, const char *fmt, ...)
{
	char why[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	lg_log(LG_ERROR, "plugin %s: refused: %s", path, why);
	reg->refused++;
	return -EINVAL;
}

static bool valid_name(const char *s)
{
	if (!s || !*s || strlen(s) > 63)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '-'))
			return false;
	return true;
}

/* The checks of DESIGN.md section 3, in the order a reader would want the
 * first failure reported. Returns NULL or the reason. */
static const char *check_plugin(const struct np_plugin *p, char *buf, size_t len)
{
	if (p->magic != NP_MAGIC) {
		snprintf(buf, len, "bad magic 0x%08x (expected 0x%08x)",
		         p->magic, NP_MAGIC);
		return buf;
	}
	if (p->abi_major != NP_ABI_MAJOR) {
		snprintf(buf, len, "ABI major version %u, this broker speaks %u",
		         p->abi_major, NP_ABI_MAJOR);
		return buf;
	}
	if (p->abi_minor > NP_ABI_MINOR) {
		snprintf(buf, len, "ABI %u.%u is newer than this broker's %u.%u",
		         p->abi_major, p->abi_minor, NP_ABI_MAJOR, NP_ABI_MINOR);
		return buf;
	}
	if (p->struct_size < NP_PLUGIN_SIZE_1_0) {
		snprintf(buf, len, "np_plugin struct_size %u is smaller than the ABI 1.0 size %zu",
		         p->struct_size, (size_t)NP_PLUGIN_SIZE_1_0);
		return buf;
	}
	if (!valid_name(p->name)) {
		snprintf(buf, len, "invalid name (expected 1-63 characters of [a-z0-9_-])");
		return buf;
	}
	const char *missing = NULL;
	if (p->kind == NP_KIND_TRANSPORT) {
		missing = !p->open ? "open" : !p->close ? "close" : !p->read ? "read" :
		          !p->write ? "write" : !p->ready ? "ready" : NULL;
	} else if (p->kind == NP_KIND_RUNTIME) {
		const struct np_runtime_ops *r = p->runtime;
		if (!r || r->struct_size < NP_RUNTIME_OPS_SIZE_1_0)
			missing = "runtime";
		else
			missing = !r->accepts ? "runtime.accepts" : !r->start ? "runtime.start" :
			          !r->channel_event ? "runtime.channel_event" :
			          !r->fd_event ? "runtime.fd_event" : !r->stop ? "runtime.stop" : NULL;
	} else {
		snprintf(buf, len, "unknown kind %u (expected 1 transport or 2 runtime)", p->kind);
		return buf;
	}
	if (missing) {
		snprintf(buf, len, "required op '%s' is missing", missing);
		return buf;
	}
	return NULL;
}

int ld_load_file(struct ld_registry *reg, const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return refuse(reg, path, "dlopen failed: %s", dlerror());
	/* The same object reached twice (a directory searched twice, a
	 * symlink): dlopen hands back the loaded copy. It is not a new
	 * plugin, and its entry must not run again with a new host. */
	for (int i = 0; i < reg->nplugins; i++)
		if (reg->plugins[i]->handle == h)
			goto seen;
	for (struct ld_plugin *z = reg->refused_list; z; z = z->next_refused)
		if (z->handle == h)
			goto seen;
	np_entry_fn entry;
	*(void **)&entry = dlsym(h, NP_ENTRY_SYMBOL);
	if (!entry) {
		dlclose(h);
		return refuse(reg, path, "no %s symbol (is it a Rift plugin?)",
		              NP_ENTRY_SYMBOL);
	}
	struct ld_plugin *pl = calloc(1, sizeof *pl);
	if (!pl) {
		dlclose(h);
		return -ENOMEM;
	}
	pl->reg = reg;
	pl->handle = h;
	pl->host = (struct np_host){
		.struct_size = sizeof(struct np_host),
		.abi_major = NP_ABI_MAJOR,
		.abi_minor = NP_ABI_MINOR,
		.log = host_log,
		.watch_fd = pp_host_watch_fd,
		.wake = pp_host_wake,
		.set_timer = pp_host_set_timer,
		.now_ms = host_now,
		.broker = pl,
	};
	const struct np_plugin *p = entry(&pl->host);
	char why[512];
	const char *bad = p ? check_plugin(p, why, sizeof why)
	                    : "np_plugin_entry returned NULL";
	if (!bad) {
		struct ld_plugin *other = ld_find(reg, p->name);
		if (other) {
			snprintf(why, sizeof why, "name '%s' is already taken by %s",
			         p->name, other->path);
			bad = why;
		}
	}
	if (bad) {
		free(pl);
		dlclose(h);
		return refuse(reg, path, "%s", bad);
	}
	pl->p = p;
	if (p->init) {
		int rc = p->init(&pl->host);
		if (rc < 0) {
			/* init may have started threads that hold the host:
			 * keep both the object and the host alive. */
			pl->next_refused = reg->refused_list;
			reg->refused_list = pl;
			return refuse(reg, path, "init failed: %s", strerror(-rc));
		}
	}
	struct ld_plugin **v = realloc(reg->plugins,
	                               (size_t)(reg->nplugins + 1) * sizeof *v);
	if (v)
		reg->plugins = v;
	if (!v || !(pl->path = strdup(path))) {
		if (p->fini)
			p->fini();
		pl->next_refused = reg->refused_list; /* keep the host alive */
		reg->refused_list = pl;
		return -ENOMEM;
	}
	v[reg->nplugins++] = pl;
	lg_log(LG_DEBUG, "plugin %s: loaded '%s' %s", path, p->name, p->version);
	return 0;
seen:
	dlclose(h);
	lg_log(LG_DEBUG, "plugin %s: already loaded", path);
	return -EEXIST;
}

static int has_so_suffix(const char *n)
{
	size_t l = strlen(n);
	return l > 3 && strcmp(n + l - 3, ".so") == 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Collect dir/<x>.so and dir/<sub>/<x>.so. 0 or -errno. */
static int scan_dir(const char *dir, int depth, char ***out, int *n)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[4096];
		if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
			continue;
		struct stat st;
		if (stat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth == 0) {
			scan_dir(path, 1, out, n);
		} else if (S_ISREG(st.st_mode) && has_so_suffix(e->d_name)) {
			char **v = realloc(*out, (size_t)(*n + 1) * sizeof *v);
			if (!v)
				break;
			*out = v;
			if ((v[*n] = strdup(path)))
				(*n)++;
		}
	}
	closedir(d);
	return 0;
}

int ld_load_all(struct ld_registry *reg)
{
	int loaded = 0;
	for (int i = 0; i < reg->ndirs; i++) {
		char **files = NULL;
		int n = 0;
		int rc = scan_dir(reg->dirs[i], 0, &files, &n);
		if (rc < 0 && i < reg->first_default)
			lg_log(LG_WARN, "plugin directory %s: %s", reg->dirs[i], strerror(-rc));
		if (n > 1) /* sorted, for a stable order */
			qsort(files, (size_t)n, sizeof *files, cmp_str);
		for (int j = 0; j < n; j++) {
			if (ld_load_file(reg, files[j]) == 0)
				loaded++;
			free(files[j]);
		}
		free(files);
	}
	return loaded;
}

struct ld_plugin *ld_find(struct ld_registry *reg, const char *name)
{
	for (int i = 0; i < reg->nplugins; i++)
		if (strcmp(reg->plugins[i]->p->name, name) == 0)
			return reg->plugins[i];
	return NULL;
}

struct ld_plugin *ld_find_runtime(struct ld_registry *reg, const char *program)
{
	for (int i = 0; i < reg->nplugins; i++) {
		const struct np_plugin *p = reg->plugins[i]->p;
		if (p->kind == NP_KIND_RUNTIME && p->runtime->accepts(program))
			return reg->plugins[i];
	}
	return NULL;
}

const char *ld_caps_string(unsigned long long caps, char *buf, size_t len)
{
	static const char *names[] = {"SEEK", "TRUNCATE", "MSG_BOUNDARIES",
	                              "MULTI_READER", "MULTI_WRITER", "RDWR",
	                              "ETAG", "REMOTE"};
	size_t o = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < sizeof names / sizeof *names; i++)
		if (caps & (1ull << i))
			o += (size_t)snprintf(buf + o, o < len ? len - o : 0, "%s%s",
			                      o ? "," : "", names[i]);
	if (!o)
		snprintf(buf, len, "-");
	return buf;
}

void ld_fini(struct ld_registry *reg)
{
	for (int i = reg->nplugins - 1; i >= 0; i--) {
		struct ld_plugin *pl = reg->plugins[i];
		if (pl->p->fini)
			pl->p->fini();
		free(pl->path);
		free(pl);
	}
	free(reg->plugins);
	while (reg->refused_list) {
		struct ld_plugin *pl = reg->refused_list;
		reg->refused_list = pl->next_refused;
		free(pl);
	}
	for (int i = 0; i < reg->ndirs; i++)
		free(reg->dirs[i]);
	free(reg->dirs);
	memset(reg, 0, sizeof *reg);
}
