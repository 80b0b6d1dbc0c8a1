/** Polls until `ok(read())` holds and returns that value, or throws naming `what` and the last value once `ms` have passed. */
export async function until<T>(what: string, read: () => T | Promise<T>, ok: (value: T) => boolean = Boolean, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)?.slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
