/**
 * Serving throughput: C concurrent clients on loopback repeatedly GET the
 * largest artifact of one built repository from a running snapclone server,
 * for at most `seconds` and at most `maxRequests` requests in all, and report
 * aggregate bytes per second.
 *
 * Run by run.ts for each upstream; also on its own:
 *   node dist/bench/serve.js --server http://127.0.0.1:7420 --name NAME [--clients 8] [--seconds 8] [--max-requests 5000]
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { Agent, request } from 'undici';

export interface ServeBenchResult {
  repo: string;
  artifact: { digest: string; size: number; kind: string };
  clients: number;
  requests: number;
  bytes: number;
  seconds: number;
  gbPerSec: number;
  /** Per-request latency (ms): median and max. */
  latencyMedianMs: number;
  latencyMaxMs: number;
  errors: number;
}

interface Art {
  digest: string;
  size: number;
  kind: string;
}

async function getJson(agent: Agent, url: string): Promise<Record<string, unknown>> {
  const r = await request(url, { dispatcher: agent });
  const text = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`GET ${url}: ${r.statusCode} ${text.slice(0, 200)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/** Every artifact of the default branch's build: history packs, head packs, archive chunks, table. */
export async function listArtifacts(server: string, name: string, agent: Agent): Promise<Art[]> {
  const resolved = await getJson(agent, `${server}/v1/repos/${encodeURIComponent(name)}/resolve`);
  const md = (resolved.manifest as { digest: string }).digest;
  const manifest = await getJson(agent, `${server}/v1/artifacts/${md}`);
  type A = { digest: string; size: number };
  const arts: Art[] = [];
  for (const p of (manifest.historyPacks as { pack: A }[]) ?? []) arts.push({ ...p.pack, kind: 'history pack' });
  for (const p of (manifest.headPacks as { pack: A }[]) ?? []) arts.push({ ...p.pack, kind: 'head pack' });
  for (const c of ((manifest.archive as { chunks: A[] }) ?? { chunks: [] }).chunks) arts.push({ digest: c.digest, size: c.size, kind: 'archive chunk' });
  return arts;
}

export async function serveBench(opts: { server: string; name: string; clients?: number; seconds?: number; maxRequests?: number }): Promise<ServeBenchResult> {
  const clients = opts.clients ?? 8;
  const seconds = opts.seconds ?? 8;
  const maxRequests = opts.maxRequests ?? 5000;
  const agent = new Agent({ connections: clients, pipelining: 1 });
  try {
    const arts = await listArtifacts(opts.server, opts.name, agent);
    if (!arts.length) throw new Error(`${opts.name} has no artifacts to serve`);
    const art = arts.reduce((a, b) => (b.size > a.size ? b : a));
    const url = `${opts.server}/v1/artifacts/${art.digest}`;
    let issued = 0;
    let bytes = 0;
    let errors = 0;
    const lat: number[] = [];
    const t0 = performance.now();
    const deadline = t0 + seconds * 1000;
    const client = async () => {
      while (issued < maxRequests && performance.now() < deadline) {
        issued++;
        const s = performance.now();
        try {
          const r = await request(url, { dispatcher: agent });
          let n = 0;
          for await (const chunk of r.body) n += (chunk as Buffer).length;
          if (r.statusCode !== 200 || n !== art.size) errors++;
          bytes += n;
        } catch {
          errors++;
        }
        lat.push(performance.now() - s);
      }
    };
    await Promise.all(Array.from({ length: clients }, client));
    const secs = (performance.now() - t0) / 1000;
    lat.sort((a, b) => a - b);
    return {
      repo: opts.name,
      artifact: art,
      clients,
      requests: lat.length,
      bytes,
      seconds: secs,
      gbPerSec: bytes / secs / 1e9,
      latencyMedianMs: lat[Math.floor(lat.length / 2)] ?? NaN,
      latencyMaxMs: lat[lat.length - 1] ?? NaN,
      errors,
    };
  } finally {
    await agent.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { server: { type: 'string' }, name: { type: 'string' }, clients: { type: 'string' }, seconds: { type: 'string' }, 'max-requests': { type: 'string' } },
  });
  if (!values.name) throw new Error('usage: node dist/bench/serve.js --server URL --name NAME [--clients 8] [--seconds 8] [--max-requests 5000]');
  const r = await serveBench({
    server: values.server ?? process.env.SNAPCLONE_SERVER ?? 'http://127.0.0.1:7420',
    name: values.name,
    clients: values.clients ? Number(values.clients) : undefined,
    seconds: values.seconds ? Number(values.seconds) : undefined,
    maxRequests: values['max-requests'] ? Number(values['max-requests']) : undefined,
  });
  process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e: unknown) => {
    process.stderr.write(`serve bench: ${(e as Error).message}\n`);
    process.exitCode = 1;
  });
}
