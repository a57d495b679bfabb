// Typed errors: one class per API error code, each carrying the code, the HTTP status and the details.

export type ErrorDetails = Record<string, unknown>;

export interface ErrorInit {
  details?: ErrorDetails;
  status?: number;
  retryAfterSeconds?: number;
  code?: string;
  cause?: unknown;
}

/** Base of every error this package throws. `code` is the API's error code (`insufficient_quota`, …). */
export class QuotaflowError extends Error {
  readonly code: string;
  readonly status: number | undefined;
  readonly details: ErrorDetails;
  readonly retryAfterSeconds: number | undefined;

  constructor(message: string, init: ErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code ?? (new.target as unknown as { defaultCode: string }).defaultCode;
    this.status = init.status;
    this.details = init.details ?? {};
    this.retryAfterSeconds = init.retryAfterSeconds;
  }

  static readonly defaultCode: string = "error";
}

/** 400: `field` names the offending input (`lines[0].meter`, `Idempotency-Key`, …). */
export class InvalidRequestError extends QuotaflowError {
  static override readonly defaultCode = "invalid_request";
  get field(): string | undefined {
    return stringDetail(this.details, "field");
  }
}

export class UnauthenticatedError extends QuotaflowError {
  static override readonly defaultCode = "unauthenticated";
}

/** 402: `meter` has `available` left, less than `requested`. Nothing was held or recorded. */
export class InsufficientQuotaError extends QuotaflowError {
  static override readonly defaultCode = "insufficient_quota";
  get meter(): string {
    return stringDetail(this.details, "meter") ?? "";
  }
  get requested(): number {
    return integerDetail(this.details, "requested");
  }
  get available(): number {
    return integerDetail(this.details, "available");
  }
  /** Which level refused, for a user in an account: `"user"` or `"account"`. */
  get scope(): "user" | "account" | undefined {
    const scope = stringDetail(this.details, "scope");
    return scope === "user" || scope === "account" ? scope : undefined;
  }
  get accountId(): string | undefined {
    return stringDetail(this.details, "accountId");
  }
}

export class ForbiddenError extends QuotaflowError {
  static override readonly defaultCode = "forbidden";
}

export class NotFoundError extends QuotaflowError {
  static override readonly defaultCode = "not_found";
}

export class ConflictError extends QuotaflowError {
  static override readonly defaultCode = "conflict";
}

/** 409: the reservation was already committed or released. */
export class ReservationNotPendingError extends QuotaflowError {
  static override readonly defaultCode = "reservation_not_pending";
}

/** 409: the reservation passed its `expiresAt`; its holds go back on their own. */
export class ReservationExpiredError extends QuotaflowError {
  static override readonly defaultCode = "reservation_expired";
}

/** 409: this Idempotency-Key was used before with a different request. */
export class IdempotencyKeyReusedError extends QuotaflowError {
  static override readonly defaultCode = "idempotency_key_reused";
}

export class PayloadTooLargeError extends QuotaflowError {
  static override readonly defaultCode = "payload_too_large";
}

/** 429, once the retries ran out. `retryAfterSeconds` is the server's advice. */
export class ThrottledError extends QuotaflowError {
  static override readonly defaultCode = "throttled";
}

/** 503, once the retries ran out. `retryAfterSeconds` is the server's advice. */
export class UnavailableError extends QuotaflowError {
  static override readonly defaultCode = "unavailable";
}

/** A 5xx other than 503, or a response that is not the API's JSON (a proxy's error page, say). */
export class ServerError extends QuotaflowError {
  static override readonly defaultCode = "server_error";
}

/** No response once the retries ran out (refused, reset, timed out); `cause` holds the last failure. */
export class ConnectionFailedError extends QuotaflowError {
  static override readonly defaultCode = "connection_failed";
}

type ErrorClass = new (message: string, init?: ErrorInit) => QuotaflowError;

const ERRORS_BY_CODE: Record<string, ErrorClass> = Object.fromEntries(
  [
    InvalidRequestError,
    UnauthenticatedError,
    InsufficientQuotaError,
    ForbiddenError,
    NotFoundError,
    ConflictError,
    ReservationNotPendingError,
    ReservationExpiredError,
    IdempotencyKeyReusedError,
    PayloadTooLargeError,
    ThrottledError,
    UnavailableError,
  ].map((errorClass) => [errorClass.defaultCode, errorClass]),
);

const ERRORS_BY_STATUS: Record<number, ErrorClass> = {
  400: InvalidRequestError,
  401: UnauthenticatedError,
  402: InsufficientQuotaError,
  403: ForbiddenError,
  404: NotFoundError,
  409: ConflictError,
  413: PayloadTooLargeError,
  429: ThrottledError,
  503: UnavailableError,
};

/** The typed error of an API error response: by its code, else by its status. */
export function errorFor(status: number, code: string | undefined, message: string, init: ErrorInit): QuotaflowError {
  const errorClass =
    (code !== undefined ? ERRORS_BY_CODE[code] : undefined) ??
    ERRORS_BY_STATUS[status] ??
    (status >= 500 ? ServerError : QuotaflowError);
  return new errorClass(message, { ...init, status, ...(code !== undefined ? { code } : {}) });
}

function stringDetail(details: ErrorDetails, name: string): string | undefined {
  const value = details[name];
  return typeof value === "string" ? value : undefined;
}

function integerDetail(details: ErrorDetails, name: string): number {
  const value = details[name];
  return typeof value === "number" && Number.isSafeInteger(value) ? value : 0;
}
