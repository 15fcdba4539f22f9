/*
 * fuzz_module.c - libFuzzer target for the bytecode module loader: the
 * msgpack decoder (vm/codec.c) and the verifier (vm/verify.c) on
 * arbitrary bytes, the path every imported module takes.
 *
 * Besides "no crash, no leak, no undefined behaviour", it checks what the
 * loader promises: a failure leaves the module zeroed and says why; a
 * decoded module is the canonical encoding of itself (re-encoding gives
 * the input byte for byte) and has sane counts; a verified module has
 * every instruction's opcode and variant in isa.h and ends each function
 * with an instruction that cannot fall through.
 *
 * Build and run (from the repository root, with clang):
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -I vm vm/isa.c vm/module.c vm/codec.c vm/verify.c tests/fuzz/fuzz_module.c \
 *     -lmsgpackc -lsodium -o fuzz-module
 *   cp -r tests/fuzz/corpus/module /tmp/corpus-module
 *   ./fuzz-module -max_total_time=60 -max_len=65536 /tmp/corpus-module
 * The seeds in corpus/module are made by gen_module_corpus.c (see there).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "isa.h"
#include "module.h"
#include "verify.h"

#include "fuzz_common.h"

static int terminal(uint64_t w)
{
	unsigned op = VM_OP(w), e = VM_E(w);
	return (op == VM_JMP && e == 0) || op == VM_RET || (op == VM_CALL && (e == 1 || e == 3)) ||
	       (op == VM_TRAP && e <= 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vm_module m;
	char err[512];

	err[0] = '\0';
	int r = vm_decode(data, size, &m, err, sizeof err);
	if (r < 0) {
		if (!err[0] || m.funcs || m.consts || m.name || m.source || m.nfuncs || m.nconsts)
			abort();
		return 0;
	}
	if (m.nfuncs < 1 || m.nfuncs > VM_MAX_FUNCS || m.entry >= m.nfuncs || !m.name ||
	    !m.name[0] || !m.source || (m.nconsts && !m.consts))
		abort();
	for (uint32_t i = 0; i < m.nconsts; i++)
		if (m.consts[i].kind == VM_K_BYTES && m.consts[i].u.bytes[m.consts[i].len] != 0)
			abort();
	for (uint32_t i = 0; i < m.nfuncs; i++) {
		const struct vm_func *f = &m.funcs[i];
		if (!f->name || !f->name[0] || f->nregs < 1 || f->nregs > VM_MAX_REGS ||
		    f->nparams > f->nregs || f->ncode < 1 || !f->code)
			abort();
	}

	uint8_t *enc;
	size_t elen;
	if (vm_encode(&m, &enc, &elen) < 0 || elen != size || memcmp(enc, data, size) != 0)
		abort();
	free(enc);
	uint8_t h[32];
	if (vm_module_hash(&m, h) < 0)
		abort();

	err[0] = '\0';
	r = vm_verify(&m, err, sizeof err);
	if (r < 0 && !err[0])
		abort();
	if (r == 0) {
		for (uint32_t i = 0; i < m.nfuncs; i++) {
			const struct vm_func *f = &m.funcs[i];
			for (uint32_t pc = 0; pc < f->ncode; pc++) {
				uint64_t w = f->code[pc];
				if (VM_OP(w) >= VM_NOPS || VM_E(w) >= vm_variant_count[VM_OP(w)])
					abort();
			}
			if (!terminal(f->code[f->ncode - 1]))
				abort();
		}
	}
	vm_module_free(&m);
	return 0;
}
