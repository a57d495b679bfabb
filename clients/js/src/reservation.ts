// A held reservation: draw on it, grow it, extend it, then commit what was used or release it.
// Commit and release send keys derived from the reservation's own Idempotency-Key, so re-running a whole
// reserve -> commit step under the same key replays it instead of charging twice.

import { ReservationExpiredError, ReservationNotPendingError } from "./errors.js";
import { stepKey } from "./keys.js";
import type { RequestOptions } from "./transport.js";
import type {
  Amounts,
  CommitResult,
  DrawResult,
  Line,
  ReleaseResult,
  ReservationInfo,
  ReservationStatus,
  UsageLines,
} from "./types.js";

/** What a reservation handle needs from its client (the client's own methods by reservation id). */
export interface ReservationCalls {
  commitReservation(id: string, lines: UsageLines, options?: RequestOptions): Promise<CommitResult>;
  releaseReservation(id: string, options?: RequestOptions): Promise<ReleaseResult>;
  drawReservation(id: string, lines: UsageLines, options?: DrawOptions): Promise<DrawResult>;
  increaseReservation(id: string, lines: Amounts, options?: RequestOptions): Promise<ReservationInfo>;
  extendReservation(id: string, ttlSeconds: number, options?: RequestOptions): Promise<ReservationInfo>;
  getReservation(id: string, options?: RequestOptions): Promise<ReservationInfo>;
}

export interface DrawOptions extends RequestOptions {
  properties?: Record<string, string | number | boolean | null>;
}

export class Reservation {
  readonly id: string;
  readonly userId: string;
  /** What was held at creation plus increases: meter -> amount. */
  lines: Amounts;
  expiresAt: string;
  /** `pending` until this handle commits or releases it. */
  status: ReservationStatus;
  /** The Idempotency-Key the reservation was made under. */
  readonly idempotencyKey: string;
  readonly #calls: ReservationCalls;

  constructor(calls: ReservationCalls, info: ReservationInfo, idempotencyKey: string) {
    this.#calls = calls;
    this.id = info.reservationId;
    this.userId = info.userId;
    this.lines = amounts(info.lines);
    this.expiresAt = info.expiresAt;
    this.status = info.status;
    this.idempotencyKey = idempotencyKey;
  }

  get isOpen(): boolean {
    return this.status === "pending";
  }

  /** Record what was used (`{ tokens: 800 }`); the rest of the hold comes back. A meter left out commits 0. */
  async commit(lines: UsageLines = {}, options: RequestOptions = {}): Promise<CommitResult> {
    const key = options.idempotencyKey ?? stepKey(this.idempotencyKey, "commit");
    const result = await this.#calls.commitReservation(this.id, lines, { ...options, idempotencyKey: key });
    this.status = result.status;
    return result;
  }

  /** Give the whole hold back (what is left of it, after draws). */
  async release(options: RequestOptions = {}): Promise<ReleaseResult> {
    const key = options.idempotencyKey ?? stepKey(this.idempotencyKey, "release");
    const result = await this.#calls.releaseReservation(this.id, { ...options, idempotencyKey: key });
    this.status = result.status;
    return result;
  }

  /** Record usage that happened and keep the reservation open (an agent's step, a long stream's chunk). */
  draw(lines: UsageLines, options: DrawOptions = {}): Promise<DrawResult> {
    return this.#calls.drawReservation(this.id, lines, options);
  }

  /** Hold more, guarded like a new reserve. */
  async increase(lines: Amounts, options: RequestOptions = {}): Promise<ReservationInfo> {
    const info = await this.#calls.increaseReservation(this.id, lines, options);
    this.lines = amounts(info.lines);
    this.expiresAt = info.expiresAt;
    return info;
  }

  /** A heartbeat for long runs: expires `ttlSeconds` from now. */
  async extend(ttlSeconds: number, options: RequestOptions = {}): Promise<ReservationInfo> {
    const info = await this.#calls.extendReservation(this.id, ttlSeconds, options);
    this.expiresAt = info.expiresAt;
    return info;
  }

  /** The reservation as the server sees it now (`expired` once past `expiresAt`). */
  async refresh(options: RequestOptions = {}): Promise<ReservationInfo> {
    const info = await this.#calls.getReservation(this.id, options);
    this.status = info.status;
    this.expiresAt = info.expiresAt;
    return info;
  }
}

/** Release on the way out of a failed callback; a reservation that already ended needs nothing. */
export async function releaseQuietly(reservation: Reservation, options: RequestOptions): Promise<void> {
  if (!reservation.isOpen) return;
  try {
    await reservation.release(options);
  } catch (error) {
    if (error instanceof ReservationExpiredError || error instanceof ReservationNotPendingError) return;
    // The callback's own error is the one to see; an unreleased hold returns when it expires.
  }
}

function amounts(lines: Line[]): Amounts {
  return Object.fromEntries(lines.map((line) => [line.meter, line.amount]));
}
