/*
 * The ABI's layout is a promise to plugins built against older headers:
 * these asserts fail the build if a field moves. Only appending is allowed;
 * when a field is appended, add its offset here and bump NP_ABI_MINOR.
 */
#include <stddef.h>
#include <stdio.h>
#include "netpipe.h"

#define AT(type, field, off) \
	_Static_assert(offsetof(struct type, field) == (off), \
	               #type "." #field " moved: the ABI only appends")

#if UINTPTR_MAX == 0xffffffffffffffffu
AT(np_plugin, struct_size, 0);
AT(np_plugin, magic, 4);
AT(np_plugin, abi_major, 8);
AT(np_plugin, abi_minor, 12);
AT(np_plugin, kind, 16);
AT(np_plugin, state_size, 20);
AT(np_plugin, name, 24);
AT(np_plugin, version, 32);
AT(np_plugin, license, 40);
AT(np_plugin, description, 48);
AT(np_plugin, caps, 56);
AT(np_plugin, init, 64);
AT(np_plugin, fini, 72);
AT(np_plugin, validate, 80);
AT(np_plugin, open, 88);
AT(np_plugin, close, 96);
AT(np_plugin, read, 104);
AT(np_plugin, write, 112);
AT(np_plugin, seek, 120);
AT(np_plugin, tell, 128);
AT(np_plugin, truncate, 136);
AT(np_plugin, ready, 144);
AT(np_plugin, ctl, 152);
AT(np_plugin, last_error, 160);
AT(np_plugin, runtime, 168);
_Static_assert(sizeof(struct np_plugin) == 176, "np_plugin 1.0 is 176 bytes");
_Static_assert(NP_PLUGIN_SIZE_1_0 == 176, "NP_PLUGIN_SIZE_1_0");

AT(np_pipe, struct_size, 0);
AT(np_pipe, mode, 4);
AT(np_pipe, state, 8);
AT(np_pipe, host, 16);
AT(np_pipe, label, 24);
AT(np_pipe, broker, 32);
_Static_assert(sizeof(struct np_pipe) == 40, "np_pipe 1.0 is 40 bytes");

AT(np_open_args, struct_size, 0);
AT(np_open_args, mode, 4);
AT(np_open_args, address, 8);
AT(np_open_args, type, 16);
AT(np_open_args, etag, 20);
_Static_assert(sizeof(struct np_open_args) == 24, "np_open_args 1.0");

AT(np_wait, struct_size, 0);
AT(np_wait, events, 4);
AT(np_wait, timeout_ms, 8);
AT(np_wait, reserved, 12);
_Static_assert(sizeof(struct np_wait) == 16, "np_wait (NP_CTL_WAIT) is 16 bytes");

AT(np_host, struct_size, 0);
AT(np_host, abi_major, 4);
AT(np_host, abi_minor, 8);
AT(np_host, log, 16);
AT(np_host, watch_fd, 24);
AT(np_host, wake, 32);
AT(np_host, set_timer, 40);
AT(np_host, now_ms, 48);
AT(np_host, broker, 56);
_Static_assert(sizeof(struct np_host) == 64, "np_host 1.0 is 64 bytes");

AT(np_channel, alias, 8);
AT(np_channel, gets, 32);
AT(np_channel, runtime_data, 64);
AT(np_run, channels, 24);
AT(np_run, state, 48);
AT(np_run_host, read, 8);
AT(np_run_host, log, 56);
AT(np_run_host, abort, 64);
AT(np_runtime_ops, accepts, 8);
AT(np_runtime_ops, stop, 48);
_Static_assert(NP_RUNTIME_OPS_SIZE_1_0 == 56, "np_runtime_ops 1.0 is 56 bytes");
#endif

_Static_assert(NP_MAGIC == 0x3150504eu, "magic is fixed forever");
_Static_assert(NP_STATE_ALIGN == 64, "state alignment only ever grows with a major");
_Static_assert(NP_IN == 1 && NP_OUT == 2 && NP_HUP == 4 && NP_ERR == 8,
               "readiness bits are fixed");

int main(void)
{
	/* The asserts above are the test; reaching here means they held. */
	printf("abi layout: np_plugin %zu bytes, np_host %zu bytes\n",
	       sizeof(struct np_plugin), sizeof(struct np_host));
	return 0;
}
