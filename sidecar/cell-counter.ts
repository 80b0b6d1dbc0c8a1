/**
 * A counter for the request path: `inc` finds its series by the label values
 * through nested Maps and adds to a plain number, where prom-client's Counter
 * would build a label string and validate the labels on every call. A series
 * is made in prom-client (and its labels checked) the first time it is
 * counted; the counts go to prom-client when the registry is read.
 */
import { Counter, type CounterConfiguration, type LabelValues } from 'prom-client';

interface Cell<T extends string> {
  labels: LabelValues<T>;
  /** Counted since prom-client was last told. */
  pending: number;
}

type Level = Map<unknown, Level | Cell<string>>;

export class CellCounter<T extends string> {
  private readonly names: readonly T[];
  private readonly root: Level = new Map();
  private readonly cells: Cell<T>[] = [];
  private readonly counter: Counter<T>;

  constructor(config: Omit<CounterConfiguration<T>, 'collect' | 'enableExemplars'> & { labelNames: readonly T[] }) {
    this.names = config.labelNames;
    const cells = this.cells;
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
    const last = this.names.length - 1;
    if (last < 0) return this.counter.inc(value);
    let level = this.root;
    for (let i = 0; i < last; i++) {
      const key = labels[this.names[i]!];
      let next = level.get(key) as Level | undefined;
      if (!next) level.set(key, (next = new Map()));
      level = next;
    }
    const key = labels[this.names[last]!];
    let cell = level.get(key) as Cell<T> | undefined;
    if (!cell) {
      this.counter.inc(labels, 0); // the series exists from its first count on, and its labels are checked once
      cell = { labels: { ...labels }, pending: 0 };
      level.set(key, cell as Cell<string>);
      this.cells.push(cell);
    }
    cell.pending += value;
  }
}
