/**
 * A unified diff of two small texts (unit files, configs: a few hundred lines at most), for
 * `duet install --dry-run`. A longest-common-subsequence table is quadratic, which is nothing
 * at this size and keeps the code obviously right.
 */
type Op = { kind: ' ' | '-' | '+'; line: string };

const CONTEXT = 3;

export function unifiedDiff(before: string | undefined, after: string, path: string): string {
  const a = before === undefined ? [] : splitLines(before);
  const b = splitLines(after);
  const ops = lineOps(a, b);
  if (!ops.some((op) => op.kind !== ' ')) return '';
  const header = [`--- ${before === undefined ? '/dev/null' : path}`, `+++ ${path}`];
  return [...header, ...hunks(ops)].join('\n');
}

function splitLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

function lineOps(a: string[], b: string[]): Op[] {
  // lcs[i][j]: length of the LCS of a[i..] and b[j..].
  const lcs = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i -= 1) {
    for (let j = b.length - 1; j >= 0; j -= 1) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      ops.push({ kind: ' ', line: a[i]! });
      i += 1;
      j += 1;
    } else if (j < b.length && (i === a.length || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) {
      ops.push({ kind: '+', line: b[j]! });
      j += 1;
    } else {
      ops.push({ kind: '-', line: a[i]! });
      i += 1;
    }
  }
  return ops;
}

/** Changed lines with CONTEXT unchanged lines around them, under @@ -a,n +b,m @@ headers. */
function hunks(ops: Op[]): string[] {
  const out: string[] = [];
  const changed = ops.map((op, index) => (op.kind === ' ' ? -1 : index)).filter((index) => index >= 0);
  let k = 0;
  while (k < changed.length) {
    const start = Math.max(0, changed[k]! - CONTEXT);
    let end = changed[k]!;
    // Merge changes whose context windows touch.
    while (k + 1 < changed.length && changed[k + 1]! - end <= 2 * CONTEXT) end = changed[++k]!;
    k += 1;
    const stop = Math.min(ops.length, end + CONTEXT + 1);
    const before = ops.slice(0, start);
    const slice = ops.slice(start, stop);
    const aStart = before.filter((op) => op.kind !== '+').length;
    const bStart = before.filter((op) => op.kind !== '-').length;
    const aLen = slice.filter((op) => op.kind !== '+').length;
    const bLen = slice.filter((op) => op.kind !== '-').length;
    out.push(`@@ -${aLen ? aStart + 1 : aStart},${aLen} +${bLen ? bStart + 1 : bStart},${bLen} @@`);
    for (const op of slice) out.push(`${op.kind}${op.line}`);
  }
  return out;
}
