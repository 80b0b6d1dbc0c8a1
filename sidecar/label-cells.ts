/**
 * The series of a metric found by their label values through nested Maps, one
 * level per label, so the request path's counters and histograms
 * (cell-counter.ts, cell-histogram.ts) make no label string per call.
 */
import type { LabelValues } from 'prom-client';

type Level = Map<unknown, unknown>;

export class LabelCells<T extends string, C> {
  private root: Level = new Map();
  /** Every cell, in the order each was made. */
  readonly all: C[] = [];

  constructor(
    private readonly names: readonly T[],
    /** Makes the cell of labels seen for the first time (it may throw: then nothing is kept). */
    private readonly make: (labels: LabelValues<T>) => C,
  ) {}

  /** The cell of `labels`, made the first time they are seen. */
  get(labels: LabelValues<T>): C {
    let level = this.root;
    const last = this.names.length - 1;
    for (let i = 0; i < last; i++) {
      const key = labels[this.names[i]!];
      let next = level.get(key) as Level | undefined;
      if (!next) level.set(key, (next = new Map()));
      level = next;
    }
    const key = labels[this.names[last]!];
    let cell = level.get(key) as C | undefined;
    if (cell === undefined) {
      cell = this.make(labels);
      level.set(key, cell);
      this.all.push(cell);
    }
    return cell;
  }

  clear(): void {
    this.root = new Map();
    this.all.length = 0;
  }
}
