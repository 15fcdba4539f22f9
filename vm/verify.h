/*
 * verify.h - the loader's verifier: after it accepted a module, no
 * instruction can name a register, constant, function, upvalue or jump
 * target outside what exists, so crafted bytecode cannot read or write
 * outside its registers.
 */
#ifndef RIFT_VM_VERIFY_H
#define RIFT_VM_VERIFY_H

#include <stddef.h>

#include "module.h"

/* 0, or -EINVAL with a message in err naming the function and pc:
 * "function 'main', pc 12 (jmp.lt): jump target 40 is outside 0..31". */
int vm_verify(const struct vm_module *m, char *err, size_t errlen);

#endif
