// One request to the API: auth, JSON, Idempotency-Key, per-attempt timeout, the caller's AbortSignal, and retries.

import { ConnectionFailedError, QuotaflowError, ServerError, errorFor } from "./errors.js";
import { checkIdempotencyKey, newIdempotencyKey } from "./keys.js";
import { isRetryableResponse, parseRetryAfterMs, retryDelayMs, type RetryPolicy } from "./retry.js";
import { fromWire, toWire } from "./wire.js";

export type Method = "GET" | "POST" | "PUT" | "DELETE";
export type UserTokenSource = string | (() => string | Promise<string>);
export type Fetch = (input: string, init: RequestInit) => Promise<Response>;

/** Options every method takes last. */
export interface RequestOptions {
  /** Cancels the request and its retries; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** A write's Idempotency-Key (generated when left out); the same key is sent on every retry. */
  idempotencyKey?: string;
  /** Per attempt, in milliseconds (default: the client's). */
  timeoutMs?: number;
}

export interface Call {
  method: Method;
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown; // camelCase; converted to the API's JSON
  /** Changes state: carries an Idempotency-Key. */
  write: boolean;
  /** Hand back the response's JSON as it came (its keys are data). */
  verbatim?: boolean;
}

export interface Connection {
  baseUrl: string;
  apiKey: string;
  userToken: UserTokenSource | undefined;
  fetch: Fetch;
  timeoutMs: number;
  retry: RetryPolicy;
  headers: Record<string, string>;
}

export interface Reply<T> {
  status: number;
  body: T;
  idempotencyKey: string | undefined;
}

export async function send<T>(connection: Connection, call: Call, options: RequestOptions = {}): Promise<Reply<T>> {
  const idempotencyKey = call.write
    ? checkIdempotencyKey(options.idempotencyKey ?? (await newIdempotencyKey()))
    : undefined;
  const headers = await requestHeaders(connection, call, idempotencyKey);
  const url = connection.baseUrl + call.path + queryString(call.query);
  const body = call.body === undefined ? null : JSON.stringify(toWire(call.body));
  const timeoutMs = options.timeoutMs ?? connection.timeoutMs;
  for (let attempt = 0; ; attempt += 1) {
    const outcome = await attemptOnce(connection.fetch, url, { method: call.method, headers, body }, timeoutMs, options.signal);
    if (!(outcome instanceof Error)) {
      const retryAfterMs = parseRetryAfterMs(outcome.headers.get("retry-after"));
      const payload = parseJson(outcome.text);
      if (outcome.ok) {
        if (payload instanceof NotJson) {
          throw new ServerError(`${call.method} ${call.path}: the response is not JSON`, { status: outcome.status });
        }
        return { status: outcome.status, body: (call.verbatim ? payload : fromWire(payload)) as T, idempotencyKey };
      }
      const error = apiError(call, outcome, payload, retryAfterMs);
      const delayMs = isRetryableResponse(outcome.status, error.code, retryAfterMs)
        ? retryDelayMs(connection.retry, attempt, retryAfterMs)
        : undefined;
      if (delayMs === undefined) throw error;
      await sleep(delayMs, options.signal);
    } else {
      const delayMs = retryDelayMs(connection.retry, attempt, undefined);
      if (delayMs === undefined) {
        throw new ConnectionFailedError(`${call.method} ${call.path}: ${describe(outcome)}`, { cause: outcome });
      }
      await sleep(delayMs, options.signal);
    }
  }
}

async function requestHeaders(connection: Connection, call: Call, idempotencyKey: string | undefined) {
  const headers: Record<string, string> = {
    ...connection.headers,
    Authorization: `Bearer ${connection.apiKey}`,
    Accept: "application/json",
  };
  if (call.body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey !== undefined) headers["Idempotency-Key"] = idempotencyKey;
  if (connection.userToken !== undefined) {
    const token = typeof connection.userToken === "string" ? connection.userToken : await connection.userToken();
    headers["X-Quotaflow-User-Token"] = token;
  }
  return headers;
}

/** A response, or the failure that stood for one (network error, timeout). The caller's abort is thrown. */
async function attemptOnce(
  fetchImpl: Fetch,
  url: string,
  init: RequestInit,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<Answer | Error> {
  signal?.throwIfAborted();
  const controller = new AbortController();
  const timedOut = new Error(`no response within ${timeoutMs} ms`);
  const timer = setTimeout(() => controller.abort(timedOut), timeoutMs);
  const forwardAbort = () => controller.abort(signal?.reason);
  signal?.addEventListener("abort", forwardAbort, { once: true });
  try {
    const response = await fetchImpl(url, { ...init, signal: controller.signal });
    // Read the body inside the timeout too: a server that sends headers and then stalls is no answer.
    return { status: response.status, ok: response.ok, headers: response.headers, text: await response.text() };
  } catch (failure) {
    if (signal?.aborted) throw signal.reason;
    return controller.signal.aborted ? timedOut : failure instanceof Error ? failure : new Error(String(failure));
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", forwardAbort);
  }
}

interface Answer {
  status: number;
  ok: boolean;
  headers: Headers;
  text: string;
}

function parseJson(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return new NotJson(text);
  }
}

class NotJson {
  constructor(readonly text: string) {}
}

function apiError(call: Call, response: Answer, payload: unknown, retryAfterMs: number | undefined): QuotaflowError {
  const retryAfter = retryAfterMs === undefined ? {} : { retryAfterSeconds: retryAfterMs / 1000 };
  const error = isRecord(payload) && isRecord(payload["error"]) ? payload["error"] : undefined;
  if (error === undefined) {
    const message = `${call.method} ${call.path}: HTTP ${response.status}, not an API error body`;
    if (response.status < 500) return errorFor(response.status, undefined, message, retryAfter);
    return new ServerError(message, { status: response.status, ...retryAfter });
  }
  const code = typeof error["code"] === "string" ? error["code"] : undefined;
  const message = typeof error["message"] === "string" ? error["message"] : `HTTP ${response.status}`;
  const details = isRecord(error["details"]) ? fromWire<Record<string, unknown>>(error["details"]) : {};
  return errorFor(response.status, code, message, { details, ...retryAfter });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function queryString(query: Call["query"]): string {
  if (query === undefined) return "";
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined) params.set(name, String(value));
  }
  const text = params.toString();
  return text === "" ? "" : `?${text}`;
}

/** Waits `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function describe(failure: Error): string {
  const cause = (failure as { cause?: unknown }).cause;
  return cause instanceof Error ? `${failure.message} (${cause.message})` : failure.message;
}

/** A path segment, escaped. */
export function segment(value: string): string {
  return encodeURIComponent(value);
}
