/**
 * Linux 7.1's p2pdma_provider (drivers/pci/p2pdma.c, include/linux/pci-p2pdma.h; 6.19): one provider
 * per memory BAR, the map type decided once per (provider owner, client) and cached, the bus address
 * = paddr + provider->bus_offset.
 */
import { describe, expect, it } from 'vitest';
import {
  builtinPlatform,
  p2pdmaDecisionsComputed,
  p2pdmaMapState,
  p2pdmaProviderOf,
  pcimP2pdmaProvider,
  pciP2pdmaBusAddrMap,
  pciP2pdmaState,
} from '../../src/platform/index.ts';
import { expectErrno } from '../errno.ts';

const GPU = '0000:03:00.0';
const NIC = '0000:04:00.0';
const NVME = '0000:06:00.0';
const GPU_BAR1 = 0x200_0000_0000n;
/** Linux boots with ACS redirect on (pci_std_enable_acs): switch-local P2P needs the kernel parameter. */
const SWITCH_P2P = 'pci=disable_acs_redir=0000:02:00.0;0000:02:01.0';

describe('p2pdma_provider', () => {
  it('is one object per memory BAR, found from any page of it', () => {
    const { topology } = builtinPlatform('two-socket-server');
    const bar1 = pcimP2pdmaProvider(topology, GPU, 1);
    expect(bar1).toMatchObject({ owner: GPU, bar: 1, busOffset: 0n });
    expect(p2pdmaProviderOf(topology, GPU_BAR1 + 0x1234_5000n)).toBe(bar1);
    expect(p2pdmaProviderOf(topology, 5n << 30n)).toBeUndefined(); // RAM has no provider
    expectErrno(() => pcimP2pdmaProvider(topology, GPU, 2), 'EINVAL', /no memory BAR 2/);
  });

  it('pci_p2pdma_state decides the map type once per (owner, client) and carries it', () => {
    const { topology } = builtinPlatform('two-socket-server', { cmdline: SWITCH_P2P });
    const before = p2pdmaDecisionsComputed(topology);
    const nicState = p2pdmaMapState();
    for (let i = 0n; i < 64n; i++) {
      expect(pciP2pdmaState(nicState, topology, NIC, GPU_BAR1 + i * 0x1000n)).toBe('bus-address');
    }
    // BAR 3 of the same GPU: a different provider, but the same owner, so the cached type serves.
    expect(pciP2pdmaState(nicState, topology, NIC, 0x200_0000_0000n + (32n << 30n))).toBe('bus-address');
    expect(nicState.mem).toMatchObject({ owner: GPU, bar: 3 });
    expect(p2pdmaDecisionsComputed(topology) - before).toBe(1);
    // Another client is another decision: the NVMe sits under another root port.
    const nvmeState = p2pdmaMapState();
    expect(pciP2pdmaState(nvmeState, topology, NVME, GPU_BAR1)).toBe('through-host-bridge');
    expect(p2pdmaDecisionsComputed(topology) - before).toBe(2);
    expect(pciP2pdmaState(nvmeState, topology, NVME, 5n << 30n)).toBe('none');
  });

  it('the bus address adds the provider bus offset (ARM high window: CPU - 0x4000_0000_0000)', () => {
    const { topology } = builtinPlatform('arm-server');
    const bar = 0x4100_0000_0000n;
    const provider = p2pdmaProviderOf(topology, bar)!;
    expect(provider.busOffset).toBe(-0x4000_0000_0000n);
    expect(pciP2pdmaBusAddrMap(provider, bar + 0x10n)).toBe(0x100_0000_0010n);
  });
});
