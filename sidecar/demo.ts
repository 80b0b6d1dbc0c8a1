/**
 * `breakwater sidecar --demo`: the sidecar on an embedded policy in front of the
 * built-in mock upstream, which fails a share of requests so retries and the
 * breaker can be watched with no API key and no model server.
 */
import { loadPolicyText, type RuntimeConfig } from './config/index.js';
import { MockUpstream } from './mock-upstream/mock-upstream.js';

export function demoPolicy(upstreamUrl: string): string {
  return `# Embedded demo policy: one OpenAI-shaped upstream (the built-in mock).
upstreams:
  - name: demo
    url: ${upstreamUrl}
    api: openai
    timeouts: {total: 30s, firstByte: 5s}
    retry:
      attempts: 3
      backoff: {base: 100ms, max: 2s}
    circuitBreaker:
      consecutiveFailures: 5
      openFor: 10s
`;
}

export async function startDemoUpstream(failPercent = 20): Promise<{ upstream: MockUpstream; config: RuntimeConfig }> {
  const upstream = await MockUpstream.start({ failPercent, failure: { kind: 'status', status: 503 } });
  const loaded = loadPolicyText(demoPolicy(upstream.url), 'embedded demo policy', 'demo');
  if (!loaded.ok) throw new Error(loaded.error);
  return { upstream, config: loaded.config };
}
