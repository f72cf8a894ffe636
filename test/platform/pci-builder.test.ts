import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { isPhysrError } from '../../src/core/index.ts';
import {
  barContaining,
  buildTopology,
  downstreamPort,
  endpoint,
  findFunction,
  hostBridgeOf,
  parseBdf,
  pciSwitch,
  rootPort,
  type TopologySpec,
  upstreamChain,
} from '../../src/platform/index.ts';
import { A, B, DSP0, DSP1, GiB, MiB, RP1, switchTopology, USP } from './pci-fixtures.ts';

function einval(spec: TopologySpec, pattern: RegExp): void {
  try {
    buildTopology(spec);
  } catch (e) {
    expect(isPhysrError(e, 'EINVAL')).toBe(true);
    expect((e as Error).message).toMatch(pattern);
    return;
  }
  throw new Error('expected EINVAL');
}

describe('buildTopology', () => {
  it('numbers buses depth first and links parents', () => {
    const t = switchTopology();
    expect([...t.functions.keys()]).toEqual([
      '0000:00:00.0',
      RP1,
      '0000:00:02.0',
      USP,
      DSP0,
      DSP1,
      A,
      B,
      '0000:05:00.0',
    ]);
    const rp = findFunction(t, RP1)!;
    expect([rp.secondaryBus, rp.subordinateBus]).toEqual([1, 4]);
    expect([findFunction(t, USP)!.secondaryBus, findFunction(t, USP)!.subordinateBus]).toEqual([2, 4]);
    expect(findFunction(t, DSP1)!.secondaryBus).toBe(4);
    expect(findFunction(t, '0000:00:02.0')!.secondaryBus).toBe(5);
    expect(findFunction(t, A)!.parent).toBe(DSP0);
    expect(findFunction(t, RP1)!.parent).toBeUndefined();
    expect(findFunction(t, '0000:00:00.0')!.kind).toBe('host-bridge-device');
  });

  it('upstreamChain stops at the root-bus device', () => {
    const t = switchTopology();
    expect(upstreamChain(t, B).map((f) => f.bdf)).toEqual([B, DSP1, USP, RP1]);
    expect(upstreamChain(t, RP1).map((f) => f.bdf)).toEqual([RP1]);
    expect(() => upstreamChain(t, '0000:09:00.0')).toThrow(/ENODEV/);
  });

  it('assigns a 32 GiB 64-bit prefetchable BAR from the 64-bit window, naturally aligned', () => {
    const t = buildTopology({
      hostBridges: [
        {
          vendorId: 0x8086,
          deviceId: 0x2020,
          busOffset: 0x1000n,
          mmio64: { base: 0x100_0000_0000n, size: 0x100_0000_0000n },
          children: [
            rootPort({ device: 1 }, [
              endpoint({
                name: 'GPU',
                bars: [
                  { index: 0, size: 16n * MiB },
                  { index: 1, size: 32n * GiB, prefetchable: true },
                  { index: 3, size: 32n * MiB, prefetchable: true },
                ],
              }),
            ]),
          ],
        },
      ],
    });
    const gpu = findFunction(t, '0000:01:00.0')!;
    const big = gpu.bars.find((b) => b.index === 1)!;
    expect(big.is64 && big.prefetchable).toBe(true);
    expect(big.cpuAddress % (32n * GiB)).toBe(0n);
    expect(big.cpuAddress >= 0x100_0000_0000n).toBe(true);
    expect(gpu.bars.find((b) => b.index === 0)!.cpuAddress < 1n << 32n).toBe(true);
    const hit = barContaining(t, big.cpuAddress + 32n * GiB - 1n)!;
    expect(hit.bar.index).toBe(1);
    expect(hit.offset).toBe(32n * GiB - 1n);
    expect(barContaining(t, big.cpuAddress + 32n * GiB)?.bar.index).not.toBe(1);
    expect(hostBridgeOf(t, gpu.bdf).busOffset).toBe(0x1000n);
  });

  it('marks functions sharing a slot multifunction', () => {
    const t = buildTopology({
      hostBridges: [
        {
          children: [
            rootPort({ device: 1 }, [endpoint({ function: 0 }), endpoint({ function: 1 })]),
            rootPort({ device: 2 }, [endpoint({})]),
          ],
        },
      ],
    });
    expect(findFunction(t, '0000:01:00.1')!.multifunction).toBe(true);
    expect(findFunction(t, '0000:02:00.0')!.multifunction).toBe(false);
  });

  it('refuses invalid declarations with EINVAL', () => {
    einval({ hostBridges: [] }, /at least one host bridge/);
    einval(
      { hostBridges: [{ children: [rootPort({ device: 1 }, [endpoint({ device: 3 })])] }] },
      /only device 0/,
    );
    einval({ hostBridges: [{ children: [downstreamPort({})] }] }, /cannot sit there/);
    einval(
      { hostBridges: [{ children: [rootPort({ device: 1 }, [pciSwitch({}, [endpoint({})])])] }] },
      /cannot sit/,
    );
    einval(
      { hostBridges: [{ children: [endpoint({ device: 4 }), endpoint({ device: 4 })] }] },
      /declared twice/,
    );
    einval({ hostBridges: [{ children: [endpoint({ device: 4, function: 2 })] }] }, /without function 0/);
    einval({ hostBridges: [{ children: [endpoint({ bars: [{ size: 3000n }] })] }] }, /power of two/);
    einval(
      { hostBridges: [{ children: [endpoint({ bars: [{ size: 8n * GiB, is64: false }] })] }] },
      /32-bit BAR/,
    );
    einval(
      { hostBridges: [{ children: [endpoint({ bars: [{ index: 5, size: MiB, is64: true }] })] }] },
      /slots/,
    );
    einval(
      { hostBridges: [{ children: [endpoint({ bars: [{ size: MiB }, { index: 0, size: MiB }] })] }] },
      /twice/,
    );
    einval(
      { hostBridges: [{ busStart: 0, busEnd: 1, children: [rootPort({ device: 1 }, [pciSwitch({}, [])])] }] },
      /no bus number left/,
    );
    einval({ hostBridges: [{ busStart: 0, busEnd: 0x7f }, { busStart: 0x40 }] }, /overlapping buses/);
    einval(
      {
        hostBridges: [
          {
            mmio64: { base: 1n << 40n, size: GiB },
            children: [endpoint({ bars: [{ size: 2n * GiB, prefetchable: true }] })],
          },
        ],
      },
      /no room/,
    );
    einval(
      { hostBridges: [{ children: [endpoint({ bars: [{ size: MiB, cpuAddress: 0x8000_1000n }] })] }] },
      /not aligned/,
    );
  });

  it('parses and canonicalises BDFs', () => {
    expect(parseBdf('3:0.1')).toBe('0000:03:00.1');
    expect(parseBdf('0001:AF:1F.7')).toBe('0001:af:1f.7');
    expect(() => parseBdf('00:20.0')).toThrow(/EINVAL/);
    expect(() => parseBdf('nonsense')).toThrow(/EINVAL/);
  });
});

describe('BAR assignment (property)', () => {
  const barSpec = fc.record({
    log2: fc.integer({ min: 4, max: 36 }),
    prefetchable: fc.boolean(),
  });
  test.prop([fc.array(fc.array(barSpec, { minLength: 0, maxLength: 3 }), { minLength: 1, maxLength: 12 })])(
    'BARs are aligned, inside their windows, disjoint, and found by barContaining',
    (devices) => {
      const spec: TopologySpec = {
        hostBridges: [
          {
            children: devices.map((bars, i) =>
              rootPort({ device: i + 1 }, [
                endpoint({
                  bars: bars
                    .filter((b) => b.prefetchable || b.log2 < 24)
                    .map((b) => ({ size: 1n << BigInt(b.log2), prefetchable: b.prefetchable })),
                }),
              ]),
            ),
          },
        ],
      };
      const t = buildTopology(spec);
      const all = [...t.functions.values()].flatMap((f) => f.bars.map((bar) => ({ f, bar })));
      for (const { f, bar } of all) {
        expect(bar.cpuAddress % bar.size).toBe(0n);
        if (!bar.is64) expect(bar.cpuAddress + bar.size <= 1n << 32n).toBe(true);
        expect(barContaining(t, bar.cpuAddress)?.function.bdf).toBe(f.bdf);
        expect(barContaining(t, bar.cpuAddress + bar.size - 1n)?.bar).toBe(bar);
      }
      const sorted = all.map((x) => x.bar).sort((a, b) => (a.cpuAddress < b.cpuAddress ? -1 : 1));
      for (let i = 1; i < sorted.length; i++)
        expect(sorted[i - 1]!.cpuAddress + sorted[i - 1]!.size <= sorted[i]!.cpuAddress).toBe(true);
    },
  );
});
