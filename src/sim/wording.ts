/** Counts in report text: "1 range", "2 ranges", "1 sg entry", "3 sg entries". */
export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}
