/** fast-check arbitraries for PCI topologies shared by the P2P property tests. */
import { fc } from '@fast-check/vitest';
import {
  ACS_ABSENT,
  type AcsState,
  acsKnown,
  acsUnknown,
  downstreamPort,
  type FunctionSpec,
  pciSwitch,
} from '../../src/platform/index.ts';

/** A port's ACS: absent, unknown (a capture without config space), or any control value. */
export const acsArb: fc.Arbitrary<AcsState> = fc.oneof(
  fc.constant(ACS_ABSENT),
  fc.constant(acsUnknown('capture')),
  fc.integer({ min: 0, max: 0x7f }).map((ctrl) => acsKnown(0x7f, ctrl)),
);

/** What sits below a port: `leaf`, or a switch (up to `depth` levels) of 1..3 downstream ports. */
export function portChildren(
  depth: number,
  leaf: fc.Arbitrary<readonly FunctionSpec[]>,
): fc.Arbitrary<readonly FunctionSpec[]> {
  if (depth === 0) return leaf;
  const sw = fc
    .tuple(acsArb, fc.array(fc.tuple(acsArb, portChildren(depth - 1, leaf)), { minLength: 1, maxLength: 3 }))
    .map(([usp, dsps]) => [
      pciSwitch(
        { acs: usp },
        dsps.map(([acs, kids], i) => downstreamPort({ device: i, acs }, kids)),
      ),
    ]);
  return fc.oneof(leaf, sw);
}
