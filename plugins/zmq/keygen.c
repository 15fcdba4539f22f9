/*
 * rift-keygen - make a CURVE key pair for the zmq transport.
 *
 *   rift-keygen NAME     writes NAME.pub (public) and NAME.key (secret,
 *                        mode 0600); refuses to overwrite either
 *
 * docs/zmq.md, "Keys": the binding end names its secret key
 * (curve_secret=NAME.key), the connecting end the binder's public key
 * (curve_server=NAME.pub).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "keys.h"

int main(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: rift-keygen NAME   (writes NAME.pub and NAME.key)\n");
		return 2;
	}
	char pub[RK_Z85_LEN + 1], sec[RK_Z85_LEN + 1];
	if (zmq_curve_keypair(pub, sec) != 0) {
		fprintf(stderr, "rift-keygen: zmq_curve_keypair: %s (libzmq without CURVE?)\n",
		        zmq_strerror(errno));
		return 1;
	}
	char pp[4096], sp[4096];
	if (snprintf(pp, sizeof pp, "%s.pub", argv[1]) >= (int)sizeof pp ||
	    snprintf(sp, sizeof sp, "%s.key", argv[1]) >= (int)sizeof sp) {
		fprintf(stderr, "rift-keygen: name too long\n");
		return 2;
	}
	int rc = rk_write(sp, "rift CURVE secret key: keep it private", sec, 0600);
	if (rc == 0) {
		rc = rk_write(pp, "rift CURVE public key", pub, 0644);
		if (rc < 0)
			unlink(sp);
	}
	if (rc < 0) {
		fprintf(stderr, "rift-keygen: %s: %s\n", argv[1], strerror(-rc));
		return 1;
	}
	printf("%s\n%s\n", pp, sp);
	return 0;
}
