import type { DeployObserver } from '../pipeline/observer.js';

/**
 * Progress of a deploy on stderr. On a terminal: one live line per step with its elapsed time,
 * redrawn in place. Elsewhere (logs, CI, systemd): one plain line per event.
 */
export function progressObserver(stream: NodeJS.WritableStream & { isTTY?: boolean }): DeployObserver & { stop(): void } {
  const started = new Map<string, number>();
  let ticker: NodeJS.Timeout | undefined;
  let current: { step: string; what: string } | undefined;
  const tty = stream.isTTY === true;

  const draw = () => {
    if (!current) return;
    const seconds = ((Date.now() - (started.get(current.step) ?? Date.now())) / 1000).toFixed(1);
    stream.write(`\r\x1b[2K  ${current.step.padEnd(8)} ${current.what} … ${seconds}s`);
  };

  return {
    stepStarted(step, what) {
      started.set(step, Date.now());
      current = { step, what };
      if (tty) {
        draw();
        ticker ??= setInterval(draw, 100);
        ticker.unref();
      } else {
        stream.write(`duet: ${step}: ${what}\n`);
      }
    },
    stepEnded(step, status, ms, detail) {
      const mark = status === 'failed' ? '✗' : status === 'skipped' ? '–' : '✓';
      const line = `${step}: ${status} in ${(ms / 1000).toFixed(2)}s${detail ? ` (${detail})` : ''}`;
      if (tty) stream.write(`\r\x1b[2K${mark} ${line}\n`);
      else stream.write(`duet: ${line}\n`);
      current = undefined;
    },
    note(text) {
      stream.write(`${tty ? '\r\x1b[2K' : ''}duet: ${text}\n`);
    },
    stop() {
      if (ticker) clearInterval(ticker);
      ticker = undefined;
    },
  };
}
