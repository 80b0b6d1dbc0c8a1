/**
 * cli/ — the parts of the `breakwater` command (../cli.ts, which picks the
 * subcommand and runs it): how it is called (this file: the usage text and
 * the parsing of flags every subcommand shares) and the check-policy
 * subcommand (check-policy.ts).
 */
import { parseDuration } from '../api/index.js';
import { parseHostPort, type HostPort } from '../lib/index.js';

export const USAGE = `usage:
  breakwater sidecar --policy FILE [--listen 127.0.0.1:15001] [--admin 0.0.0.0:15021] [--state-file FILE]
  breakwater sidecar --controller URL[,URL...] --pod-name NAME [--token-file F] [--ca-file F] [--config-cache F] [--state-file F] [--listen ...] [--admin ...]
  breakwater sidecar --demo        (embedded policy and a built-in mock upstream)
  breakwater check-policy FILE [--kubeconfig F [--namespace NS]]   (with a kubeconfig: checks the Secrets it names)
  breakwater controller --tls-cert FILE --tls-key FILE [--config-listen 0.0.0.0:15443] [--health-listen 0.0.0.0:15080] [--kubeconfig FILE] [--resync 30s] [--status-refresh 5m] [--secret-poll 5s] [--leader-election-namespace NS] [--lease-duration 15s] [--identity NAME]
             [--sidecar-image IMAGE --advertise-url URL --ca-file FILE [--webhook-listen 0.0.0.0:15444] [--webhook-client-ca FILE]]
             (and serve the injection webhook on its own port; with --webhook-client-ca, only to callers whose client certificate that CA signed)
  breakwater mock-upstream [--listen 127.0.0.1:15099] [--fail-percent N] [--fingerprint-credentials]`;

export function hostPort(text: string, flag: string): HostPort {
  const at = parseHostPort(text);
  if (!at) throw new UsageError(`${flag} must be HOST:PORT, got "${text}"`);
  return at;
}

/** A command line that does not say what to do: its message is printed with the usage, and the exit code is 2. */
export class UsageError extends Error {}

/** A duration flag in milliseconds: a duration (such as 30s or 500ms) of at least `min` ms, or a usage error. */
export function durationFlag(text: string, flag: string, min = 1): number {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch {
    throw new UsageError(`${flag} must be a duration such as 30s or 500ms, got "${text.slice(0, 64)}"`);
  }
  if (ms < min) throw new UsageError(`${flag} must be ${min === 1 ? 'more than 0' : `at least ${min / 1000}s`}, got "${text}"`);
  return ms;
}
