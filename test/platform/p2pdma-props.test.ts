import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import {
  BUILTIN_TOPOLOGIES,
  buildTopology,
  calcP2pDecision,
  endpoint,
  type FunctionSpec,
  rootPort,
  upstreamChain,
} from '../../src/platform/index.ts';
import { acsArb, portChildren } from './pci-arbitraries.ts';

const endpointLeaf: fc.Arbitrary<readonly FunctionSpec[]> = fc.constant([endpoint({})]);

const topologyArb = fc
  .record({
    ports: fc.array(fc.tuple(acsArb, portChildren(2, endpointLeaf)), { minLength: 1, maxLength: 3 }),
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
