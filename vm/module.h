/*
 * module.h - a bytecode module in memory, and its msgpack wire form.
 *
 * A module is what the assembler makes, the codec (codec.h) writes and
 * reads, the verifier (verify.h) checks and the interpreter runs. Its
 * wire form is one msgpack map with these keys, in this order (the
 * canonical encoding: the module's address is BLAKE2b-256 of it):
 *
 *   "rift"    1                          format version (int)
 *   "name"    str                        module name
 *   "source"  str                        source file, for messages ("" none)
 *   "entry"   int                        index of the function a run calls
 *   "consts"  [ int | float | bin ... ]  the constants K[]
 *   "funcs"   [ func ... ]               the functions F[]
 *
 *   func = map, keys in this order:
 *   "name"    str
 *   "params"  int                        parameters: R[0..params-1]
 *   "regs"    int                        registers of a frame, >= params
 *   "upvals"  [ int ... ]                upval_src: see VM_CLOSURE
 *   "code"    bin                        8 bytes per instruction, LE
 *   "lines"   [ int ... ]                source line per instruction
 *                                        (0 unknown); empty or ncode long
 *
 * Strings are UTF-8 without NUL; bins are bytes. Nothing else is allowed:
 * unknown keys, other types, or a different order are errors of the codec.
 */
#ifndef RIFT_VM_MODULE_H
#define RIFT_VM_MODULE_H

#include <stddef.h>
#include <stdint.h>

#define VM_FORMAT 1

enum vm_const_kind { VM_K_INT = 0, VM_K_FLOAT = 1, VM_K_BYTES = 2 };

struct vm_const {
	uint8_t kind;           /* enum vm_const_kind */
	uint32_t len;           /* bytes: length */
	union {
		int64_t i;
		double f;
		uint8_t *bytes; /* bytes: malloc'd, len bytes (+1 NUL, not counted) */
	} u;
};

struct vm_func {
	char *name;             /* malloc'd, NUL-terminated */
	uint32_t nparams;
	uint32_t nregs;         /* 1..VM_MAX_REGS, >= nparams */
	uint32_t nupvals;
	uint32_t *upval_src;    /* nupvals registers of the frame that runs
	                           CLOSURE of this function (checked there) */
	uint32_t ncode;         /* 1..VM_MAX_CODE */
	uint64_t *code;         /* ncode words */
	uint32_t *lines;        /* ncode entries, or NULL */
};

struct vm_module {
	char *name;
	char *source;
	uint32_t entry;
	uint32_t nconsts;
	struct vm_const *consts;
	uint32_t nfuncs;
	struct vm_func *funcs;
};

/* Free everything a module holds (codec- or assembler-made), and zero it.
 * Safe on a zeroed or partly built module. */
void vm_module_free(struct vm_module *m);

/* The function named name, or -1. */
int vm_module_find(const struct vm_module *m, const char *name);

#endif
