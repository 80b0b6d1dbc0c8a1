/**
 * An estimate of the memory an ended span holds, for the export queue's
 * byte bound (batch-processor.ts): a fixed cost for the span object, its
 * context, times and status, plus its name, attributes, events and links,
 * strings at two bytes a character (the worst V8 stores). It errs high (a
 * request's span with a dozen attributes holds about 1 KiB of heap and is
 * estimated at about 2): the bound is there so that nothing an app sends can
 * grow the sidecar.
 */
import type { Attributes } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';

/** A span with no attribute, event or link: the SDK's objects. */
const SPAN_BYTES = 1024;
/** An attribute's entry, an event's or a link's object, beside their strings. */
const ENTRY_BYTES = 48;

function valueBytes(value: unknown): number {
  if (typeof value === 'string') return 2 * value.length;
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + ENTRY_BYTES + valueBytes(v), 0);
  return 8;
}

function attributesBytes(attributes: Attributes | undefined): number {
  let n = 0;
  for (const key in attributes) n += ENTRY_BYTES + 2 * key.length + valueBytes(attributes[key]);
  return n;
}

export function spanBytes(span: ReadableSpan): number {
  let n = SPAN_BYTES + 2 * (span.name?.length ?? 0) + attributesBytes(span.attributes);
  for (const event of span.events ?? []) n += ENTRY_BYTES + 2 * event.name.length + attributesBytes(event.attributes);
  for (const link of span.links ?? []) n += ENTRY_BYTES + attributesBytes(link.attributes);
  return n + 2 * (span.status?.message?.length ?? 0);
}
