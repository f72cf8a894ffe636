/**
 * `physr p2p --matrix` on a large synthetic machine: 8 root complexes (PCI segments), each with a
 * root port holding a PCIe switch of 8 downstream ports, each of those a second switch of 7 ports
 * with one GPU, NIC, NVMe or accelerator each: 1,048 functions, 448 DMA endpoints, 100,128 pairs.
 * Booted as Linux boots (ACS redirect on), so every pair goes through a host bridge. Measures the
 * decision of every cell (map type, distance, whether it depends on a missing fact); the reasons and
 * remedies of a pair are built when a report prints it.
 */
import {
  acsPort,
  bootAcs,
  buildTopology,
  downstreamPort,
  endpoint,
  type FunctionSpec,
  type PciTopology,
  p2pMatrix,
  pciSwitch,
  rootPort,
} from '../src/platform/index.ts';
import { type Benchmark, measure, timeSeconds } from './harness.ts';

const CLASSES = [0x030200, 0x020700, 0x010802, 0x120000];

function fanout(ports: number, child: (p: number) => FunctionSpec): FunctionSpec {
  const acs = acsPort({ redirect: false });
  return pciSwitch(
    { vendorId: 0x1000, deviceId: 0xc010 },
    Array.from({ length: ports }, (_, p) =>
      downstreamPort({ device: p, acs, vendorId: 0x1000, deviceId: 0xc010 }, [child(p)]),
    ),
  );
}

/** `segments` root complexes, each a root port -> switch of `outer` ports -> switches of `inner` ports. */
export function syntheticServer(segments: number, outer: number, inner: number): PciTopology {
  const acs = acsPort({ redirect: false });
  return bootAcs(
    buildTopology({
      cpu: { vendor: 'intel', family: 6 },
      hostBridges: Array.from({ length: segments }, (_, s) => ({
        segment: s,
        vendorId: 0x8086,
        deviceId: 0x09a2,
        children: [
          rootPort({ device: 1, acs, vendorId: 0x8086, deviceId: 0x347a }, [
            fanout(outer, (o) =>
              fanout(inner, (i) => endpoint({ classCode: CLASSES[(s + o + i) % CLASSES.length]! })),
            ),
          ]),
        ],
      })),
    }),
    { iommu: true },
  );
}

export const p2pMatrixBenchmark: Benchmark = {
  name: 'p2p-matrix',
  description:
    'p2p --matrix over a 1,048-function topology (8 x switch of 8 x switch of 7): every pair decided',
  async run(ctx) {
    const topology = syntheticServer(ctx.size(8, 2), ctx.size(8, 2), ctx.size(7, 2));
    const functions = topology.functions.size;
    let pairs = 0;
    const decide = await measure(
      ctx,
      `matrix of ${functions} functions`,
      's',
      () =>
        timeSeconds(() => {
          pairs = p2pMatrix(topology).codes.length;
        }),
      { target: { op: '<=', value: 0.25, label: 'well under a second' } },
    );
    return [{ ...decide, note: `${pairs} pairs` }];
  },
};
