/** snapclone gc: run a garbage collection pass on the server (POST /v1/gc) and report it. */
import { formatBytes } from '../util/format.js';
import { SnapError } from '../util/errors.js';
import { out, withClient, type Values } from './common.js';

interface Tally {
  count: number;
  bytes: number;
}

export async function gc(v: Values, args: string[]): Promise<number> {
  if (args.length) throw new SnapError('usage', 'gc takes no arguments (see snapclone help gc)');
  const dryRun = v['dry-run'] === true;
  return withClient(v, async (c) => {
    const { json } = await c.json('POST', '/v1/gc', { dryRun });
    const t = (k: string): Tally => (json[k] as Tally | undefined) ?? { count: 0, bytes: 0 };
    const line = (label: string, x: Tally) => `  ${label.padEnd(22)} ${String(x.count).padStart(6)}  ${formatBytes(x.bytes)}\n`;
    let text: string;
    if (json.ran === false) text = `gc did not run: ${String(json.reason ?? 'another pass is running')}\n`;
    else
      text =
        `gc ${dryRun ? '(dry run: nothing deleted)' : 'pass'}: retain ${String(json.retain)} older manifests, grace ${String(json.graceSeconds)} s\n` +
        line('stored', t('stored')) +
        line('reachable', t('reachable')) +
        line(dryRun ? 'would delete' : 'deleted', t('deleted')) +
        line('in grace', t('inGrace')) +
        line('deferred (build ran)', t('deferred'));
    out(v, json, text);
    return 0;
  });
}
