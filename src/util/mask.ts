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
