/**
 * `breakwater controller` refuses timer periods that would spin or not be
 * honoured (red team 26, F9): zero, or not a duration, for --resync,
 * --secret-poll and --lease-duration, and a --status-refresh under a second,
 * with a usage error (exit 2) before it connects to anything.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cliResult } from '../support/sidecar-process.js';

describe('breakwater controller\'s duration flags', () => {
  it('refuses zero, a sub-second status refresh, and what is no duration, naming the flag', async () => {
    const cases: [string[], RegExp][] = [
      [['--secret-poll', '0s'], /^--secret-poll must be more than 0, got "0s"/],
      [['--resync', '0ms'], /^--resync must be more than 0/],
      [['--lease-duration', '0s'], /^--lease-duration must be more than 0/],
      [['--status-refresh', '0s'], /^--status-refresh must be at least 1s/],
      [['--status-refresh', '500ms'], /^--status-refresh must be at least 1s/],
      [['--secret-poll=-5s'], /^--secret-poll must be a duration such as 30s or 500ms, got "-5s"/],
    ];
    await Promise.all(
      cases.map(async ([flags, message]) => {
        const r = await cliResult(['controller', '--tls-cert', 'cert.pem', '--tls-key', 'key.pem', '--kubeconfig', '/nonexistent', ...flags]);
        assert.equal(r.code, 2, `${flags.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, message);
        assert.match(r.stderr, /usage:/);
      }),
    );
  });
});
