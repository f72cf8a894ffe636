/** `nvidia-smi topo -m` against the kernel's P2PDMA verdict: PIX/PXB where the kernel goes up is flagged. */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import {
  acsPort,
  bootAcs,
  buildTopology,
  crossCheckNvidia,
  downstreamPort,
  endpoint,
  p2pMatrix,
  parseDisableAcsRedir,
  parseNvidiaBusIds,
  parseNvidiaTopo,
  pciSwitch,
  rootPort,
} from '../../src/platform/index.ts';

/** Two GPUs under one switch and a third on another root port, firmware ACS as acsPort leaves it. */
function firmware() {
  const acs = acsPort({ redirect: false });
  const gpu = () => endpoint({ classCode: 0x030200, vendorId: 0x10de, deviceId: 0x2330 });
  return buildTopology({
    cpu: { vendor: 'intel', family: 6 },
    hostBridges: [
      {
        vendorId: 0x8086,
        deviceId: 0x09a2,
        children: [
          rootPort({ device: 1, acs }, [
            pciSwitch({}, [
              downstreamPort({ device: 0, acs }, [gpu()]),
              downstreamPort({ device: 1, acs }, [gpu()]),
            ]),
          ]),
          rootPort({ device: 2, acs }, [gpu()]),
        ],
      },
    ],
  });
}

const TOPO = `\x1b[4mGPU0\tGPU1\tGPU2\tNIC0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID\x1b[0m
GPU0\t X \tPIX\tSYS\tSYS\t0-15\t0\t\tN/A
GPU1\tPIX\t X \tSYS\tSYS\t0-15\t0\t\tN/A
GPU2\tSYS\tSYS\t X \tPHB\t0-15\t0\t\tN/A
NIC0\tSYS\tSYS\tPHB\t X

Legend:
  X    = Self
`;
const IDS = 'index, pci.bus_id\n0, 00000000:03:00.0\n1, 00000000:04:00.0\n2, 00000000:05:00.0\n';

describe('nvidia-smi topo -m cross-check', () => {
  test('parses the text nvidia-smi prints (the gpu-vm-6.18 capture: one GPU, no pairs)', () => {
    const one = parseNvidiaTopo(
      readFileSync('/work/shared/data/captures/gpu-vm-6.18/nvsmi-topo.txt', 'utf8'),
    );
    expect(one.columns).toEqual(['GPU0']);
    expect(one.classes.get('GPU0')?.get('GPU0')).toBe('X');
    const t = parseNvidiaTopo(TOPO);
    expect(t.columns).toEqual(['GPU0', 'GPU1', 'GPU2', 'NIC0']);
    expect(t.classes.get('GPU2')?.get('NIC0')).toBe('PHB');
    expect(parseNvidiaBusIds(IDS).get('GPU1')).toBe('0000:04:00.0');
    expect(() => parseNvidiaBusIds('index, pci.bus_id\n0, 03:00\n', 'ids.csv')).toThrow(
      /expected "INDEX, DDDDDDDD:BB:DD.F"/,
    );
  });

  test('PIX through a switch whose ports redirect (Linux with an IOMMU) is a disagreement; booted with disable_acs_redir it agrees', () => {
    const topo = parseNvidiaTopo(TOPO);
    const ids = parseNvidiaBusIds(IDS);
    const booted = crossCheckNvidia(p2pMatrix(bootAcs(firmware(), { iommu: true })), topo, ids);
    expect(booted.map((c) => [c.a, c.b, c.nvidia, c.kernel, c.agrees])).toEqual([
      ['GPU0', 'GPU1', 'PIX', 'through-host-bridge', false],
      ['GPU0', 'GPU2', 'SYS', 'through-host-bridge', true],
      ['GPU1', 'GPU2', 'SYS', 'through-host-bridge', true],
    ]);
    expect(booted[0]!.why).toBe(
      "NVIDIA sees a path below a PCIe switch, but the kernel sends it up through the root complex (see the pair's reason and remedy)",
    );
    const off = bootAcs(firmware(), {
      iommu: true,
      disableAcsRedir: parseDisableAcsRedir('0000:02:00.0;0000:02:01.0'),
    });
    expect(crossCheckNvidia(p2pMatrix(off), topo, ids)[0]!.agrees).toBe(true);
  });
});
