/**
 * GET /readyz: whether this process can do its work now, for load balancers and orchestrators.
 * It pings the metadata database and the artifact store (each bounded by a timeout, both at
 * once); either failing makes the answer 503 naming which engine failed, and nothing more (the
 * endpoint is open, so the reason goes to the log, once per change of state). Checks that
 * overlap share one probe, so a hung engine is not hammered by every prober.
 */
import type { ServerResponse } from 'node:http';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import { log } from '../util/log.js';
import { sendJson } from './http-util.js';

export type Engine = 'database' | 'artifact store';
export type CheckResult = 'ok' | 'failed' | 'timed out';

export interface Readiness {
  ready: boolean;
  /** The engines that failed their check, in a fixed order. */
  failed: Engine[];
  checks: Record<Engine, CheckResult>;
}

export const READINESS_TIMEOUT_MS = 2000;

/** A digest nothing is stored under: a stat of it proves a store without ping() answers. */
const PROBE_DIGEST = '0'.repeat(64);

export class ReadinessCheck {
  readonly #probes: Record<Engine, () => Promise<unknown>>;
  readonly #timeoutMs: number;
  #inFlight: Promise<Readiness> | null = null;
  /** Last result per engine, to log changes only. */
  readonly #last = new Map<Engine, CheckResult>();

  constructor(engines: { meta: Pick<MetadataStore, 'ping' | 'getJob'>; store: Pick<ArtifactStore, 'ping' | 'stat'> }, opts: { timeoutMs?: number } = {}) {
    const { meta, store } = engines;
    this.#probes = {
      database: () => (meta.ping ? meta.ping() : meta.getJob(0)),
      'artifact store': () => (store.ping ? store.ping() : store.stat(PROBE_DIGEST)),
    };
    this.#timeoutMs = opts.timeoutMs ?? READINESS_TIMEOUT_MS;
  }

  check(): Promise<Readiness> {
    this.#inFlight ??= this.#run().finally(() => (this.#inFlight = null));
    return this.#inFlight;
  }

  async #run(): Promise<Readiness> {
    const engines = Object.keys(this.#probes) as Engine[];
    const results = await Promise.all(engines.map((e) => this.#probe(e)));
    const checks = Object.fromEntries(engines.map((e, i) => [e, results[i]!])) as Record<Engine, CheckResult>;
    const failed = engines.filter((e) => checks[e] !== 'ok');
    return { ready: failed.length === 0, failed, checks };
  }

  async #probe(engine: Engine): Promise<CheckResult> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timed out'>((resolve) => {
      timer = setTimeout(() => resolve('timed out'), this.#timeoutMs);
      timer.unref();
    });
    let reason = '';
    const probe = Promise.resolve()
      .then(this.#probes[engine])
      .then(
        () => 'ok' as const,
        (err: unknown) => {
          reason = err instanceof Error ? err.message : String(err);
          return 'failed' as const;
        },
      );
    const result = await Promise.race([probe, timeout]);
    clearTimeout(timer);
    const before = this.#last.get(engine);
    this.#last.set(engine, result);
    if (result !== 'ok' && before !== result) log.warn(`readyz: the ${engine} ${result === 'timed out' ? `did not answer within ${this.#timeoutMs} ms` : `check failed: ${reason}`}`);
    else if (result === 'ok' && before !== undefined && before !== 'ok') log.info(`readyz: the ${engine} answers again`);
    return result;
  }
}

/** 200 when ready, else 503; the body names the failed engines. */
export async function sendReadiness(res: ServerResponse, readiness: ReadinessCheck): Promise<void> {
  const r = await readiness.check();
  sendJson(res, r.ready ? 200 : 503, r);
}
