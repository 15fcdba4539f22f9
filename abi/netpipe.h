/*
 * netpipe.h - the Rift plugin ABI.
 *
 * This is the only header a Rift plugin needs. It is C99 plus <stdint.h>,
 * <stddef.h> and <sys/types.h>; it contains no broker types. docs/abi.md is
 * the normative prose for everything declared here; the comments below are
 * the same contract, kept beside the declarations.
 *
 * A plugin is a shared object that exports exactly one symbol:
 *
 *     const struct np_plugin *np_plugin_entry(const struct np_host *host);
 *
 * Build it with hidden visibility and mark only the entry point with
 * NP_EXPORT. The broker loads it with dlopen(RTLD_NOW | RTLD_LOCAL) and never
 * unloads it while running. The plugin needs no symbol from the broker: every
 * service it may use comes through the np_host it is given.
 *
 * Versioning (the SQLite VFS rule): every struct starts with struct_size;
 * fields are only ever appended, grouped under "since 1.N" comments; a reader
 * of a struct checks struct_size before touching a field newer than 1.0. A
 * plugin is accepted when its magic is NP_MAGIC, its abi_major equals the
 * broker's and its abi_minor is not newer than the broker's.
 *
 * Errors: every operation returns 0 or a count on success and a negative
 * errno value on failure. Never rely on the global errno across the ABI.
 *
 * Threads: every operation is called on the broker's single event-loop
 * thread and must not block. A plugin may run threads of its own (libzmq and
 * nng do), but such a thread may only call host->wake().
 */
#ifndef NETPIPE_H
#define NETPIPE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NP_MAGIC     0x3150504eu /* "NPP1" in little-endian bytes */
#define NP_ABI_MAJOR 1
#define NP_ABI_MINOR 0

#if defined(__GNUC__)
#define NP_EXPORT __attribute__((visibility("default")))
#define NP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define NP_EXPORT
#define NP_PRINTF(f, a)
#endif

/* Per-pipe and per-run state is aligned to this many bytes (enough for
 * libsodium's and SIMD types). */
#define NP_STATE_ALIGN 64

/* The one symbol a plugin exports. */
#define NP_ENTRY_SYMBOL "np_plugin_entry"

/* Readiness bits, returned by ready() and passed to host->watch_fd(). */
#define NP_IN  0x1u /* a read would return data, EOF or an error now */
#define NP_OUT 0x2u /* a write would make progress now */
#define NP_HUP 0x4u /* the peer is gone; reads drain what is left */
#define NP_ERR 0x8u /* the pipe failed; the next read or write says how */

/* Open modes. A pipe is opened for reading, writing, or both. */
#define NP_READ  0x1u
#define NP_WRITE 0x2u
#define NP_RDWR  (NP_READ | NP_WRITE)

/* Capability bits (np_plugin.caps). */
#define NP_CAP_SEEK           (1ull << 0) /* seek/tell are meaningful */
#define NP_CAP_TRUNCATE       (1ull << 1) /* truncate is meaningful */
#define NP_CAP_MSG_BOUNDARIES (1ull << 2) /* a read never spans two writes */
#define NP_CAP_MULTI_READER   (1ull << 3) /* several readers per address */
#define NP_CAP_MULTI_WRITER   (1ull << 4) /* several writers per address */
#define NP_CAP_RDWR           (1ull << 5) /* NP_RDWR opens are supported */
#define NP_CAP_ETAG           (1ull << 6) /* carries the stream digest */
#define NP_CAP_REMOTE         (1ull << 7) /* the peer may be on another host */

/* Plugin kinds. */
#define NP_KIND_TRANSPORT 1u /* moves bytes: the pipe ops below */
#define NP_KIND_RUNTIME   2u /* runs a manifest's Program: np_runtime_ops */

/* Log levels for host->log(). */
#define NP_LOG_ERROR 0
#define NP_LOG_WARN  1
#define NP_LOG_INFO  2
#define NP_LOG_DEBUG 3

/* close() flags. */
#define NP_CLOSE_ABORT 0x1u /* release everything now; never -EAGAIN */

/* ctl() op numbers: the core's below NP_CTL_PRIVATE, plugins' from it on. */
#define NP_CTL_PRIVATE 1000
#define NP_CTL_FDS     1 /* arg: int[2]; the fds a caller may poll, or -1 */
#define NP_CTL_PENDING 2 /* arg: NULL; returns how many bytes writes accepted
                            that the plugin still holds (0: none), or the
                            -errno that keeps them from going */
#define NP_CTL_WAIT    3 /* arg: struct np_wait *; the one op that may
                            block: until a read would progress, at most
                            timeout_ms. Returns ready()'s bits (0: nothing
                            yet), or -ENOTTY when the pipe cannot wait so
                            (the caller then waits on its loop). Only a
                            caller with nothing else to do calls it (a
                            blocking libnetpipe read); the broker never
                            does. docs/abi.md, section 6. */

/* NP_CTL_WAIT's argument. */
struct np_wait {
	uint32_t struct_size; /* sizeof(struct np_wait) */
	uint32_t events;      /* what the caller waits for: NP_IN */
	int32_t timeout_ms;   /* block at most this long (>= 0) */
	uint32_t reserved;    /* 0 */
};

/* The channel types of a ZeroVM manifest (np_open_args.type). */
#define NP_TYPE_SEQ_SEQ  0 /* sequential reads, sequential writes */
#define NP_TYPE_RND_SEQ  1 /* random reads, sequential writes */
#define NP_TYPE_SEQ_RND  2 /* sequential reads, random writes */
#define NP_TYPE_RND_RND  3 /* random reads, random writes */

struct np_host;
struct np_plugin;

/*
 * One open pipe. The broker allocates it, fills every field before open()
 * and owns it; the plugin owns only *state, a zeroed block of
 * np_plugin.state_size bytes aligned to NP_STATE_ALIGN (64) bytes.
 */
struct np_pipe {
	uint32_t struct_size;
	uint32_t mode;               /* NP_READ, NP_WRITE or NP_RDWR */
	void *state;                 /* the plugin's per-pipe state */
	const struct np_host *host;  /* the same host the plugin got at entry */
	const char *label;           /* alias or descriptor, for log lines */
	void *broker;                /* the broker's; plugins never touch it */
};

/* What open() is asked to open. */
struct np_open_args {
	uint32_t struct_size;
	uint32_t mode;        /* NP_READ, NP_WRITE or NP_RDWR */
	const char *address;  /* the descriptor after "<scheme>:", mode
	                         suffix removed, options ("?k=v&k=v") kept */
	uint32_t type;        /* NP_TYPE_*: which directions may seek */
	uint32_t etag;        /* 1: carry and check the stream's digest */
};

/*
 * Services the broker gives a plugin. Every plugin gets its own copy, so
 * log lines are attributed to it. All of these are loop-thread only except
 * wake(), which any thread may call.
 */
struct np_host {
	uint32_t struct_size;
	uint32_t abi_major;
	uint32_t abi_minor;
	uint32_t reserved;

	/* Write one log line, attributed to this plugin (and to the pipe when
	 * the message concerns one: use host->log with pipe->label in fmt). */
	void (*log)(const struct np_host *host, int level, const char *fmt, ...)
	    NP_PRINTF(3, 4);

	/* Ask to be told when fd has any of events (NP_IN | NP_OUT). Calling it
	 * again for the same fd replaces the events; events == 0 removes the
	 * watch. Watches are level-triggered: watch NP_OUT only while a write
	 * is waiting. When a watched fd fires, the broker calls ready() and
	 * then the ops it says can progress, until they return -EAGAIN. A
	 * pipe's watches are removed when it is closed. Returns 0 or -errno. */
	int (*watch_fd)(struct np_pipe *pipe, int fd, uint32_t events);

	/* Make the broker call ready() on this pipe soon. The only service
	 * that may be called from a plugin's own threads. */
	void (*wake)(struct np_pipe *pipe);

	/* Arm the pipe's one timer: after delay_ms the broker calls ready().
	 * A new call replaces the previous deadline; delay_ms < 0 cancels.
	 * Returns 0 or -errno. */
	int (*set_timer)(struct np_pipe *pipe, int64_t delay_ms);

	/* Monotonic milliseconds, the clock set_timer uses. */
	int64_t (*now_ms)(const struct np_host *host);

	/* The broker's private data; plugins never touch it. */
	void *broker;
};

/* A channel as a runtime sees it: opened by the broker, read and written
 * through host services, so quotas and digests always apply. */
struct np_channel {
	uint32_t struct_size;
	uint32_t mode;          /* NP_READ, NP_WRITE or NP_RDWR */
	const char *alias;      /* e.g. "/dev/in/sensor", "/dev/stdout" */
	const char *uri;        /* the URI from the manifest */
	uint32_t type;          /* NP_TYPE_* */
	uint32_t etag;
	int64_t gets, get_size; /* read quotas: operations, bytes */
	int64_t puts, put_size; /* write quotas: operations, bytes */
	void *runtime_data;     /* free for the runtime to use */
};

/* One run of a manifest's Program. */
struct np_run {
	uint32_t struct_size;
	uint32_t nchannels;
	const char *program;       /* the manifest's Program value */
	const char *manifest;      /* path of the manifest, for messages */
	struct np_channel **channels;
	int64_t timeout_ms;        /* the manifest's Timeout, 0 = none */
	int64_t memory;            /* the manifest's Memory size, 0 = none */
	void *state;               /* the runtime's, state_size bytes, zeroed */
	void *broker;              /* the broker's; runtimes never touch it */
};

/* Services a runtime gets in addition to np_host (np_runtime_ops.start). */
struct np_run_host {
	uint32_t struct_size;
	uint32_t reserved;

	/* Channel I/O through the broker. They never block: -EAGAIN means "you
	 * will get channel_event() when it may progress". read returns 0 at
	 * EOF; past a quota both return -EDQUOT and the channel stays usable
	 * for the other direction. seek returns -ESPIPE on a sequential one. */
	int64_t (*read)(struct np_run *run, struct np_channel *ch, void *buf,
	                size_t len);
	int64_t (*write)(struct np_run *run, struct np_channel *ch,
	                 const void *buf, size_t len);
	int64_t (*seek)(struct np_run *run, struct np_channel *ch, int64_t off,
	                int whence);
	/* Finish a channel cleanly (the broker flushes it and sends
	 * end-of-stream, even after the run has exited). Idempotent. */
	int (*close)(struct np_run *run, struct np_channel *ch);

	/* Watch a runtime-owned fd; events arrive in fd_event(). events == 0
	 * removes the watch. */
	int (*watch_fd)(struct np_run *run, int fd, uint32_t events);

	/* The program is finished with this status (0-255, as for exit(3)).
	 * The broker then drains and closes the channels and exits. */
	void (*exit)(struct np_run *run, int status);

	/* Write one log line attributed to the run. */
	void (*log)(struct np_run *run, int level, const char *fmt, ...)
	    NP_PRINTF(3, 4);

	/* End a channel without end-of-stream: its reader gets -ECONNRESET,
	 * as when a writer dies (use it when the program was killed).
	 * Idempotent; a no-op after close(). */
	int (*abort)(struct np_run *run, struct np_channel *ch);
};

/* A runtime: runs a Program over the channels the broker opened. */
struct np_runtime_ops {
	uint32_t struct_size;
	uint32_t state_size;     /* bytes of np_run.state */

	/* 1 if this runtime runs that Program value ("exec:/bin/cat", "x.rbc"),
	 * else 0. Must not open or start anything. */
	int (*accepts)(const char *program);

	/* Check the Program value without starting anything (broker --check,
	 * and before every run opens a channel). manifest is the manifest's
	 * path, for resolving relative paths. 0 or -errno with a message in
	 * err. Optional. */
	int (*validate)(const char *program, const char *manifest, char *err,
	                size_t errlen);

	/* Start the program. 0, or -errno with a message in err. */
	int (*start)(struct np_run *run, const struct np_run_host *rh,
	             char *err, size_t errlen);

	/* A channel may progress in the directions of events. */
	void (*channel_event)(struct np_run *run, struct np_channel *ch,
	                      uint32_t events);

	/* A runtime fd became ready. */
	void (*fd_event)(struct np_run *run, int fd, uint32_t events);

	/* Stop now (timeout, signal): kill what runs, release everything.
	 * exit() is not expected after stop(). */
	void (*stop)(struct np_run *run);
};

/*
 * The plugin's description and operations. Returned by np_plugin_entry();
 * must stay valid and unchanged while the broker runs.
 *
 * Rules every transport op keeps (docs/abi.md, section 6):
 *  - After an op returns -EAGAIN, the plugin keeps a watch, timer or wake
 *    armed until that op can progress: the broker calls ops again only
 *    after ready() said so, and ready() only after an event.
 *  - Bytes a write accepted reach the reader without another write or a
 *    close (flush what the plugin holds from ready()).
 *  - Errors are sticky: after -ECONNRESET, -EIO or -EBADMSG every later
 *    read returns the same error; after -EPIPE every later write does.
 *  - A read or write of 0 bytes returns 0 and does nothing.
 */
struct np_plugin {
	/* since 1.0 */
	uint32_t struct_size;       /* sizeof(struct np_plugin) */
	uint32_t magic;             /* NP_MAGIC */
	uint32_t abi_major;         /* NP_ABI_MAJOR */
	uint32_t abi_minor;         /* NP_ABI_MINOR */
	uint32_t kind;              /* NP_KIND_TRANSPORT or NP_KIND_RUNTIME */
	uint32_t state_size;        /* bytes of np_pipe.state for each pipe */
	const char *name;           /* = the descriptor scheme; [a-z0-9_-]+ */
	const char *version;        /* the plugin's own version, free text */
	const char *license;        /* SPDX identifier, e.g. "MIT" */
	const char *description;    /* one line */
	uint64_t caps;              /* NP_CAP_* */

	/* Called once after the entry point, before any other op. 0 or
	 * -errno; on failure the plugin is refused and fini is not called.
	 * Optional. */
	int (*init)(const struct np_host *host);
	/* Called once at broker exit, after every pipe is closed. Optional. */
	void (*fini)(void);

	/* Check an address for mode (NP_READ...) without opening anything:
	 * syntax, options, that paths could be used. 0, or -errno with a
	 * human message in err (errlen bytes, NUL-terminated). Optional; the
	 * broker accepts every address when it is NULL. */
	int (*validate)(const char *address, uint32_t mode, char *err,
	                size_t errlen);

	/* ---- transport ops (kind == NP_KIND_TRANSPORT) ---- */

	/* Open a pipe: bind/listen for a reader, start connecting for a
	 * writer (rule 7: the reader listens, the writer connects and retries
	 * until the reader appears). Must not block: a writer that has no
	 * reader yet opens successfully and its writes return -EAGAIN. On
	 * failure return -errno; the pipe MUST then be left in a state that
	 * close(pipe, NP_CLOSE_ABORT) handles. Required. */
	int (*open)(struct np_pipe *pipe, const struct np_open_args *args);

	/* Close the pipe. Without NP_CLOSE_ABORT this is a clean close: a
	 * writer flushes what it buffered and sends end-of-stream (with the
	 * digest when etag is set); it may return -EAGAIN while that is under
	 * way, and the broker calls ready() and close() again. A writer that
	 * wrote nothing, or has not reached its reader yet, still delivers
	 * end-of-stream: -EAGAIN until it has. With
	 * NP_CLOSE_ABORT (or after any other return) the plugin releases
	 * everything; the broker frees the state afterwards. Required. */
	int (*close)(struct np_pipe *pipe, uint32_t flags);

	/* Read up to len bytes. Returns a count > 0, 0 at end-of-stream (and
	 * again on every later call), -EAGAIN when no data is there yet
	 * (also before any writer connected: NP_HUP is not set then),
	 * -ECONNRESET (or -EIO) when the writer vanished without closing
	 * (after every byte that did arrive was returned), -EBADMSG on a
	 * digest mismatch. Required. */
	ssize_t (*read)(struct np_pipe *pipe, void *buf, size_t len);

	/* Write up to len bytes. Returns a count > 0 (maybe fewer than len),
	 * -EAGAIN when no reader is connected yet or the link is full, -EPIPE
	 * once the reader is gone. Never raises SIGPIPE. Required. */
	ssize_t (*write)(struct np_pipe *pipe, const void *buf, size_t len);

	/* Reposition, as lseek(2). Optional: NULL means -ESPIPE. */
	int64_t (*seek)(struct np_pipe *pipe, int64_t offset, int whence);
	/* The current offset. Optional: NULL means -ESPIPE. */
	int64_t (*tell)(struct np_pipe *pipe);
	/* Set the length. Optional: NULL means -EINVAL. */
	int (*truncate)(struct np_pipe *pipe, int64_t length);

	/* Make progress (accept, connect, retry, flush) and say what the pipe
	 * can do now: NP_IN | NP_OUT | NP_HUP | NP_ERR, counting data the
	 * plugin buffers internally. NP_OUT means a write would accept at
	 * least one new byte now; NP_IN that a read would return data, 0 or
	 * an error. Called after every watched event, timer and
	 * wake, and whenever the broker wants to know. Required. */
	uint32_t (*ready)(struct np_pipe *pipe);

	/* The escape hatch. Core op numbers are below NP_CTL_PRIVATE, private
	 * ones from it on; an unknown op returns -ENOTTY. Optional: NULL means
	 * -ENOTTY for every op. */
	int (*ctl)(struct np_pipe *pipe, int op, void *arg);

	/* A human message for the pipe's last failure, or NULL. The string
	 * stays valid until the next op on the pipe. Optional. */
	const char *(*last_error)(struct np_pipe *pipe);

	/* ---- runtime ops (kind == NP_KIND_RUNTIME) ---- */
	const struct np_runtime_ops *runtime;

	/* since 1.1: append new fields below this line only. */
};

/* The size of the 1.0 np_plugin: a plugin struct shorter than this is
 * refused. */
#define NP_PLUGIN_SIZE_1_0 \
	(offsetof(struct np_plugin, runtime) + sizeof(const void *))

/* The size of the 1.0 np_runtime_ops: shorter is refused, longer is a
 * newer minor and fine. */
#define NP_RUNTIME_OPS_SIZE_1_0 \
	(offsetof(struct np_runtime_ops, stop) + sizeof(void (*)(void)))

typedef const struct np_plugin *(*np_entry_fn)(const struct np_host *host);

#ifdef __cplusplus
}
#endif

#endif /* NETPIPE_H */
