// Idempotency keys: one per write, generated here unless the caller brings its own, and reused on every retry.

export const IDEMPOTENCY_KEY_LENGTH_MAX = 255;
const STEP_SUFFIX_LENGTH_MAX = ":release".length;
/** Longest key a reservation may be made under: its later steps append `:commit`, `:release`, … */
export const RESERVATION_KEY_LENGTH_MAX = IDEMPOTENCY_KEY_LENGTH_MAX - STEP_SUFFIX_LENGTH_MAX;

interface WebCrypto {
  randomUUID?: () => string;
  getRandomValues<T extends ArrayBufferView>(array: T): T;
}

// Node 18 exposes Web Crypto only through its module; browsers, edge runtimes and Node >= 19 have it global.
// The specifier is a variable so that bundlers for the browser leave it alone.
const NODE_CRYPTO = "node:crypto";

async function webCrypto(): Promise<WebCrypto> {
  const global = (globalThis as { crypto?: WebCrypto }).crypto;
  if (global !== undefined) return global;
  const nodeCrypto = (await import(NODE_CRYPTO)) as { webcrypto: WebCrypto };
  return nodeCrypto.webcrypto;
}

/** A fresh random key (a UUID v4). */
export async function newIdempotencyKey(): Promise<string> {
  const crypto = await webCrypto();
  if (crypto.randomUUID !== undefined) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function checkIdempotencyKey(key: string, lengthMax: number = IDEMPOTENCY_KEY_LENGTH_MAX): string {
  if (key.length < 1 || key.length > lengthMax || !/^[\x20-\x7e]+$/.test(key)) {
    throw new TypeError(`an Idempotency-Key is 1-${lengthMax} printable ASCII characters`);
  }
  return key;
}

/** The key of a later step (`commit`, `release`) of the reservation made under `reservationKey`. */
export function stepKey(reservationKey: string, step: string): string {
  return checkIdempotencyKey(`${reservationKey}:${step}`);
}
