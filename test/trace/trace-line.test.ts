import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { HEADER, scanHeader } from '../../src/trace/trace-line.ts';
import { propertyRuns } from '../thorough.ts';

/** What the regular expression finds, in the scanner's terms. */
function byRegex(line: string) {
  const m = HEADER.exec(line);
  if (m === null) return undefined;
  return { index: m.index, seconds: m[1], fraction: m[2], name: m[3], bodyStart: m.index + m[0].length };
}

function byScanner(line: string) {
  const m = scanHeader(line);
  if (m === undefined) return undefined;
  return {
    index: m.index,
    seconds: line.slice(m.secondsStart, m.dot),
    fraction: line.slice(m.dot + 1, m.fractionEnd),
    name: line.slice(m.nameStart, m.nameEnd),
    bodyStart: m.bodyStart,
  };
}

/** Each part of a header, right or slightly wrong: comms with dashes, TGIDs, flags of 3 to 6 characters. */
const parts = [
  fc.constantFrom('fio', 'kworker/u16:3', 'a-b [1] c', '<...>', ''),
  fc.constantFrom('-', '--', '- ', ''),
  fc.constantFrom('4242', '1', '', 'x'),
  fc.constantFrom(' ', '  ', '\t', '\u00a0', ''),
  fc.constantFrom('', '(1234) ', '( -----)  ', '(-)', '(12 ) ', '(--1) '),
  fc.constantFrom('[003]', '[]', '[1', '003]'),
  fc.constantFrom(' ', '   ', ''),
  fc.constantFrom('', '..... ', 'd.h1 ', 'X.. ', 'dNs.1x ', '1234 ', '12.3: '),
  fc.constantFrom('327', '', '0', 'a'),
  fc.constantFrom('.', '', '..'),
  fc.constantFrom('747766', '5', ''),
  fc.constantFrom(':', ': ', ''),
  fc.constantFrom(' ', '\t ', ''),
  fc.constantFrom('dma_map_phys', 'map', '_x9', '9x', ''),
  fc.constantFrom(':', ': ', ':  ', ''),
  fc.constantFrom('0000:41:00.0 dir=TO_DEVICE', '', ' -1 [2] 3.4: e: f', '-5 [0] 1.2: y:'),
] as const;

describe('the hand-written trace header scanner', () => {
  test.prop([fc.tuple(...parts)], { numRuns: propertyRuns(1000, 20000) })(
    'finds what the HEADER expression finds, on lines built from right and wrong header parts',
    (pieces) => {
      const line = pieces.join('');
      expect(byScanner(line)).toEqual(byRegex(line));
    },
  );

  test.prop(
    [
      fc.constantFrom('fio-4242', 'my task-1-77', '<...>-99'),
      fc.constantFrom('', '(  12) ', '(-----) '),
      fc.constantFrom('', '.... ', 'd..1. ', 'toolong '),
      fc.nat({ max: 99999 }),
      fc.nat({ max: 999999 }),
      fc.constantFrom('dma_map_phys', 'io_page_fault', 'x'),
    ],
    { numRuns: propertyRuns(300) },
  )('reads every tracefs and trace-cmd shape the same way', (task, tgid, flags, s, f, name) => {
    const line = `  ${task} ${tgid}[001] ${flags}${s}.${String(f).padStart(6, '0')}: ${name}: body here`;
    const r = byRegex(line);
    expect(byScanner(line)).toEqual(r);
  });
});
