import { releasesView, shortRef, type ReleaseView } from '../../pipeline/release-pick.js';
import { appFrom, print, type Command } from '../command.js';

export const releases: Command = {
  name: 'releases',
  summary: 'the releases kept for `duet rollback --to/--steps`, newest first',
  usage: 'releases [app] [--json]',
  options: { json: { type: 'boolean' } },
  async run(context) {
    const { config, app } = await appFrom(context, releases);
    const kept = await releasesView(config, app);
    if (context.values.json) {
      print(context.stdout, JSON.stringify(kept));
      return;
    }
    if (kept.length === 0) {
      print(context.stdout, `${app.name}: no release kept yet (keep_releases: ${app.keep_releases}; a deploy that passes its watch is kept)`);
      return;
    }
    for (const release of kept) print(context.stdout, line(release));
  },
};

function line(release: ReleaseView): string {
  const where = release.live ? `live on ${release.colors.join(', ')}` : release.colors.length > 0 ? `in ${release.colors.join(', ')}` : '';
  const marks = [where, release.bad ? `bad (left by rollback ${release.bad.deploy})` : '', release.kept ? '' : 'tree not kept'].filter(Boolean).join('; ');
  return [
    release.sha.slice(0, 7),
    shortRef(release.ref).padEnd(16),
    release.deployedAt,
    `node ${release.node.version} (ABI ${release.node.modules})`.padEnd(24),
    `${Math.ceil(release.bytes / 1024 / 1024)} MiB`.padStart(8),
    release.released ? 'release step' : '',
    marks,
  ]
    .join('  ')
    .trimEnd();
}
