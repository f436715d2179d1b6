/** The ArtifactStore contract on local disk (its own behaviour: local-store.test.ts). */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalArtifactStore } from '../../src/storage/local/local-store.js';
import { artifactStoreContract } from './contract.js';

process.env.SNAPCLONE_LOG = 'error';

artifactStoreContract({
  name: 'local',
  skipReason: '',
  async make() {
    const dir = await mkdtemp(join(tmpdir(), 'snapclone-local-contract-'));
    const store = new LocalArtifactStore(join(dir, 'store'));
    return {
      store,
      async overwrite(digest, bytes) {
        const path = store.localPath(digest);
        await rm(path, { force: true });
        await writeFile(path, bytes, { mode: 0o444 });
      },
      close: () => rm(dir, { recursive: true, force: true }),
    };
  },
});
