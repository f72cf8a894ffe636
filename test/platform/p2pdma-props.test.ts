import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import {
  ACS_ABSENT,
  type AcsState,
  acsKnown,
  acsUnknown,
  BUILTIN_TOPOLOGIES,
  buildTopology,
  calcP2pDecision,
  downstreamPort,
  endpoint,
  type FunctionSpec,
  pciSwitch,
  rootPort,
  upstreamChain,
} from '../../src/platform/index.ts';

const acsArb: fc.Arbitrary<AcsState> = fc.oneof(
  fc.constant(ACS_ABSENT),
  fc.constant(acsUnknown('capture')),
  fc.integer({ min: 0, max: 0x7f }).map((ctrl) => acsKnown(0x7f, ctrl)),
);

/** A port holding either an endpoint or a switch (up to `depth` levels) of 1..3 downstream ports. */
function portChildren(depth: number): fc.Arbitrary<readonly FunctionSpec[]> {
  const leaf: fc.Arbitrary<readonly FunctionSpec[]> = fc.constant([endpoint({})]);
  if (depth === 0) return leaf;
  const sw = fc
    .tuple(acsArb, fc.array(fc.tuple(acsArb, portChildren(depth - 1)), { minLength: 1, maxLength: 3 }))
    .map(([usp, dsps]) => [
      pciSwitch(
        { acs: usp },
        dsps.map(([acs, kids], i) => downstreamPort({ device: i, acs }, kids)),
      ),
    ]);
  return fc.oneof(leaf, sw);
}

const topologyArb = fc
  .record({
    ports: fc.array(fc.tuple(acsArb, portChildren(2)), { minLength: 1, maxLength: 3 }),
    host: fc.constantFrom(0x2020, 0x3c00, 0x9a14),
    cpu: fc.constantFrom('intel', 'amd', 'arm'),
  })
  .map(({ ports, host, cpu }) =>
    buildTopology({
      cpu: {
        vendor: cpu as 'intel' | 'amd' | 'arm',
        family: cpu === 'amd' ? 0x19 : cpu === 'intel' ? 6 : undefined,
      },
      hostBridges: [
        {
          vendorId: 0x8086,
          deviceId: host,
          children: ports.map(([acs, kids], i) => rootPort({ device: i + 1, acs }, kids)),
        },
      ],
    }),
  );

describe('P2PDMA properties', () => {
  test.prop([topologyArb, fc.nat(), fc.nat()])(
    'distance and map type are symmetric; distance matches a set-based reference; no bus address across a redirect',
    (t, i, j) => {
      const bdfs = [...t.functions.keys()];
      const p = bdfs[i % bdfs.length]!;
      const c = bdfs[j % bdfs.length]!;
      const d = calcP2pDecision(t, p, c);
      const r = calcP2pDecision(t, c, p);
      expect(r.distance).toBe(d.distance);
      expect(r.mapType).toBe(d.mapType);
      // Reference: hops to the lowest common ancestor, or both chain lengths without one.
      const up = upstreamChain(t, p).map((f) => f.bdf);
      const down = upstreamChain(t, c).map((f) => f.bdf);
      const k = up.findIndex((x) => down.includes(x));
      expect(d.distance).toBe(k >= 0 ? k + down.indexOf(up[k]!) : up.length + down.length);
      expect(d.commonUpstream).toBe(k >= 0 ? up[k] : undefined);
      if (d.path.some((h) => h.acsRedirect === true) || k < 0) expect(d.mapType).not.toBe('bus-address');
      if (d.mapType === 'bus-address') expect(d.acsRedirects).toEqual([]);
    },
  );

  test.prop([fc.constantFrom(...BUILTIN_TOPOLOGIES), fc.nat(), fc.nat()])(
    'built-in topologies: every pair decides without throwing, and self-pairs without redirect are distance 0',
    (b, i, j) => {
      const t = b.build();
      const bdfs = [...t.functions.keys()];
      const p = bdfs[i % bdfs.length]!;
      const d = calcP2pDecision(t, p, bdfs[j % bdfs.length]!);
      expect(d.distance).toBeGreaterThanOrEqual(0);
      expect(calcP2pDecision(t, p, p).distance).toBe(0);
    },
  );
});
