/**
 * Replaces secret values with `***` in text duet writes or hands on (a deploy log, an error
 * message): what an install, a build or the app printed may hold one. Longest first, so that a
 * secret containing another is masked whole.
 */
export class SecretMask {
  private readonly values: string[];

  constructor(values: Iterable<string> = []) {
    this.values = [...new Set(values)].filter((value) => value.length > 0).sort((a, b) => b.length - a.length);
  }

  get empty(): boolean {
    return this.values.length === 0;
  }

  apply(text: string): string {
    let masked = text;
    for (const value of this.values) if (masked.includes(value)) masked = masked.split(value).join('***');
    return masked;
  }
}

/** Values shorter than this are not masked: `true`, a port, a short name would blot out every log. */
const MASKED_MIN_LENGTH = 8;

/**
 * The values to mask, of the env files' values: those long enough, and each long line of one that
 * spans lines (a PEM key), since output is masked line by line and may print one line of it.
 */
export function maskedValues(values: Iterable<string>): string[] {
  return [...values].flatMap((value) => [value, ...(value.includes('\n') ? value.split(/\r?\n/) : [])]).filter((value) => value.length >= MASKED_MIN_LENGTH);
}

/**
 * Masks a stream of output: whole lines at a time, so that a value the command printed across two
 * chunks is found whole. An unfinished line waits for its end, or goes out once past `maxLine`.
 */
export class LineMask {
  private rest = '';

  constructor(
    private readonly mask: SecretMask,
    private readonly maxLine = 64 * 1024,
  ) {}

  push(chunk: string): string {
    const text = this.rest + chunk;
    const end = text.lastIndexOf('\n') + 1;
    const cut = end > 0 ? end : text.length > this.maxLine ? text.length : 0;
    this.rest = text.slice(cut);
    return this.mask.apply(text.slice(0, cut));
  }

  flush(): string {
    const text = this.rest;
    this.rest = '';
    return this.mask.apply(text);
  }
}
