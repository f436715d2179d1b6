/** The freshness benchmark's pure parts: the webhook signature it sends and the phases it reads from the server log. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { phasesFromLog, signGithub } from '../../bench/freshness.js';

test('signGithub gives the X-Hub-Signature-256 of GitHub documentation example', () => {
  // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries (test values)
  assert.equal(signGithub("It's a Secret to Everybody", 'Hello, World!'), 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17');
});

test('phasesFromLog times each phase of one job until its next line, ignoring other jobs and levels', () => {
  const log = [
    '2026-12-01T10:00:00.000Z debug job 2: asking upstream',
    '2026-12-01T10:00:00.050Z debug job 12: asking upstream',
    '2026-12-01T10:00:00.100Z info GET /v1/repos/core/resolve 200',
    '2026-12-01T10:00:00.120Z debug job 2: fetching',
    '2026-12-01T10:00:01.120Z debug job 2: packing (refs/heads/main)',
    '2026-12-01T10:00:03.620Z debug job 2: succeeded in 3620 ms',
  ].join('\n');
  assert.deepEqual(phasesFromLog(log, 2), [
    { phase: 'asking upstream', ms: 120 },
    { phase: 'fetching', ms: 1000 },
    { phase: 'packing (refs/heads/main)', ms: 2500 },
  ]);
  assert.deepEqual(phasesFromLog(log, 3), []);
});
