/*
 * physr userspace shim: every allocation the kernel code makes goes through here, so a driver can
 * list the arrays in allocation order (the scatterlist chunks) and free what a case left behind.
 */
#ifndef PHYSR_ALLOC_REGISTRY_H
#define PHYSR_ALLOC_REGISTRY_H

#include <stdlib.h>
#include <string.h>

#define PHYSR_MAX_ALLOCS 65536

struct physr_alloc {
	void *ptr;
	unsigned long bytes;
	int live;
};

extern struct physr_alloc physr_allocs[PHYSR_MAX_ALLOCS];
extern int physr_nallocs;

static inline void *physr_alloc(unsigned long bytes)
{
	void *p = calloc(1, bytes ? bytes : 1);

	if (!p || physr_nallocs == PHYSR_MAX_ALLOCS)
		abort();
	physr_allocs[physr_nallocs].ptr = p;
	physr_allocs[physr_nallocs].bytes = bytes;
	physr_allocs[physr_nallocs].live = 1;
	physr_nallocs++;
	return p;
}

static inline void physr_free(const void *p)
{
	int i;

	if (!p)
		return;
	for (i = physr_nallocs - 1; i >= 0; i--) {
		if (physr_allocs[i].ptr == p && physr_allocs[i].live) {
			physr_allocs[i].live = 0;
			free(physr_allocs[i].ptr);
			return;
		}
	}
	abort(); /* freeing something never allocated: a shim or driver bug */
}

/* Frees whatever a case left allocated and forgets every allocation. */
static inline void physr_reset_allocs(void)
{
	int i;

	for (i = 0; i < physr_nallocs; i++)
		if (physr_allocs[i].live)
			free(physr_allocs[i].ptr);
	physr_nallocs = 0;
}

#define PHYSR_ALLOC_REGISTRY_STORAGE \
	struct physr_alloc physr_allocs[PHYSR_MAX_ALLOCS]; \
	int physr_nallocs

#endif
