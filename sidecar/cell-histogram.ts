/**
 * A histogram for the request path, as CellCounter is a counter: `observe`
 * finds its series by the label values through nested Maps and counts into
 * that series' buckets, where prom-client's Histogram builds a label string
 * and checks the labels on every call. It registers itself with the registry
 * as a metric of its own and gives the registry what prom-client's
 * Histogram would when read: each series' cumulative buckets (`le`, then
 * `+Inf`), its sum and its count.
 */
import type { LabelValues, Metric, Registry } from 'prom-client';
import { LabelCells } from './label-cells.js';

interface Series<T extends string> {
  labels: LabelValues<T>;
  /** Observations per bucket (not cumulative); the last is +Inf. */
  buckets: number[];
  sum: number;
  count: number;
}

/** One line of the exposition, as prom-client's registry reads it. */
interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export interface CellHistogramConfiguration<T extends string> {
  name: string;
  help: string;
  labelNames: readonly T[];
  buckets: readonly number[];
  registers: Registry[];
}

export class CellHistogram<T extends string> {
  readonly name: string;
  readonly help: string;
  private readonly bounds: readonly number[];
  private readonly series: LabelCells<T, Series<T>>;

  constructor(config: CellHistogramConfiguration<T>) {
    if (config.labelNames.length === 0 || config.labelNames.some((n) => !LABEL_NAME.test(n) || n === 'le')) throw new Error(`${config.name}: label names must be valid and not "le"`);
    this.name = config.name;
    this.help = config.help;
    this.bounds = [...config.buckets].sort((a, b) => a - b);
    const names = config.labelNames;
    this.series = new LabelCells(names, (labels) => {
      const kept: LabelValues<T> = {};
      for (const name in labels) if (!names.includes(name as T)) throw new Error(`${this.name}: no label ${name}`);
      for (const name of names) if (labels[name] !== undefined) kept[name] = labels[name]; // as prom-client: an unset label is left out
      return { labels: kept, buckets: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 };
    });
    // The registry reads a metric through name, help, get() and reset(), as it reads its own (its typings say less).
    for (const registry of config.registers) registry.registerMetric(this as unknown as Metric<T>);
  }

  /** Counts `value` (a finite number) in the series of `labels` (checked to name only this histogram's labels when their series is made). */
  observe(labels: LabelValues<T>, value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`${this.name}: not a finite number: ${value}`);
    const series = this.series.get(labels);
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    series.buckets[i]!++;
    series.sum += value;
    series.count++;
  }

  /** What the registry reads: prom-client's shape for a histogram. */
  async get(): Promise<{ name: string; help: string; type: 'histogram'; values: Sample[]; aggregator: 'sum' }> {
    const values: Sample[] = [];
    for (const s of this.series.all) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += s.buckets[i]!;
        values.push({ labels: { le: i < this.bounds.length ? this.bounds[i]! : '+Inf', ...(s.labels as Record<string, string | number>) }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: s.labels as Record<string, string | number>, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: s.labels as Record<string, string | number>, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }

  reset(): void {
    this.series.clear();
  }
}
