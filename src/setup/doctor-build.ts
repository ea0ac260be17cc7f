import { totalmem } from 'node:os';
import { BUILD_SLICE, missingPriorityTools, onPath } from '../instance/build-step.js';
import { readFileOrUndefinedSync } from '../util/atomic-file.js';
import { fail, pass, type CheckResult, type DoctorContext } from './doctor-context.js';

/**
 * What of the build's isolation (issue 28; docs/deploy.md, "A build next to the live app") is in
 * force on this machine: the priorities every build gets, and the memory limits only a cgroup
 * (duet-build.slice, with app_user) can give.
 */

const GiB = 1024 ** 3;
/** Below this much RAM a build without swap is one npm ci away from the OOM killer. */
const SMALL_MACHINE = 2 * GiB;

export function checkBuildPriority(ctx: DoctorContext): CheckResult {
  const path = ctx.env.PATH ?? process.env.PATH ?? '';
  const missing = missingPriorityTools(path);
  if (missing.length > 0) {
    const fallback = missing.includes('chrt') && onPath('nice', path) ? ' (nice 19 instead of SCHED_IDLE)' : '';
    return fail(
      'build priority',
      `${missing.join(', ')} not found: builds run without ${missing.map((tool) => ({ chrt: 'idle CPU priority', ionice: 'idle I/O priority', choom: 'oom_score_adj 1000' })[tool]).join(', ')}${fallback}`,
      'sudo apt install util-linux (it has chrt, ionice and choom)',
    );
  }
  return pass('build priority', 'installs and builds run at SCHED_IDLE (chrt), I/O class idle (ionice), oom_score_adj 1000 (choom)');
}

/** The controllers the root cgroup hands down to its children (cgroup v2), or undefined on v1 or hybrid. */
function delegatedControllers(): string[] | undefined {
  return readFileOrUndefinedSync('/sys/fs/cgroup/cgroup.subtree_control')?.trim().split(/\s+/).filter(Boolean);
}

export function checkBuildMemory(ctx: DoctorContext): CheckResult {
  const limits = ctx.setup.config.buildLimits;
  const swapKb = Number(/^SwapTotal:\s+(\d+) kB$/m.exec(readFileOrUndefinedSync('/proc/meminfo') ?? '')?.[1] ?? 0);
  const ram = `${(totalmem() / GiB).toFixed(1)} GiB of RAM`;
  if (totalmem() <= SMALL_MACHINE && swapKb === 0) {
    return fail(
      'build memory',
      `${ram} and no swap: an npm ci and a TypeScript build can exhaust it, and the OOM killer then ends the build`,
      'add swap (fallocate -l 2G /swapfile && chmod 600 /swapfile && mkswap /swapfile && swapon /swapfile, and a line in /etc/fstab), or deploy a prebuilt artifact',
    );
  }
  const swap = swapKb === 0 ? 'no swap' : `${(swapKb / 1024 ** 2).toFixed(1)} GiB of swap`;
  if (ctx.setup.appUser === undefined) {
    return pass(
      'build memory',
      `no memory limit on builds (they are duet's children; set runner: systemd and app_user for ${BUILD_SLICE}'s MemoryMax); ${ram}, ${swap}`,
    );
  }
  const controllers = delegatedControllers();
  const wanted = ['memory', 'cpu', 'io'];
  const absent = controllers === undefined ? wanted : wanted.filter((controller) => !controllers.includes(controller));
  if (absent.length > 0) {
    const why =
      controllers === undefined ? 'this machine does not use the unified cgroup v2 hierarchy' : `the root cgroup does not delegate ${absent.join(', ')}`;
    return fail(
      'build memory',
      `${BUILD_SLICE}'s limits are not in force: ${why}`,
      'boot with systemd.unified_cgroup_hierarchy=1 (Debian 12 does by default); in a container, have the host delegate the controllers',
    );
  }
  return pass('build memory', `${BUILD_SLICE}: MemoryHigh=${limits.memory_high}, MemoryMax=${limits.memory_max}, CPUWeight=idle, IOWeight=10; ${ram}, ${swap}`);
}
