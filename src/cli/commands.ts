/** The commands behind the CLI; each lives in its own module, imported when it runs. Server code is imported only by `serve` and `worker`. */
import { SnapError } from '../util/errors.js';
import type { Values } from './common.js';

export async function run(cmd: string, v: Values, args: string[]): Promise<number> {
  switch (cmd) {
    case 'serve':
      return (await import('./serve-cmd.js')).serve(v, args);
    case 'worker':
      return (await import('./worker-cmd.js')).worker(v, args);
    case 'add':
      return (await import('./admin-cmd.js')).add(v, args);
    case 'sync':
      return (await import('./admin-cmd.js')).sync(v, args);
    case 'status':
      return (await import('./admin-cmd.js')).status(v, args);
    case 'list':
      return (await import('./admin-cmd.js')).list(v, args);
    case 'remove':
      return (await import('./admin-cmd.js')).remove(v, args);
    case 'set-url':
      return (await import('./admin-cmd.js')).setUrl(v, args);
    case 'gc':
      return (await import('./gc-cmd.js')).gc(v, args);
    case 'clone':
      return (await import('./clone-cmd.js')).cloneCmd(v, args);
  }
  throw new SnapError('usage', `unknown command ${cmd}`);
}
