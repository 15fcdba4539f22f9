/*
 * asm.h - the text assembler and the disassembler (docs/vm.md, "Assembly").
 */
#ifndef RIFT_VM_ASM_H
#define RIFT_VM_ASM_H

#include <stddef.h>
#include <stdio.h>

#include "module.h"

/* Assemble len bytes of source text. 0 with m filled (verified), or
 * -EINVAL with "FILE:LINE: message" in err (m freed). */
int vm_assemble(const char *src, size_t len, const char *file, struct vm_module *m,
                char *err, size_t errlen);

/* Write m as assembly that vm_assemble turns back into the same module. 0
 * or -errno. */
int vm_disassemble(const struct vm_module *m, FILE *out);

#endif
