// When to send a request again, and after how long. A write is retried with the same Idempotency-Key, so the
// server applies it at most once however often it is sent.

export interface RetryPolicy {
  /** Attempts in all, the first included (default 4). 1 turns retries off. */
  attemptsMax: number;
  /** Backoff: full jitter over min(backoffMaxMs, backoffBaseMs × 2^attempt). */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Asked by `Retry-After` to wait longer than this, the client gives up instead. */
  retryAfterMaxMs: number;
}

export const RETRY_POLICY_DEFAULT: RetryPolicy = {
  attemptsMax: 4,
  backoffBaseMs: 250,
  backoffMaxMs: 8_000,
  retryAfterMaxMs: 60_000,
};

// 502/504: a gateway lost the answer; the Idempotency-Key makes sending again safe.
const RETRYABLE_STATUSES = new Set([429, 502, 503, 504]);

/** A response worth sending again: 429/502/503/504, and the contract's in-flight duplicate (409 `conflict` + Retry-After). */
export function isRetryableResponse(status: number, code: string | undefined, retryAfterMs: number | undefined): boolean {
  if (RETRYABLE_STATUSES.has(status)) return true;
  return status === 409 && code === "conflict" && retryAfterMs !== undefined;
}

/** How long to wait after attempt `attempt` (0-based) before the next; undefined: stop. */
export function retryDelayMs(policy: RetryPolicy, attempt: number, retryAfterMs: number | undefined): number | undefined {
  if (attempt + 1 >= policy.attemptsMax) return undefined;
  if (retryAfterMs !== undefined) return retryAfterMs <= policy.retryAfterMaxMs ? retryAfterMs : undefined;
  const ceilingMs = Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** attempt);
  return Math.random() * ceilingMs;
}

/** `Retry-After` in milliseconds: delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfterMs(value: string | null, nowMs: number = Date.now()): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const when = Date.parse(value);
  return Number.isNaN(when) ? undefined : Math.max(0, when - nowMs);
}
