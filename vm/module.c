/*
 * module.c - freeing and searching a bytecode module (module.h).
 */
#include <stdlib.h>
#include <string.h>

#include "module.h"

void vm_module_free(struct vm_module *m)
{
	if (!m)
		return;
	for (uint32_t i = 0; m->consts && i < m->nconsts; i++)
		if (m->consts[i].kind == VM_K_BYTES)
			free(m->consts[i].u.bytes);
	for (uint32_t i = 0; m->funcs && i < m->nfuncs; i++) {
		struct vm_func *f = &m->funcs[i];
		free(f->name);
		free(f->upval_src);
		free(f->code);
		free(f->lines);
	}
	free(m->consts);
	free(m->funcs);
	free(m->name);
	free(m->source);
	memset(m, 0, sizeof *m);
}

int vm_module_find(const struct vm_module *m, const char *name)
{
	for (uint32_t i = 0; i < m->nfuncs; i++)
		if (m->funcs[i].name && strcmp(m->funcs[i].name, name) == 0)
			return (int)i;
	return -1;
}
