/**
 * The conditions of a ResiliencePolicy's status, the reasons each gives
 * (metav1.Condition `type` and `reason`), and the reasons of the Events the
 * controller records. They are part of the contract: kubectl, alerts and
 * tools match them, so a value here never changes. The controller writes
 * them from here (controller/policy-status.ts, policy-facts.ts,
 * secret-values.ts, report-events.ts); the status schema is policy-status.ts.
 */

type ValueOf<T> = T[keyof T];

/** The condition types, in the order the status lists them. */
export const ConditionType = { Accepted: 'Accepted', Ready: 'Ready', Degraded: 'Degraded', SLOMet: 'SLOMet', SharedStateAvailable: 'SharedStateAvailable' } as const;
export type ConditionType = ValueOf<typeof ConditionType>;

/** Accepted False: a Secret the spec names cannot give its credential. */
export const SecretReason = { SecretNotFound: 'SecretNotFound', SecretNotAllowed: 'SecretNotAllowed', SecretValueUnusable: 'SecretValueUnusable' } as const;
export type SecretReason = ValueOf<typeof SecretReason>;

/** Why a policy is not accepted: its spec is invalid, or a Secret it names cannot be used. */
export const ProblemReason = { InvalidSpec: 'InvalidSpec', ...SecretReason } as const;
export type ProblemReason = ValueOf<typeof ProblemReason>;

/** Accepted: True when the spec is valid and its references resolve (Valid, or Conflicted), else the problem. */
export const AcceptedReason = { Valid: 'Valid', Conflicted: 'Conflicted', ...ProblemReason } as const;
export type AcceptedReason = ValueOf<typeof AcceptedReason>;

/** Ready: whether every targeted pod runs the current generation. */
export const ReadyReason = {
  NotAccepted: 'NotAccepted',
  ConfigRejected: 'ConfigRejected',
  NoTargetedPods: 'NoTargetedPods',
  AllPodsSynced: 'AllPodsSynced',
  PodsNotSynced: 'PodsNotSynced',
} as const;
export type ReadyReason = ValueOf<typeof ReadyReason>;

/** Degraded: whether a targeted pod has an open circuit breaker. */
export const DegradedReason = { BreakersOpen: 'BreakersOpen', Healthy: 'Healthy' } as const;
export type DegradedReason = ValueOf<typeof DegradedReason>;

/** SLOMet: whether every SLI with events meets its objective. */
export const SloMetReason = { NoTraffic: 'NoTraffic', BelowObjective: 'BelowObjective', WithinObjectives: 'WithinObjectives' } as const;
export type SloMetReason = ValueOf<typeof SloMetReason>;

/** SharedStateAvailable (a policy with spec.sharedState): whether the targeted pods reach the shared store their fleet limits are counted in. */
export const SharedStateReason = { StoreAvailable: 'StoreAvailable', StoreUnavailable: 'StoreUnavailable', NoReports: 'NoReports' } as const;
export type SharedStateReason = ValueOf<typeof SharedStateReason>;

/** The reasons of the Events the controller records on a policy and its pods. */
export const EventReason = { BreakerOpened: 'BreakerOpened', ConfigRejected: 'ConfigRejected' } as const;
export type EventReason = ValueOf<typeof EventReason>;
