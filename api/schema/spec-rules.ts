/**
 * The spec's cross-field CEL rules (SPEC_RULES), which only the whole spec
 * can check: every fallback tier and hedge names another upstream of the
 * policy that speaks the same api, every fault names an upstream, a cost
 * budget has prices to count with, and a limit scoped to the fleet (and a
 * shared answer cache) has a shared store to count in. A rule over a list says in its message
 * which item is bad, by index and value. The same rules are checked locally
 * in api/validate-policy.ts.
 */
import { hasCost, type CelRule } from './shared.js';

/*
 * The spec-level rules and their messages use only the CEL that Kubernetes 1.29
 * (the oldest release the chart supports) takes in a new CRD: CEL as of 1.28, so
 * no format(), two-variable comprehensions or flatten(). Nor string(int) or join():
 * the API server's cost estimate of those has no bound. A message finds the first
 * bad item with map(bad).indexOf(true) and spells its index from a table.
 */
type Cel = string;
/** CEL: an upstream's api, as written or by default. */
const celApi = (u: Cel) => `(has(${u}.api) ? ${u}.api : 'openai')`;
/** CEL: index `i` (below 32, as every list here is) in decimal. */
const celIndex = (i: Cel) => `[${Array.from({ length: 32 }, (_, n) => `'${n}'`).join(', ')}][${i}]`;
/** CEL: the index of the first item `x` of `list` for which `bad` holds. */
const firstIndex = (list: Cel, x: string, bad: Cel) => `${list}.map(${x}, ${bad}).indexOf(true)`;

/** Upstream `u`'s fallback tier `f` names this upstream itself or no upstream of the policy. */
const otherTier = (u: Cel, f: Cel) => `has(${f}.upstream) && (${f}.upstream == ${u}.name || !self.upstreams.exists(v, v.name == ${f}.upstream))`;
/** Upstream `u`'s fallback tier `f` names an upstream that speaks another api. */
const mixedTier = (u: Cel, f: Cel) => `has(${f}.upstream) && self.upstreams.exists(v, v.name == ${f}.upstream && ${celApi('v')} != ${celApi(u)})`;
const otherHedge = (u: Cel) => `has(${u}.hedge) && has(${u}.hedge.upstream) && (${u}.hedge.upstream == ${u}.name || !self.upstreams.exists(v, v.name == ${u}.hedge.upstream))`;
const mixedHedge = (u: Cel) => `has(${u}.hedge) && has(${u}.hedge.upstream) && self.upstreams.exists(v, v.name == ${u}.hedge.upstream && ${celApi('v')} != ${celApi(u)})`;

/**
 * CEL: `body` with the int `name` bound to `value`, computed once (a one-item map:
 * CEL as of 1.28 has no cel.bind). Only for ints: an object bound this way loses
 * the bounds of its strings, and the cost estimate with them.
 */
const celLet = (name: string, value: Cel, body: Cel) => `[${value}].map(${name}, ${body})[0]`;

/** CEL, for a message: what the upstream named `target` speaks, what `u` speaks, and `why` that is refused. */
const speaksOther = (u: Cel, target: Cel, why: string) =>
  celLet('k', firstIndex('self.upstreams', 'v', `v.name == ${target}`), `'speaks ' + ${celApi('self.upstreams[k]')} + ', and "' + ${u}.name + '" ' + ${celApi(u)} + ': ${why}'`);

/** A rule over every fallback tier; its message names the first bad one by index and value, then what `says` of it. */
function tierRule(bad: (u: Cel, f: Cel) => Cel, message: string, says: (u: Cel, f: Cel) => Cel) {
  const hasBadTier = `has(u.fallback) && u.fallback.exists(f, ${bad('u', 'f')})`;
  const [u, f] = ['self.upstreams[i]', 'self.upstreams[i].fallback[j]'];
  return {
    rule: `!self.upstreams.exists(u, ${hasBadTier})`,
    message,
    messageExpression: celLet(
      'i',
      firstIndex('self.upstreams', 'u', hasBadTier),
      celLet('j', firstIndex(`${u}.fallback`, 't', bad(u, 't')), `'spec.upstreams[' + ${celIndex('i')} + '].fallback[' + ${celIndex('j')} + '].upstream: "' + ${f}.upstream + '" ' + ${says(u, f)}`),
    ),
  };
}

/** A rule over every upstream's hedge; its message names the first bad one by index and value, then what `says` of it. */
function hedgeRule(bad: (u: Cel) => Cel, message: string, says: (u: Cel) => Cel) {
  const u = 'self.upstreams[i]';
  return {
    rule: `!self.upstreams.exists(u, ${bad('u')})`,
    message,
    messageExpression: celLet('i', firstIndex('self.upstreams', 'u', bad('u')), `'spec.upstreams[' + ${celIndex('i')} + '].hedge.upstream: "' + ${u}.hedge.upstream + '" ' + ${says(u)}`),
  };
}

/** The rules of the whole spec, in the order the CRD lists them. */
export const SPEC_RULES: CelRule[] = [
  tierRule(
    otherTier,
    'spec.upstreams[].fallback[].upstream must name another upstream of this policy',
    (u, f) => `(${f}.upstream == ${u}.name ? 'is this upstream itself: an upstream cannot fall back to itself' : 'names no upstream of this policy')`,
  ),
  tierRule(
    mixedTier,
    'spec.upstreams[].fallback[].upstream must speak the same api as its upstream: a chain speaks one API',
    (u, f) => speaksOther(u, `${f}.upstream`, "a chain speaks one API (the app\\'s request and answer are in it)"),
  ),
  hedgeRule(
    otherHedge,
    'spec.upstreams[].hedge.upstream must name another upstream of this policy',
    (u) => `(${u}.hedge.upstream == ${u}.name ? 'is this upstream itself: a hedge goes to another upstream' : 'names no upstream of this policy')`,
  ),
  hedgeRule(
    mixedHedge,
    'spec.upstreams[].hedge.upstream must speak the same api as its upstream',
    (u) => speaksOther(u, `${u}.hedge.upstream`, 'a hedge speaks the API of the upstream it hedges'),
  ),
  {
    rule: '!has(self.faults) || self.faults.all(f, self.upstreams.exists(u, u.name == f.upstream))',
    message: 'spec.faults[].upstream must name an upstream of this policy',
    messageExpression: celLet('i', firstIndex('self.faults', 'f', '!self.upstreams.exists(u, u.name == f.upstream)'), `'spec.faults[' + ${celIndex('i')} + '].upstream: "' + self.faults[i].upstream + '" names no upstream of this policy'`),
  },
  { rule: `${hasCost('self')} || self.upstreams.exists(u, has(u.prices) && size(u.prices) > 0)`, message: 'spec.budget.cost needs prices on at least one upstream' },
  { rule: `has(self.sharedState) || !${fleetScoped('self.budget')}`, message: 'spec.budget.scope: fleet needs spec.sharedState (the store the fleet counts in)' },
  fleetRule('budget'),
  fleetRule('rateLimit'),
  { rule: 'has(self.sharedState) || !has(self.cache) || !has(self.cache.shared) || !self.cache.shared', message: 'spec.cache.shared needs spec.sharedState (the Redis the answers are shared in)' },
  {
    rule: "!has(self.cache) || !has(self.cache.shared) || !self.cache.shared || !has(self.cache.redis) || !has(self.cache.redis.url) || self.cache.redis.url == ''",
    message: 'spec.cache.shared and spec.cache.redis.url name two Redis for one cache: set one of them',
  },
];

/** CEL: the limits object at `at` says scope fleet. */
function fleetScoped(at: Cel): Cel {
  return `(has(${at}) && has(${at}.scope) && ${at}.scope == 'fleet')`;
}

/** An upstream's `field` (budget or rateLimit) scoped to the fleet needs spec.sharedState; the message names the first such upstream. */
function fleetRule(field: 'budget' | 'rateLimit') {
  const bad = (u: Cel) => fleetScoped(`${u}.${field}`);
  return {
    rule: `has(self.sharedState) || !self.upstreams.exists(u, ${bad('u')})`,
    message: `spec.upstreams[].${field}.scope: fleet needs spec.sharedState (the store the fleet counts in)`,
    messageExpression: celLet('i', firstIndex('self.upstreams', 'u', bad('u')), `'spec.upstreams[' + ${celIndex('i')} + '].${field}.scope: fleet needs spec.sharedState (the store the fleet counts in)'`),
  };
}
