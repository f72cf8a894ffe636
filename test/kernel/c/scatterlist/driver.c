/*
 * physr differential driver for lib/scatterlist.c (sg_alloc_append_table_from_pages and
 * sg_alloc_table_from_pages_segment). Reads one case a line, answers one line:
 *
 *   in:  seg <offset> <size> <max_segment> <npages> <pfn>...
 *        app <ncalls> { <offset> <size> <max_segment> <left_pages> <npages> <pfn>... } x ncalls
 *   out: rc=<rc>[,<rc>...] nents=<n> orig=<n> [total=<n> prv=<slot>] slots=<n> | <slot>...
 *
 * A slot is numbered across the scatterlist arrays in the order they were allocated; it prints as
 * c<slot> (a chain to that slot) or <pfn>+<offset>:<length>, with a trailing e when it ends the list.
 */
#include <linux/scatterlist.h>
#include "scatterlist-extracted.c"

PHYSR_ALLOC_REGISTRY_STORAGE;

/* The layout src/core/sg-table.ts models: 32-byte entries, so a page-sized chunk holds 128. */
_Static_assert(sizeof(struct scatterlist) == 32, "scatterlist layout differs from the model");

#define MAX_PAGES 4096
static struct page *pages[MAX_PAGES];

static long slot_of(const struct scatterlist *sg)
{
	long base = 0;
	int i;

	for (i = 0; i < physr_nallocs; i++) {
		const struct scatterlist *arr = physr_allocs[i].ptr;
		long n = physr_allocs[i].bytes / sizeof(struct scatterlist);

		if (physr_allocs[i].live && sg >= arr && sg < arr + n)
			return base + (sg - arr);
		base += n;
	}
	return -1;
}

static void print_slots(void)
{
	long total = 0;
	int i;
	long k;

	for (i = 0; i < physr_nallocs; i++)
		total += physr_allocs[i].bytes / sizeof(struct scatterlist);
	printf(" slots=%ld |", total);
	for (i = 0; i < physr_nallocs; i++) {
		struct scatterlist *arr = physr_allocs[i].ptr;
		long n = physr_allocs[i].bytes / sizeof(struct scatterlist);

		for (k = 0; k < n; k++) {
			struct scatterlist *sg = &arr[k];

			if (sg_is_chain(sg)) {
				printf(" c%ld", slot_of(sg_chain_ptr(sg)));
				continue;
			}
			printf(" %lu+%u:%u%s", page_to_pfn(sg_page(sg)), sg->offset, sg->length,
			       sg_is_last(sg) ? "e" : "");
		}
	}
}

static int read_pages(unsigned int *npages)
{
	unsigned int i;
	unsigned long pfn;

	if (scanf("%u", npages) != 1 || *npages > MAX_PAGES)
		return -1;
	for (i = 0; i < *npages; i++) {
		if (scanf("%lu", &pfn) != 1)
			return -1;
		pages[i] = pfn_to_page(pfn);
	}
	return 0;
}

int main(void)
{
	char mode[8];

	while (scanf("%7s", mode) == 1) {
		unsigned int offset, max_segment, left, npages, ncalls, c;
		unsigned long size;
		int rc;

		if (!strcmp(mode, "seg")) {
			struct sg_table sgt = {};

			if (scanf("%u %lu %u", &offset, &size, &max_segment) != 3 || read_pages(&npages))
				return 2;
			rc = sg_alloc_table_from_pages_segment(&sgt, pages, npages, offset, size,
							      max_segment, 0);
			printf("rc=%d", rc);
			if (!rc) {
				printf(" nents=%u orig=%u", sgt.nents, sgt.orig_nents);
				print_slots();
			}
		} else if (!strcmp(mode, "app")) {
			struct sg_append_table app = {};

			if (scanf("%u", &ncalls) != 1)
				return 2;
			printf("rc=");
			for (c = 0; c < ncalls; c++) {
				if (scanf("%u %lu %u %u", &offset, &size, &max_segment, &left) != 4 ||
				    read_pages(&npages))
					return 2;
				rc = sg_alloc_append_table_from_pages(&app, pages, npages, offset, size,
								      max_segment, left, 0);
				printf("%s%d", c ? "," : "", rc);
			}
			printf(" nents=%u orig=%u total=%u prv=%ld", app.sgt.nents, app.sgt.orig_nents,
			       app.total_nents, app.prv ? slot_of(app.prv) : -1L);
			print_slots();
		} else {
			return 2;
		}
		printf("\n");
		physr_reset_allocs();
	}
	return 0;
}
