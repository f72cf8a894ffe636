/**
 * What a pin holds under each design: Linux 7.1's page array (pin_user_pages) or folio array
 * (memfd_pin_folios, mm/gup.c), and physr's range list.
 */
import { describe, expect, it } from 'vitest';
import { pinAsFolios, pinAsPages, pinAsPhyrs, pinUserPages, unpinUserPages } from '../../src/mm/index.ts';
import { GiB, MiB, machine } from './helpers.ts';

describe('pin metadata: pages, folios, ranges', () => {
  it('1 GiB of 1G hugetlb: 262,144 page pointers, one folio pointer plus offset, one range', () => {
    const { mm, system } = machine({ ramGiB: 3 });
    system.reserveHugetlb(18, 1);
    const va = mm.mmap({ kind: 'hugetlb', hugeOrder: 18, length: GiB });
    const pinned = pinUserPages(mm, va, GiB, { write: true, longterm: true });
    expect(pinAsPages(pinned)).toEqual({ form: 'pages', entries: 262_144, bytes: 2_097_152 });
    expect(pinAsFolios(pinned)).toEqual({ form: 'folios', entries: 1, bytes: 16 });
    expect(pinAsPhyrs(pinned)).toEqual({ form: 'phyrs', entries: 1, bytes: 16 });
    unpinUserPages(pinned);
  });

  it('2 MiB pinned from inside a 2M hugetlb folio: two folio pointers for the two folios it touches', () => {
    const { mm, system } = machine({ ramGiB: 1 });
    system.reserveHugetlb(9, 2);
    const va = mm.mmap({ kind: 'hugetlb', hugeOrder: 9, length: 4n * MiB });
    // 0x1000 into the first 2M folio, across into the second: 2 folios, 512 pages.
    const pinned = pinUserPages(mm, va + 0x1000n, 2n * MiB, { write: true });
    expect(pinAsPages(pinned).entries).toBe(512);
    expect(pinAsFolios(pinned)).toEqual({ form: 'folios', entries: 2, bytes: 24 });
    expect(pinAsPhyrs(pinned).bytes).toBe(16 * pinned.phyrs.count);
    unpinUserPages(pinned);
  });
});
