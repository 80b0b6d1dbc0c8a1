/**
 * A counter for the request path: `inc` finds its series by the label values
 * through nested Maps and adds to a plain number, where prom-client's Counter
 * would build a label string and validate the labels on every call. A series
 * is made in prom-client (and its labels checked) the first time it is
 * counted; the counts go to prom-client when the registry is read.
 */
import { Counter, type CounterConfiguration, type LabelValues } from 'prom-client';
import { LabelCells } from './label-cells.js';

interface Cell<T extends string> {
  labels: LabelValues<T>;
  /** Counted since prom-client was last told. */
  pending: number;
}

export class CellCounter<T extends string> {
  private readonly cells: LabelCells<T, Cell<T>>;
  private readonly counter: Counter<T>;
  private readonly labelled: boolean;

  constructor(config: Omit<CounterConfiguration<T>, 'collect' | 'enableExemplars'> & { labelNames: readonly T[] }) {
    // A series is made in prom-client (its labels checked) the first time it is counted.
    this.cells = new LabelCells(config.labelNames, (labels) => {
      this.counter.inc(labels, 0);
      return { labels: { ...labels }, pending: 0 };
    });
    this.labelled = config.labelNames.length > 0;
    const cells = this.cells.all;
    this.counter = new Counter<T>({
      ...config,
      collect() {
        for (const cell of cells) {
          if (cell.pending === 0) continue;
          this.inc(cell.labels, cell.pending);
          cell.pending = 0;
        }
      },
    });
  }

  /** Adds `value` (default 1) to the series of `labels`; throws, as prom-client does, for an unknown label or a negative or infinite value. */
  inc(labels: LabelValues<T>, value = 1): void {
    if (!(value >= 0) || value === Infinity) return this.counter.inc(labels, value); // prom-client says what is wrong with it
    if (!this.labelled) return this.counter.inc(value);
    this.cells.get(labels).pending += value;
  }
}
