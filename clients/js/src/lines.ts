// Amounts are checked here, before any request: JSON integers 0 … 2^53−1, at most 20 lines.

import type { Amounts, UsageLines } from "./types.js";

export const LINES_MAX = 20;

export function checkAmount(amount: unknown, what: string): number {
  if (typeof amount !== "number" || !Number.isSafeInteger(amount) || amount < 0) {
    throw new TypeError(`${what} must be an integer from 0 to 2^53-1, got ${String(amount)}`);
  }
  return amount;
}

export function amountLines(amounts: Amounts): { meter: string; amount: number }[] {
  return checkCount(Object.entries(amounts)).map(([meter, amount]) => ({ meter, amount: checkAmount(amount, meter) }));
}

export function usageLines(lines: UsageLines): unknown[] {
  return checkCount(Object.entries(lines)).map(([meter, value]) =>
    typeof value === "number" ? { meter, amount: checkAmount(value, meter) } : { meter, fromModel: value.fromModel },
  );
}

function checkCount<T>(entries: T[]): T[] {
  if (entries.length > LINES_MAX) throw new TypeError(`at most ${LINES_MAX} meters in one request`);
  return entries;
}
