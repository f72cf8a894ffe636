/** Small topologies built in code for the PCI, P2PDMA and IOMMU-group tests. */
import {
  ACS_ABSENT,
  type AcsState,
  buildTopology,
  type CpuInfo,
  downstreamPort,
  endpoint,
  type FunctionSpec,
  type PciTopology,
  pciSwitch,
  rootPort,
} from '../../src/platform/index.ts';

export const INTEL: CpuInfo = { vendor: 'intel', family: 6 };
export const MiB = 1n << 20n;
export const GiB = 1n << 30n;

export function ep(name: string, extra: Partial<FunctionSpec> = {}): FunctionSpec {
  return endpoint({ name, bars: [{ index: 0, size: MiB, prefetchable: true }], ...extra });
}

export interface SwitchOptions {
  readonly hostVendor?: number;
  readonly hostDevice?: number;
  readonly cpu?: CpuInfo;
  readonly rootAcs?: AcsState;
  readonly upstreamAcs?: AcsState;
  readonly dspAcs?: readonly AcsState[];
}

/**
 * 00:00.0 host bridge; 00:01.0 root port -> 01:00.0 switch upstream -> 02:0N.0 downstream ports,
 * each with one endpoint (03:00.0 = A, 04:00.0 = B); 00:02.0 root port -> 05:00.0 = C.
 */
export function switchTopology(o: SwitchOptions = {}): PciTopology {
  const dsp = o.dspAcs ?? [ACS_ABSENT, ACS_ABSENT];
  return buildTopology({
    cpu: o.cpu ?? INTEL,
    hostBridges: [
      {
        vendorId: o.hostVendor ?? 0x8086,
        deviceId: o.hostDevice ?? 0x2020,
        children: [
          rootPort({ device: 1, acs: o.rootAcs ?? ACS_ABSENT }, [
            pciSwitch(
              { acs: o.upstreamAcs ?? ACS_ABSENT },
              dsp.map((acs, i) => downstreamPort({ device: i, acs }, [ep(`dev${i}`)])),
            ),
          ]),
          rootPort({ device: 2, acs: o.rootAcs ?? ACS_ABSENT }, [ep('C')]),
        ],
      },
    ],
  });
}

export const A = '0000:03:00.0';
export const B = '0000:04:00.0';
export const C = '0000:05:00.0';
export const DSP0 = '0000:02:00.0';
export const DSP1 = '0000:02:01.0';
export const USP = '0000:01:00.0';
export const RP1 = '0000:00:01.0';
