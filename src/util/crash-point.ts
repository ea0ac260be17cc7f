/**
 * Fault injection for the tests that prove a re-run converges from anywhere: with
 * `DUET_CRASH_AT=<point>` this process kills itself as hard as `kill -9` when it reaches that
 * point. A step's points are `before:<step>` (its start journaled, nothing done) and
 * `after:<step>` (its end journaled); the points inside a step are named where they are:
 * `update:checked-out` (the new commit checked out, its install not begun), `switch:conf-written`
 * (port mode: the new nginx file written, nginx not reloaded), `switch:live-renamed` (socket mode:
 * live.sock renamed, standby.sock not yet), `stop:signalled` (a color sent SIGTERM, not yet gone),
 * `restore:moved` (a kept release's tree renamed into a color, its prepared record not yet written).
 */
export function crashPoint(point: string): void {
  if (process.env.DUET_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}
