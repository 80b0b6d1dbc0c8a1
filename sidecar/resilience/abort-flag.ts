/**
 * What a wait watches to learn that the app went away. An AbortSignal has
 * this shape; a request's own is an AbortFlag, a list of callbacks: an
 * AbortController gives every request an EventTarget, whose construction,
 * listeners and removal cost a plain request about 5 µs of CPU.
 */
export interface AbortWatch {
  readonly aborted: boolean;
  /** Calls `listener` once, when the abort happens (never, if it happened already: check `aborted` first). */
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

export class AbortFlag implements AbortWatch {
  aborted = false;
  private listeners: (() => void)[] | undefined;

  addEventListener(_type: 'abort', listener: () => void): void {
    if (!this.aborted) (this.listeners ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const at = this.listeners?.indexOf(listener) ?? -1;
    if (at >= 0) this.listeners!.splice(at, 1);
  }

  /** Sets the flag and calls each listener once, in the order added (one removed meanwhile is not called), even if one throws (the first throw is passed on). */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const listeners = this.listeners;
    if (!listeners) return;
    let thrown: { err: unknown } | undefined;
    for (let listener = listeners.shift(); listener; listener = listeners.shift()) {
      try {
        listener();
      } catch (err) {
        thrown ??= { err };
      }
    }
    this.listeners = undefined;
    if (thrown) throw thrown.err;
  }
}
