import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { DmaCapableDevice } from '../../src/devices/index.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/iommu/index.ts';
import { twoSocketServer } from '../../src/platform/index.ts';
import { makeFabric } from './fabric-fixture.ts';

const NIC = '0000:04:00.0';
const IOVA_BASE = 0x100_0000n;
const PAGES = 12;

/** Each IOVA page: a distinct RAM frame, or unmapped (null). */
const pageMap = fc
  .uniqueArray(fc.integer({ min: 0x200, max: 0x2000 }), { minLength: PAGES, maxLength: PAGES })
  .chain((frames) =>
    fc
      .array(fc.boolean(), { minLength: PAGES, maxLength: PAGES })
      .map((present) => frames.map((f, i) => (present[i] || i === 0 ? BigInt(f) << 12n : null))),
  );

describe('routing through the IOMMU against a reference page map', () => {
  test.prop([pageMap, fc.integer({ min: 0, max: PAGES * 4096 - 1 }), fc.integer({ min: 1, max: 5 * 4096 })], {
    numRuns: 80,
  })('every byte lands at map[page] + offset, up to the first unmapped page', (frames, start, len) => {
    const length = Math.min(len, PAGES * 4096 - start);
    const f = makeFabric(twoSocketServer());
    const domain = f.domains.get(NIC)!;
    frames.forEach((phys, i) => {
      if (phys !== null) domain.map(IOVA_BASE + BigInt(i) * 4096n, phys, 4096n, IOMMU_READ | IOMMU_WRITE);
    });
    const data = Uint8Array.from({ length }, (_, i) => (i * 29 + 11) & 0xff);
    const record = new DmaCapableDevice(f, NIC).tryDmaWrite(IOVA_BASE + BigInt(start), data);

    // Reference: bytes up to the first unmapped page.
    let expectedMoved = 0;
    while (expectedMoved < length && frames[Math.floor((start + expectedMoved) / 4096)] !== null)
      expectedMoved++;
    expect(record.bytesMoved).toBe(expectedMoved);
    expect(record.fault === undefined).toBe(expectedMoved === length);

    // Segments tile the access in order.
    let at = IOVA_BASE + BigInt(start);
    for (const s of record.segments) {
      expect(s.dmaAddress).toBe(at);
      at += BigInt(s.length);
    }
    expect(at).toBe(IOVA_BASE + BigInt(start + length));

    for (let i = 0; i < expectedMoved; i += 97) {
      const pos = start + i;
      const phys = frames[Math.floor(pos / 4096)]! + BigInt(pos % 4096);
      expect(f.bytes.read(phys, 1)[0]).toBe(data[i]);
    }
    if (expectedMoved > 0) {
      const lastPos = start + expectedMoved - 1;
      const phys = frames[Math.floor(lastPos / 4096)]! + BigInt(lastPos % 4096);
      expect(f.bytes.read(phys, 1)[0]).toBe(data[expectedMoved - 1]);
    }
  });
});
