/** Progress goes to stderr; stdout carries only the Markdown result. */
const started = Date.now();

export function log(text: string): void {
  const seconds = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(text.startsWith('\n') ? `\n[${seconds}s] ${text.slice(1)}\n` : `[${seconds}s] ${text}\n`);
}

export function elapsedS(): number {
  return (Date.now() - started) / 1000;
}
