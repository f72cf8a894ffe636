import { fail } from '../core/index.ts';

/**
 * Mapping permissions, with the kernel's bit values (include/linux/iommu.h IOMMU_READ..IOMMU_PRIV), so
 * a prot read from a scenario or a capture means the same thing as in the kernel.
 */
export const IOMMU_READ = 1 << 0;
export const IOMMU_WRITE = 1 << 1;
export const IOMMU_CACHE = 1 << 2;
export const IOMMU_NOEXEC = 1 << 3;
export const IOMMU_MMIO = 1 << 4;
export const IOMMU_PRIV = 1 << 5;

/** A bitmask of the IOMMU_* flags above. */
export type Prot = number;

export type Access = 'read' | 'write';

/** Whether `prot` permits a device access of this kind. */
export function protAllows(prot: Prot, access: Access): boolean {
  return (prot & (access === 'read' ? IOMMU_READ : IOMMU_WRITE)) !== 0;
}

/** `READ|WRITE|NOEXEC`-style text (the io_pgtable oracle's spelling). */
export function formatProt(prot: Prot): string {
  const names: string[] = [];
  if (prot & IOMMU_READ) names.push('READ');
  if (prot & IOMMU_WRITE) names.push('WRITE');
  if (prot & IOMMU_CACHE) names.push('CACHE');
  if (prot & IOMMU_NOEXEC) names.push('NOEXEC');
  if (prot & IOMMU_MMIO) names.push('MMIO');
  if (prot & IOMMU_PRIV) names.push('PRIV');
  return names.length === 0 ? 'NONE' : names.join('|');
}

/** Parses `READ|WRITE|NOEXEC|CACHE` (case-insensitive, `|` or `,` separated). */
export function parseProt(text: string): Prot {
  let prot = 0;
  for (const part of text.split(/[|,]/)) {
    const name = part.trim().toUpperCase();
    if (name === '' || name === 'NONE') continue;
    const bit = PROT_BY_NAME[name];
    if (bit === undefined) fail('EINVAL', `unknown IOMMU prot flag "${part.trim()}"`);
    prot |= bit;
  }
  return prot;
}

const PROT_BY_NAME: Readonly<Record<string, number>> = {
  READ: IOMMU_READ,
  WRITE: IOMMU_WRITE,
  CACHE: IOMMU_CACHE,
  NOEXEC: IOMMU_NOEXEC,
  MMIO: IOMMU_MMIO,
  PRIV: IOMMU_PRIV,
};
