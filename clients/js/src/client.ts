// Every route of the API v1 as a method. Writes carry an Idempotency-Key and are retried under it.

import { amountLines, checkAmount, usageLines } from "./lines.js";
import { RESERVATION_KEY_LENGTH_MAX, checkIdempotencyKey, newIdempotencyKey } from "./keys.js";
import { Reservation, releaseQuietly, type DrawOptions, type ReservationCalls } from "./reservation.js";
import { RETRY_POLICY_DEFAULT, type RetryPolicy } from "./retry.js";
import { Verbatim } from "./wire.js";
import { QuotaflowError } from "./errors.js";
import { segment, send, sleep, type Call, type Connection, type Fetch, type RequestOptions, type UserTokenSource } from "./transport.js";
import type * as T from "./types.js";

export const TIMEOUT_MS_DEFAULT = 10_000;
const ANALYTICS_POLLS_MAX = 60;
const ANALYTICS_POLL_INTERVAL_MS = 1_000;

interface AnalyticsReply {
  rows?: ({ window_start: unknown } & Record<string, unknown>)[];
  query_id?: unknown;
}

export interface ClientOptions {
  /** A tenant's secret key (`qf_sk_…`), or the admin key for `createTenant`. Default: QUOTAFLOW_API_KEY. */
  apiKey?: string;
  /** Where the API is, e.g. `https://api.example.com`. Default: QUOTAFLOW_URL. */
  baseUrl?: string;
  /** Per attempt, in milliseconds (default 10 s). */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** A fetch of your own (a proxy's, a test's); default: the global one. */
  fetch?: Fetch;
  headers?: Record<string, string>;
}

export interface BrowserClientOptions extends Omit<ClientOptions, "apiKey"> {
  /** The tenant's publishable key (`qf_pk_…`). */
  apiKey: string;
  /** A token minted by your backend for this user (`createUserToken`), or a function that fetches a fresh one. */
  userToken: UserTokenSource;
}

/** What a publishable key may do: read one user's usage and entitlements, ask can-use. */
export type BrowserClient = Pick<QuotaflowClient, "usage" | "canUse" | "canUseFeature" | "entitlements" | "health">;

export function createClient(options: BrowserClientOptions): BrowserClient;
export function createClient(options?: ClientOptions): QuotaflowClient;
export function createClient(options: ClientOptions | BrowserClientOptions = {}): QuotaflowClient | BrowserClient {
  return new QuotaflowClient(options);
}

export interface WithReservationOptions extends T.ReserveOptions, RequestOptions {}

export class QuotaflowClient implements ReservationCalls {
  readonly #connection: Connection;

  constructor(options: ClientOptions | BrowserClientOptions = {}) {
    const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
    const baseUrl = options.baseUrl ?? env["QUOTAFLOW_URL"];
    const apiKey = options.apiKey ?? env["QUOTAFLOW_API_KEY"];
    if (!baseUrl) throw new TypeError("no quotaflow URL: pass baseUrl or set QUOTAFLOW_URL");
    if (!apiKey) throw new TypeError("no API key: pass apiKey or set QUOTAFLOW_API_KEY");
    const fetchImpl = options.fetch ?? globalThis.fetch?.bind(globalThis);
    if (fetchImpl === undefined) throw new TypeError("no global fetch here: pass options.fetch");
    this.#connection = {
      baseUrl: baseUrl.replace(/\/+$/, ""),
      apiKey,
      userToken: "userToken" in options ? options.userToken : undefined,
      fetch: fetchImpl,
      timeoutMs: options.timeoutMs ?? TIMEOUT_MS_DEFAULT,
      retry: { ...RETRY_POLICY_DEFAULT, ...options.retry },
      headers: options.headers ?? {},
    };
  }

  async #call<R>(call: Call, options?: RequestOptions): Promise<R> {
    return (await send<R>(this.#connection, call, options)).body;
  }

  // --- operations and admin (admin key) ------------------------------------------------------------------

  health(options?: RequestOptions): Promise<{ ok: boolean }> {
    return this.#call({ method: "GET", path: "/v1/health", write: false }, options);
  }

  createTenant(tenantId: string, options?: RequestOptions): Promise<T.TenantCreated> {
    return this.#call({ method: "POST", path: "/v1/admin/tenants", body: { tenantId }, write: true }, options);
  }

  createKey(tenantId: string, kind: T.KeyKind, options?: RequestOptions): Promise<T.KeyCreated> {
    const path = `/v1/admin/tenants/${segment(tenantId)}/keys`;
    return this.#call({ method: "POST", path, body: { kind }, write: true }, options);
  }

  async revokeKey(tenantId: string, keyId: string, options?: RequestOptions): Promise<void> {
    const path = `/v1/admin/tenants/${segment(tenantId)}/keys/${segment(keyId)}`;
    await this.#call({ method: "DELETE", path, write: true }, options);
  }

  // --- plans, subscriptions, settings ---------------------------------------------------------------------

  putPlan(planId: string, plan: T.PlanInput, options?: RequestOptions): Promise<T.Plan> {
    return this.#call({ method: "PUT", path: `/v1/plans/${segment(planId)}`, body: plan, write: true }, options);
  }

  getPlan(planId: string, options?: RequestOptions): Promise<T.Plan> {
    return this.#call({ method: "GET", path: `/v1/plans/${segment(planId)}`, write: false }, options);
  }

  async listPlans(options?: RequestOptions): Promise<T.Plan[]> {
    return (await this.#call<{ plans: T.Plan[] }>({ method: "GET", path: "/v1/plans", write: false }, options)).plans;
  }

  upsertSubscription(subscription: T.SubscriptionInput, options?: RequestOptions): Promise<T.Subscription> {
    const { userId, ...body } = subscription;
    const path = `/v1/users/${segment(userId)}/subscription`;
    return this.#call({ method: "PUT", path, body, write: true }, options);
  }

  getSubscription(userId: string, options?: RequestOptions): Promise<T.Subscription> {
    return this.#call({ method: "GET", path: `/v1/users/${segment(userId)}/subscription`, write: false }, options);
  }

  putSettings(settings: T.Settings, options?: RequestOptions): Promise<T.Settings> {
    return this.#call({ method: "PUT", path: "/v1/settings", body: settings, write: true }, options);
  }

  getSettings(options?: RequestOptions): Promise<T.Settings> {
    return this.#call({ method: "GET", path: "/v1/settings", write: false }, options);
  }

  // --- usage, can-use, entitlements (secret key, or publishable key + user token) --------------------------

  usage(userId: string, options?: RequestOptions): Promise<T.Usage> {
    return this.#call({ method: "GET", path: `/v1/users/${segment(userId)}/usage`, write: false }, options);
  }

  /** Consumes nothing. One meter: `canUse(u, "tokens", 4000)`; several: `canUse(u, { tokens: 4000, requests: 1 })`. */
  canUse(userId: string, meter: string, amount: number, options?: RequestOptions): Promise<T.CanUse>;
  canUse(userId: string, lines: T.Amounts, options?: RequestOptions): Promise<T.CanUseLines>;
  async canUse(
    userId: string,
    meterOrLines: string | T.Amounts,
    amountOrOptions?: number | RequestOptions,
    options?: RequestOptions,
  ): Promise<T.CanUse | T.CanUseLines> {
    const path = `/v1/users/${segment(userId)}/can-use`;
    if (typeof meterOrLines === "string") {
      const body = { meter: meterOrLines, amount: checkAmount(amountOrOptions, "amount") };
      return this.#call({ method: "POST", path, body, write: false }, options);
    }
    const body = { lines: amountLines(meterOrLines) };
    return this.#call({ method: "POST", path, body, write: false }, amountOrOptions as RequestOptions | undefined);
  }

  /** A missing or false feature is not allowed. */
  canUseFeature(userId: string, feature: string, options?: RequestOptions): Promise<{ allowed: boolean }> {
    const path = `/v1/users/${segment(userId)}/can-use`;
    return this.#call({ method: "POST", path, body: { feature }, write: false }, options);
  }

  entitlements(userId: string, options?: RequestOptions): Promise<T.Entitlements> {
    return this.#call({ method: "GET", path: `/v1/users/${segment(userId)}/entitlements`, write: false }, options);
  }

  // --- reservations ----------------------------------------------------------------------------------------

  /** Hold `lines` (`{ tokens: 4000 }`) for at most `ttlSeconds`. All meters or none: 402 holds nothing. */
  async reserve(userId: string, lines: T.Amounts, options: T.ReserveOptions & RequestOptions = {}): Promise<Reservation> {
    const { ttlSeconds, ...request } = options;
    const idempotencyKey = checkIdempotencyKey(request.idempotencyKey ?? (await newIdempotencyKey()), RESERVATION_KEY_LENGTH_MAX);
    const body = { userId, lines: amountLines(lines), ttlSeconds };
    const info = await this.#call<T.ReservationInfo>(
      { method: "POST", path: "/v1/reservations", body, write: true },
      { ...request, idempotencyKey },
    );
    return new Reservation(this, info, idempotencyKey);
  }

  /**
   * Reserve, run `use`, and commit the usage it returns; release when it throws (the error is rethrown) or returns
   * nothing. A callback that commits or releases `r` itself is left alone. Resolves with how the reservation ended.
   */
  async withReservation(
    userId: string,
    lines: T.Amounts,
    use: (reservation: Reservation) => Promise<T.UsageLines | void> | T.UsageLines | void,
    options: WithReservationOptions = {},
  ): Promise<T.CommitResult | T.ReleaseResult | undefined> {
    const reservation = await this.reserve(userId, lines, options);
    // Commit and release go under keys derived from the reservation's, never under the reserve's own.
    const timeout: RequestOptions = options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
    const stepOptions: RequestOptions = options.signal === undefined ? timeout : { ...timeout, signal: options.signal };
    let used: T.UsageLines | void;
    try {
      used = await use(reservation);
    } catch (error) {
      // Not under the caller's signal: an aborted call is exactly when the hold must go back.
      await releaseQuietly(reservation, timeout);
      throw error;
    }
    if (!reservation.isOpen) return undefined;
    return used === undefined ? reservation.release(stepOptions) : reservation.commit(used, stepOptions);
  }

  getReservation(id: string, options?: RequestOptions): Promise<T.ReservationInfo> {
    return this.#call({ method: "GET", path: `/v1/reservations/${segment(id)}`, write: false }, options);
  }

  async commitReservation(id: string, lines: T.UsageLines, options?: RequestOptions): Promise<T.CommitResult> {
    const path = `/v1/reservations/${segment(id)}/commit`;
    return this.#call({ method: "POST", path, body: { lines: usageLines(lines) }, write: true }, options);
  }

  releaseReservation(id: string, options?: RequestOptions): Promise<T.ReleaseResult> {
    return this.#call({ method: "POST", path: `/v1/reservations/${segment(id)}/release`, write: true }, options);
  }

  async drawReservation(id: string, lines: T.UsageLines, options: DrawOptions = {}): Promise<T.DrawResult> {
    const { properties, ...request } = options;
    const body = { lines: usageLines(lines), properties };
    return this.#call({ method: "POST", path: `/v1/reservations/${segment(id)}/draw`, body, write: true }, request);
  }

  async increaseReservation(id: string, lines: T.Amounts, options?: RequestOptions): Promise<T.ReservationInfo> {
    const path = `/v1/reservations/${segment(id)}/increase`;
    return this.#call({ method: "POST", path, body: { lines: amountLines(lines) }, write: true }, options);
  }

  async extendReservation(id: string, ttlSeconds: number, options?: RequestOptions): Promise<T.ReservationInfo> {
    const path = `/v1/reservations/${segment(id)}/extend`;
    return this.#call({ method: "POST", path, body: { ttlSeconds: checkAmount(ttlSeconds, "ttlSeconds") }, write: true }, options);
  }

  // --- direct usage, refunds, credits, ledger, verify -----------------------------------------------------

  /** Usage without a reservation. Hard meters without room: 402 and nothing recorded. */
  async track(userId: string, lines: T.UsageLines, options: DrawOptions = {}): Promise<T.EventRecorded> {
    const { properties, ...request } = options;
    const body = { userId, lines: usageLines(lines), properties };
    return this.#call({ method: "POST", path: "/v1/events", body, write: true }, request);
  }

  async refund(userId: string, lines: T.Amounts, options: RequestOptions & { reason?: string } = {}): Promise<T.RefundRecorded> {
    const { reason, ...request } = options;
    const body = { userId, lines: amountLines(lines), reason };
    return this.#call({ method: "POST", path: "/v1/refunds", body, write: true }, request);
  }

  grantCredits(
    userId: string,
    meter: string,
    amount: number,
    options: RequestOptions & { expiresAt?: string | null } = {},
  ): Promise<T.CreditGrant> {
    return this.#grant(`/v1/users/${segment(userId)}/credits`, meter, amount, options);
  }

  async listCredits(userId: string, options?: RequestOptions): Promise<Record<string, unknown>[]> {
    const path = `/v1/users/${segment(userId)}/credits`;
    return (await this.#call<{ grants: Record<string, unknown>[] }>({ method: "GET", path, write: false }, options)).grants;
  }

  ledger(userId: string, page: { limit?: number; cursor?: string } = {}, options?: RequestOptions): Promise<T.LedgerPage> {
    const path = `/v1/users/${segment(userId)}/ledger`;
    return this.#call({ method: "GET", path, query: page, write: false }, options);
  }

  /** Invariants 1 and 4 for one user, or for the whole tenant when `userId` is left out. */
  verify(userId?: string, options?: RequestOptions): Promise<T.VerifyResult> {
    return this.#call({ method: "POST", path: "/v1/verify", body: { userId }, write: false }, options);
  }

  /** A token for the browser: with the publishable key it reads this user's usage (at most 24 h). */
  createUserToken(userId: string, options: RequestOptions & { ttlSeconds?: number } = {}): Promise<T.UserToken> {
    const { ttlSeconds, ...request } = options;
    return this.#call({ method: "POST", path: "/v1/user-tokens", body: { userId, ttlSeconds }, write: true }, request);
  }

  rotateUserTokenSecret(options?: RequestOptions): Promise<{ rotatedAt: string }> {
    return this.#call({ method: "POST", path: "/v1/user-tokens/rotate-secret", write: true }, options);
  }

  // --- prices and quotes ------------------------------------------------------------------------------------

  putPrice(model: string, price: T.PriceInput, options?: RequestOptions): Promise<T.Price> {
    return this.#call({ method: "PUT", path: `/v1/prices/${segment(model)}`, body: price, write: true }, options);
  }

  getPrice(model: string, options?: RequestOptions): Promise<Record<string, unknown>> {
    return this.#call({ method: "GET", path: `/v1/prices/${segment(model)}`, write: false }, options);
  }

  async listPrices(options?: RequestOptions): Promise<T.Price[]> {
    return (await this.#call<{ prices: T.Price[] }>({ method: "GET", path: "/v1/prices", write: false }, options)).prices;
  }

  /** What a call costs at most: input tokens plus the output cap, at the model's current price. */
  quote(model: string, tokens: T.QuoteInput, options?: RequestOptions): Promise<T.Quote> {
    return this.#call({ method: "POST", path: "/v1/quote", body: { model, ...tokens }, write: false }, options);
  }

  /** Several calls quoted at once (an agent run). */
  quoteRuns(runs: T.QuoteRun[], options?: RequestOptions): Promise<T.Quote> {
    return this.#call({ method: "POST", path: "/v1/quote", body: { lines: runs }, write: false }, options);
  }

  /** Prices from a LiteLLM-format cost map (USD per token), converted exactly by the server. */
  async importPrices(costMap: Record<string, unknown>, markupPercent: number, options?: RequestOptions): Promise<T.PriceImport> {
    const query = { markup_percent: checkAmount(markupPercent, "markupPercent") };
    // The map's own keys and fields are the LiteLLM format's: sent as they are.
    return this.#call({ method: "POST", path: "/v1/prices/import", query, body: new Verbatim(costMap), write: true }, options);
  }

  // --- accounts (shared pools) --------------------------------------------------------------------------------

  putAccount(accountId: string, account: T.AccountInput, options?: RequestOptions): Promise<T.Account> {
    return this.#call({ method: "PUT", path: `/v1/accounts/${segment(accountId)}`, body: account, write: true }, options);
  }

  getAccount(accountId: string, options?: RequestOptions): Promise<T.Account> {
    return this.#call({ method: "GET", path: `/v1/accounts/${segment(accountId)}`, write: false }, options);
  }

  accountUsage(accountId: string, options?: RequestOptions): Promise<T.AccountUsage> {
    return this.#call({ method: "GET", path: `/v1/accounts/${segment(accountId)}/usage`, write: false }, options);
  }

  grantAccountCredits(
    accountId: string,
    meter: string,
    amount: number,
    options: RequestOptions & { expiresAt?: string | null } = {},
  ): Promise<T.CreditGrant> {
    return this.#grant(`/v1/accounts/${segment(accountId)}/credits`, meter, amount, options);
  }

  accountLedger(accountId: string, page: { limit?: number; cursor?: string } = {}, options?: RequestOptions): Promise<T.LedgerPage> {
    const path = `/v1/accounts/${segment(accountId)}/ledger`;
    return this.#call({ method: "GET", path, query: page, write: false }, options);
  }

  // --- analytics ------------------------------------------------------------------------------------------------

  /** Usage over time. A query that outlasts its request (202) is polled until it answers (bounded). */
  async analyticsUsage(query: T.AnalyticsQuery, options: RequestOptions = {}): Promise<T.AnalyticsRow[]> {
    const start: Call = { method: "POST", path: "/v1/analytics/usage", body: query, write: false, verbatim: true };
    let reply = await send<AnalyticsReply>(this.#connection, start, options);
    for (let poll = 0; reply.status === 202; poll += 1) {
      const queryId = String(reply.body.query_id);
      if (poll >= ANALYTICS_POLLS_MAX) {
        const message = `analytics query ${queryId} still running after ${ANALYTICS_POLLS_MAX} polls`;
        throw new QuotaflowError(message, { code: "query_still_running", details: { queryId } });
      }
      await sleep(ANALYTICS_POLL_INTERVAL_MS, options.signal);
      const path = `/v1/analytics/queries/${segment(queryId)}`;
      reply = await send<AnalyticsReply>(this.#connection, { method: "GET", path, write: false, verbatim: true }, options);
    }
    // Group keys (`model`, `property:step`) are named as the query named them; only the window is renamed.
    return (reply.body.rows ?? []).map(({ window_start, ...groups }) => ({ ...groups, windowStart: String(window_start) }) as T.AnalyticsRow);
  }

  // --- Stripe settings and outgoing webhooks ------------------------------------------------------------------

  putStripeConfig(config: T.StripeConfigInput, options?: RequestOptions): Promise<Record<string, unknown>> {
    return this.#call({ method: "PUT", path: "/v1/stripe/config", body: config, write: true }, options);
  }

  getStripeConfig(options?: RequestOptions): Promise<Record<string, unknown>> {
    return this.#call({ method: "GET", path: "/v1/stripe/config", write: false }, options);
  }

  putWebhook(webhook: T.WebhookInput, options?: RequestOptions): Promise<Record<string, unknown>> {
    return this.#call({ method: "PUT", path: "/v1/webhooks", body: webhook, write: true }, options);
  }

  getWebhook(options?: RequestOptions): Promise<Record<string, unknown>> {
    return this.#call({ method: "GET", path: "/v1/webhooks", write: false }, options);
  }

  async #grant(
    path: string,
    meter: string,
    amount: number,
    options: RequestOptions & { expiresAt?: string | null },
  ): Promise<T.CreditGrant> {
    const { expiresAt, ...request } = options;
    const body = { meter, amount: checkAmount(amount, "amount"), expiresAt };
    return this.#call({ method: "POST", path, body, write: true }, request);
  }
}
