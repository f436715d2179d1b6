/**
 * When git's stored credentials may be handed to a snapclone server: the host comes from the
 * server's 401, so a credential for it goes only to an https upstream (or one on loopback) and
 * only through a server reached over https (or on loopback), never in clear across a network.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gitCredentialRefusal, upstreamCredential } from '../../src/client/upstream-credential.js';
import { SnapError } from '../../src/util/errors.js';

const https = { protocol: 'https' as const, host: 'git.example.com', path: 'team/x.git' };

test('https upstream through an https or loopback server: allowed', () => {
  assert.equal(gitCredentialRefusal(https, 'https://snapclone.example.com'), null);
  assert.equal(gitCredentialRefusal(https, 'http://127.0.0.1:8080'), null);
  assert.equal(gitCredentialRefusal(https, 'http://localhost:8080'), null);
  assert.equal(gitCredentialRefusal(https, 'http://[::1]:8080'), null);
  assert.equal(gitCredentialRefusal({ protocol: 'http', host: '127.0.0.1:3000', path: 'x.git' }, 'http://127.0.0.1:1'), null);
});

test('a plain-http upstream beyond loopback, or a plain-http server beyond loopback: refused, saying why', () => {
  assert.match(gitCredentialRefusal({ protocol: 'http', host: 'github.com', path: 'a/b.git' }, 'https://s.example.com') ?? '', /only for https upstreams/);
  assert.match(gitCredentialRefusal(https, 'http://snapclone.example.com') ?? '', /plain http/);
  assert.match(gitCredentialRefusal(https, 'http://10.0.0.5:8080') ?? '', /plain http/);
});

test('a refused target fails with unauthorized before git is asked; the token is still presented', async () => {
  // No git helper could answer here (empty environment): the refusal must come first.
  await assert.rejects(upstreamCredential(https, 'http://snapclone.example.com', { PATH: process.env.PATH }), (e: unknown) => e instanceof SnapError && e.code === 'unauthorized' && /SNAPCLONE_UPSTREAM_TOKEN/.test(e.message));
  const tok = await upstreamCredential(https, 'http://snapclone.example.com', { SNAPCLONE_UPSTREAM_TOKEN: 't0k' });
  assert.equal(tok?.header, 'Bearer t0k');
});
