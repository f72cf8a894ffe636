/**
 * Ready-made machines for tests, scenarios and the CLI. IDs are real ones so the P2PDMA allowlist and
 * CPU rule apply as they would on such hardware; addresses come from the builder's windows.
 */
import { type AcsDeviceMatch, bootAcs } from './acs-boot.ts';
import { acsPort } from './pci-acs.ts';
import {
  buildTopology,
  downstreamPort,
  endpoint,
  type FunctionSpec,
  pciSwitch,
  rcIntegratedEndpoint,
  rootPort,
} from './pci-builder.ts';
import type { PciTopology } from './pci-types.ts';

const GiB = 1n << 30n;
const MiB = 1n << 20n;
const KiB = 1n << 10n;

const CLASS_NVME = 0x010802;
const CLASS_INFINIBAND = 0x020700;
const CLASS_3D = 0x030200;
const CLASS_VGA = 0x030000;
const CLASS_WIFI = 0x028000;
const CLASS_BRIDGE = 0x060400;

function nvme(name: string, vendorId = 0x144d, deviceId = 0xa80a): FunctionSpec {
  return endpoint({
    name,
    vendorId,
    deviceId,
    classCode: CLASS_NVME,
    bars: [{ index: 0, size: 16n * KiB, is64: true }],
  });
}

function mlx5(name: string): FunctionSpec {
  return endpoint({
    name,
    vendorId: 0x15b3,
    deviceId: 0x101d,
    classCode: CLASS_INFINIBAND,
    bars: [{ index: 0, size: 32n * MiB, prefetchable: true }],
  });
}

export interface TwoSocketOptions {
  /**
   * The firmware's ACS control on the switch's downstream ports and the root ports: SV+UF, plus
   * Request/Completion Redirect when set. (The built-in platform boots this as Linux does, see
   * BUILTIN_TOPOLOGIES; this function alone is the hardware as firmware left it.)
   */
  readonly acsRedirect?: boolean;
}

/**
 * Two Intel Ice Lake Xeon sockets (host bridge 8086:09a2, on the P2PDMA allowlist), VT-d IOMMU.
 * Socket 0: root port 00:01.0 holds a Broadcom PCIe switch whose three downstream ports carry a GPU
 * (32 GiB 64-bit prefetchable BAR), a ConnectX-6 Dx RDMA NIC and nothing; root port 00:03.0 an NVMe.
 * Socket 1 (buses 80-ff): root port 80:01.0 holds a second ConnectX NIC.
 */
export function twoSocketServer(options: TwoSocketOptions = {}): PciTopology {
  const redirect = options.acsRedirect ?? false;
  const port = { acs: acsPort({ redirect }), classCode: CLASS_BRIDGE };
  return buildTopology({
    cpu: { vendor: 'intel', family: 6 },
    hostBridges: [
      {
        busStart: 0x00,
        busEnd: 0x7f,
        vendorId: 0x8086,
        deviceId: 0x09a2,
        numaNode: 0,
        children: [
          rootPort({ ...port, device: 1, name: 'Root port', vendorId: 0x8086, deviceId: 0x347a }, [
            pciSwitch(
              { name: 'PEX switch upstream', vendorId: 0x1000, deviceId: 0xc010, classCode: CLASS_BRIDGE },
              [
                downstreamPort(
                  { ...port, device: 0, name: 'PEX switch downstream', vendorId: 0x1000, deviceId: 0xc010 },
                  [
                    endpoint({
                      name: 'GPU',
                      vendorId: 0x10de,
                      deviceId: 0x2330,
                      classCode: CLASS_3D,
                      bars: [
                        { index: 0, size: 16n * MiB, is64: false },
                        { index: 1, size: 32n * GiB, prefetchable: true },
                        { index: 3, size: 32n * MiB, prefetchable: true },
                      ],
                    }),
                  ],
                ),
                downstreamPort(
                  { ...port, device: 1, name: 'PEX switch downstream', vendorId: 0x1000, deviceId: 0xc010 },
                  [mlx5('RDMA NIC')],
                ),
                downstreamPort({
                  ...port,
                  device: 2,
                  name: 'PEX switch downstream',
                  vendorId: 0x1000,
                  deviceId: 0xc010,
                }),
              ],
            ),
          ]),
          rootPort({ ...port, device: 3, name: 'Root port', vendorId: 0x8086, deviceId: 0x347b }, [
            nvme('NVMe SSD'),
          ]),
        ],
      },
      {
        busStart: 0x80,
        busEnd: 0xff,
        vendorId: 0x8086,
        deviceId: 0x09a2,
        numaNode: 1,
        children: [
          rootPort({ ...port, device: 1, name: 'Root port', vendorId: 0x8086, deviceId: 0x347a }, [
            mlx5('RDMA NIC 2'),
          ]),
        ],
      },
    ],
  });
}

/**
 * A Tiger Lake laptop: host bridge 8086:9a14 (not on the allowlist), the iGPU as an RC-integrated
 * endpoint at 00:02.0, an NVMe drive and a Wi-Fi card on their own root ports. No P2P is possible.
 */
export function laptop(): PciTopology {
  const port = { acs: acsPort({ redirect: true }), classCode: CLASS_BRIDGE, vendorId: 0x8086 };
  return buildTopology({
    cpu: { vendor: 'intel', family: 6 },
    hostBridges: [
      {
        vendorId: 0x8086,
        deviceId: 0x9a14,
        numaNode: 0,
        children: [
          rcIntegratedEndpoint({
            device: 2,
            name: 'Iris Xe iGPU',
            vendorId: 0x8086,
            deviceId: 0x9a49,
            classCode: CLASS_VGA,
            bars: [
              { index: 0, size: 16n * MiB, is64: true },
              { index: 2, size: 256n * MiB, prefetchable: true },
            ],
          }),
          rootPort({ ...port, device: 6, deviceId: 0x9a09, name: 'Root port' }, [
            nvme('NVMe SSD', 0x15b7, 0x5006),
          ]),
          rootPort({ ...port, device: 0x1c, deviceId: 0xa0b8, name: 'Root port' }, [
            endpoint({
              name: 'Wi-Fi 6E AX210',
              vendorId: 0x8086,
              deviceId: 0x2725,
              classCode: CLASS_WIFI,
              bars: [{ index: 0, size: 16n * KiB, is64: true }],
            }),
          ]),
        ],
      },
    ],
  });
}

/**
 * An Ampere Altra-style ARM server with an SMMUv3: two root complexes (1def:e100, not on the allowlist)
 * in segments 0 and 1; the second maps its windows high (CPU address = bus address + 0x4000_0000_0000).
 */
export function armServer(): PciTopology {
  const offset = 0x4000_0000_0000n;
  const port = {
    acs: acsPort({ redirect: true }),
    classCode: CLASS_BRIDGE,
    vendorId: 0x1def,
    deviceId: 0xe101,
  };
  return buildTopology({
    cpu: { vendor: 'arm', family: undefined },
    hostBridges: [
      {
        segment: 0,
        vendorId: 0x1def,
        deviceId: 0xe100,
        numaNode: 0,
        children: [
          rootPort({ ...port, device: 1, name: 'Root port' }, [nvme('NVMe SSD')]),
          rootPort({ ...port, device: 3, name: 'Root port' }, [
            endpoint({
              name: 'GPU',
              vendorId: 0x10de,
              deviceId: 0x20b5,
              classCode: CLASS_3D,
              bars: [
                { index: 0, size: 16n * MiB, is64: false },
                { index: 1, size: 64n * GiB, prefetchable: true },
              ],
            }),
          ]),
        ],
      },
      {
        segment: 1,
        vendorId: 0x1def,
        deviceId: 0xe100,
        busOffset: offset,
        numaNode: 0,
        mmio32: { base: offset + 0x8000_0000n, size: 0x1000_0000n },
        mmio64: { base: offset + 0x100_0000_0000n, size: 0x100_0000_0000n },
        children: [rootPort({ ...port, device: 1, name: 'Root port' }, [mlx5('RDMA NIC')])],
      },
    ],
  });
}

/**
 * An AMD EPYC (family 0x19, Zen 3) server with AMD-Vi: two root complexes (1022:1480) whose root ports
 * (1022:1483, ACS redirect on as Linux sets it with an IOMMU) sit beside dummy host bridges (1022:1482)
 * in multi-function slots. P2P through the host bridge is allowed by the CPU rule, not the allowlist.
 */
export function amdServer(): PciTopology {
  const port = {
    acs: acsPort({ redirect: true }),
    classCode: CLASS_BRIDGE,
    vendorId: 0x1022,
    deviceId: 0x1483,
  };
  const dummy = (device: number): FunctionSpec => ({
    kind: 'host-bridge-device',
    device,
    function: 0,
    name: 'Dummy host bridge',
    vendorId: 0x1022,
    deviceId: 0x1482,
    classCode: 0x060000,
  });
  return buildTopology({
    cpu: { vendor: 'amd', family: 0x19 },
    hostBridges: [
      {
        busStart: 0x00,
        busEnd: 0x3f,
        vendorId: 0x1022,
        deviceId: 0x1480,
        numaNode: 0,
        children: [
          dummy(1),
          rootPort({ ...port, device: 1, function: 1, name: 'Root port' }, [
            endpoint({
              name: 'GPU',
              vendorId: 0x1002,
              deviceId: 0x740f,
              classCode: CLASS_3D,
              bars: [
                { index: 0, size: 64n * GiB, prefetchable: true },
                { index: 5, size: 1n * MiB, is64: false },
              ],
            }),
          ]),
          dummy(3),
          rootPort({ ...port, device: 3, function: 1, name: 'Root port' }, [mlx5('RDMA NIC')]),
        ],
      },
      {
        busStart: 0x40,
        busEnd: 0x7f,
        vendorId: 0x1022,
        deviceId: 0x1480,
        numaNode: 0,
        children: [
          dummy(1),
          rootPort({ ...port, device: 1, function: 1, name: 'Root port' }, [nvme('NVMe SSD')]),
        ],
      },
    ],
  });
}

export interface BuiltinBootOptions {
  /** `pci=disable_acs_redir=` devices the machine is booted with. */
  readonly disableAcsRedir?: readonly AcsDeviceMatch[];
  /** Whether the kernel uses the IOMMU (default: when the platform has one). */
  readonly iommu?: boolean;
}

export interface BuiltinTopology {
  readonly name: string;
  /** Other names it answers to (the scenario platform names, e.g. `x86-2s`). */
  readonly aliases: readonly string[];
  readonly description: string;
  readonly iommu: 'intel-vt-d' | 'amd-vi' | 'arm-smmu-v3' | 'none';
  /**
   * The machine as Linux leaves it after boot: with an IOMMU, pci_std_enable_acs has turned on ACS
   * SV/RR/CR/UF on every port that has them; `disableAcsRedir` then clears redirect where asked.
   */
  readonly build: (options?: BuiltinBootOptions) => PciTopology;
}

function booted(
  iommu: BuiltinTopology['iommu'],
  firmware: () => PciTopology,
): (options?: BuiltinBootOptions) => PciTopology {
  return (options = {}) =>
    bootAcs(firmware(), {
      iommu: options.iommu ?? iommu !== 'none',
      ...(options.disableAcsRedir === undefined ? {} : { disableAcsRedir: options.disableAcsRedir }),
    });
}

export const BUILTIN_TOPOLOGIES: readonly BuiltinTopology[] = [
  {
    name: 'two-socket-server',
    aliases: ['x86-2s'],
    description:
      '2x Intel Ice Lake Xeon (allowlisted host bridges), PCIe switch with GPU + RDMA NIC, NVMe, second NIC; ACS redirect on as Linux boots with VT-d',
    iommu: 'intel-vt-d',
    build: booted('intel-vt-d', () => twoSocketServer()),
  },
  {
    name: 'laptop',
    aliases: [],
    description: 'Tiger Lake laptop: iGPU (RC-integrated), NVMe, Wi-Fi; host bridge not allowlisted, no P2P',
    iommu: 'intel-vt-d',
    build: booted('intel-vt-d', laptop),
  },
  {
    name: 'arm-server',
    aliases: [],
    description: 'Ampere-style ARM server, SMMUv3, two non-allowlisted root complexes, high-mapped windows',
    iommu: 'arm-smmu-v3',
    build: booted('arm-smmu-v3', armServer),
  },
  {
    name: 'amd-server',
    aliases: [],
    description: 'AMD EPYC family 0x19: P2P through the host bridge allowed by the CPU rule',
    iommu: 'amd-vi',
    build: booted('amd-vi', amdServer),
  },
];

export function builtinTopology(name: string): BuiltinTopology | undefined {
  return BUILTIN_TOPOLOGIES.find((b) => b.name === name || b.aliases.includes(name));
}
