/** Counts in report text: "1 range", "2 ranges", "1 sg entry", "3 sg entries". */
export { plural } from '../view/wording.ts';

/** How one kind of mapped stretch reached the device, in a reader's words. */
const SEGMENT_WORDS: Record<string, string> = {
  iova: 'IOMMU (one IOVA)',
  iommu: 'IOMMU (an IOVA per range)',
  direct: 'dma-direct',
  bounce: 'swiotlb',
  'bus-address': 'PCI bus address (no IOMMU)',
  'through-host-bridge': 'host bridge',
};

/**
 * "via host bridge", "via swiotlb", "via IOMMU (one IOVA)": how a mapping reached the device, from
 * the kinds of its segments (several kinds are listed in order of first appearance).
 */
export function viaText(kinds: readonly string[]): string {
  const distinct = [...new Set(kinds)];
  if (distinct.length === 0) return 'via nothing (empty mapping)';
  return `via ${distinct.map((k) => SEGMENT_WORDS[k] ?? k).join(' + ')}`;
}
