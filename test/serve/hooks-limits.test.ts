/**
 * What an unauthenticated sender can make the server hold: a webhook body over
 * WEBHOOK_BODY_LIMIT is refused even when correctly signed, and no more than
 * WEBHOOK_READS deliveries are read at once (the next is 429 with Retry-After);
 * a delivery whose sender went away gives its slot back. Real HTTP, real sockets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startTestServer } from './helpers.js';
import { deliver, githubHeaders, hmacHex } from './webhook-support.js';
import { WEBHOOK_BODY_LIMIT, WEBHOOK_READS } from '../../src/serve/hooks.js';

const SECRET = 'limits-secret';
process.env.SNAPCLONE_GITHUB_WEBHOOK_SECRET = SECRET;

test('a signed webhook body over the limit is refused unread past the limit; a ping under it is answered', async () => {
  assert.ok(WEBHOOK_BODY_LIMIT <= 5 * 2 ** 20, 'the limit is no longer a few MiB');
  const s = await startTestServer();
  try {
    const big = JSON.stringify({ zen: 'x'.repeat(WEBHOOK_BODY_LIMIT), hook_id: 1 });
    const r = await deliver(s.url, 'github', big, githubHeaders('ping', SECRET, big));
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error, /larger than/);
    const small = JSON.stringify({ zen: 'hi', hook_id: 1 });
    assert.equal((await deliver(s.url, 'github', small, githubHeaders('ping', SECRET, small))).status, 200);
  } finally {
    await s.close();
  }
});

/** Open a delivery that sends its headers and part of its body, then stalls. */
function stalledDelivery(base: string, body: string): Promise<Socket> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(port), hostname, () => {
      sock.write(
        `POST /v1/hooks/github HTTP/1.1\r\nhost: ${hostname}\r\ncontent-type: application/json\r\nx-github-event: ping\r\n` +
          `x-hub-signature-256: sha256=${hmacHex(SECRET, body)}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n` +
          body.slice(0, 10),
        () => resolve(sock),
      );
    });
    sock.on('error', reject);
  });
}

test(`at most ${WEBHOOK_READS} webhook bodies are read at once: the next delivery is 429 with Retry-After; a sender gone frees its slot`, async () => {
  const s = await startTestServer();
  const body = JSON.stringify({ zen: 'slow', hook_id: 2 });
  const stalled: Socket[] = [];
  try {
    for (let i = 0; i < WEBHOOK_READS; i++) stalled.push(await stalledDelivery(s.url, body));
    // Until the server has started reading all the stalled ones, a delivery may still get a slot.
    let refused: Response | null = null;
    for (let i = 0; i < 100; i++) {
      const r = await fetch(`${s.url}/v1/hooks/github`, { method: 'POST', headers: { 'content-type': 'application/json', ...githubHeaders('ping', SECRET, body) }, body });
      if (r.status === 429) {
        refused = r;
        break;
      }
      assert.equal(r.status, 200, await r.text());
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.ok(refused, `${WEBHOOK_READS} stalled deliveries did not stop a further one`);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    await refused.text();
    for (const sock of stalled) sock.destroy();
    stalled.length = 0;
    let answered = 0;
    for (let i = 0; i < 100 && answered !== 200; i++) {
      answered = (await deliver(s.url, 'github', body, githubHeaders('ping', SECRET, body))).status;
      if (answered !== 200) await new Promise((r) => setTimeout(r, 20)); // the server sees the closes asynchronously
    }
    assert.equal(answered, 200, 'the slots of deliveries whose senders went away were not given back');
  } finally {
    for (const sock of stalled) sock.destroy();
    await s.close();
  }
});
