// The API's shapes in camelCase (API.md v1). Timestamps are ISO 8601 UTC strings, amounts are integers.

export type Enforcement = "hard" | "soft" | "none";
export type Period = "day" | "week" | "month" | "none";
export type ReservationStatus = "pending" | "committed" | "released" | "expired";
export type KeyKind = "secret" | "publishable";
export type FeatureValue = boolean | number | string;

/** meter -> amount: `{ tokens: 4000, requests: 1 }`. */
export type Amounts = Record<string, number>;

/** A model call's token counts, priced by the server on a money meter (`cents`, `millicents`). */
export interface FromModel {
  model: string;
  inputTokens?: number;
  outputTokens?: number;
  cachedInputTokens?: number;
}

/** Usage lines (track, commit, draw): an amount per meter, or a model call to price: `{ cents: { fromModel } }`. */
export type UsageLines = Record<string, number | { fromModel: FromModel }>;

export interface Line {
  meter: string;
  amount: number;
}

export interface Rollover {
  max: number;
  expiresAfterPeriods: number;
}

export interface Limit {
  label?: string;
  quota: number;
  period?: Period;
  enforcement?: Enforcement;
  alerts?: number[];
  rollover?: Rollover;
}

export type LimitOverride = Partial<Limit>;

export interface PlanInput {
  name: string;
  limits: Record<string, Limit>;
  stripe?: { meterEventNames?: Record<string, string> };
  features?: Record<string, FeatureValue>;
}

export interface Plan extends PlanInput {
  planId: string;
}

export interface SubscriptionInput {
  userId: string;
  planId: string;
  customLimits?: Record<string, LimitOverride>;
  customFeatures?: Record<string, FeatureValue>;
  /** The account (pool) the user belongs to; null: none. */
  accountId?: string | null;
  stripeCustomerId?: string | null;
  periodAnchor?: string;
}

export interface Subscription {
  userId: string;
  planId: string;
  customLimits: Record<string, LimitOverride>;
  stripeCustomerId?: string | null;
  accountId?: string | null;
  periodAnchor?: string | null;
  [field: string]: unknown;
}

export interface Counter {
  meter: string;
  label: string;
  period: Period;
  periodStart: string | null;
  periodEnd: string | null;
  enforcement: Enforcement;
  quota: number;
  credits: number;
  used: number;
  reserved: number;
  /** max(0, quota + credits - used - reserved) */
  remaining: number;
}

export interface EffectiveRemaining {
  remaining: number;
  /** `"user"` or `"account:<id>"`: the level that leaves the least. */
  limitedBy: string;
}

export interface Usage {
  userId: string;
  planId: string;
  counters: Counter[];
  accounts?: { accountId: string; counters: Counter[] }[];
  effective?: Record<string, EffectiveRemaining>;
}

export interface CanUse {
  allowed: boolean;
  remaining: number;
}

export interface CanUseLines {
  allowed: boolean;
  meters: { meter: string; allowed: boolean; remaining: number }[];
}

export interface Entitlements {
  features: Record<string, FeatureValue>;
}

export interface ReservationInfo {
  reservationId: string;
  status: ReservationStatus;
  userId: string;
  lines: Line[];
  expiresAt: string;
  drawn?: Line[];
  held?: Line[];
}

export interface CommitResult {
  reservationId: string;
  status: "committed";
  committed: Line[];
  refunded: Line[];
  overage?: Line[];
}

export interface ReleaseResult {
  reservationId?: string;
  status: "released";
  refunded: Line[];
}

export interface DrawResult {
  reservationId: string;
  status: "pending";
  drawn: Line[];
  held: Line[];
  overage: Line[];
}

export interface ReserveOptions {
  ttlSeconds?: number;
}

export interface EventRecorded {
  eventId: string;
}

export interface RefundRecorded {
  refundId: string;
}

export interface CreditGrant {
  grantId: string;
}

export interface LedgerEntry {
  entryId: string;
  at: string;
  kind: string;
  meter: string;
  periodStart: string | null;
  deltaUsed: number;
  deltaReserved: number;
  deltaCredits: number;
  deltaQuota: number;
  ref: string | null;
}

export interface LedgerPage {
  entries: LedgerEntry[];
  nextCursor: string | null;
}

export interface VerifyResult {
  ok: boolean;
  checked: number;
  problems: unknown[];
}

export interface UserToken {
  token: string;
  expiresAt: string;
}

export interface TenantCreated {
  tenantId: string;
  secretKey: string;
  publishableKey: string;
}

export interface KeyCreated {
  key: string;
  keyId: string;
}

export interface Settings {
  defaultPlanId?: string | null;
  allowedOrigins?: string[];
}

export interface PriceInput {
  inputPerMillionCents?: number;
  outputPerMillionCents?: number;
  cachedInputPerMillionCents?: number;
  cacheWritePerMillionCents?: number;
  inputPerMillionMillicents?: number;
  outputPerMillionMillicents?: number;
  cachedInputPerMillionMillicents?: number;
  cacheWritePerMillionMillicents?: number;
  markupPercent?: number;
}

export interface Price extends PriceInput {
  model: string;
  version?: number;
  [field: string]: unknown;
}

export interface QuoteInput {
  inputTokens?: number;
  cachedInputTokens?: number;
  maxOutputTokens?: number;
}

export interface QuoteRun extends QuoteInput {
  model: string;
  outputTokens?: number;
}

export interface Quote {
  model?: string;
  tokens: number;
  costCents: number;
  priceVersion?: unknown;
  [field: string]: unknown;
}

export interface PriceImport {
  imported: number;
  unchanged: number;
  skipped: { model: string; reason: string }[];
}

export interface AccountInput {
  name: string;
  planId: string;
  customLimits?: Record<string, LimitOverride>;
  customFeatures?: Record<string, FeatureValue>;
  parentId?: string | null;
  stripeCustomerId?: string | null;
  periodAnchor?: string;
  /** Shard items per pool counter (1-32; left out: kept, a new account has 1; it only grows). */
  poolShards?: number;
}

export interface Account extends AccountInput {
  accountId: string;
}

export interface AccountUsage {
  accountId: string;
  planId: string;
  counters: Counter[];
}

export interface AnalyticsQuery {
  meter: string;
  from: string;
  to: string;
  window: "hour" | "day" | "month";
  /** `model`, `user`, `account`, `kind`, `property:<name>` (at most 3). */
  groupBy?: string[];
  filters?: Record<string, string>;
  limit?: number;
}

/** One window and group: `windowStart`, `used`, `events`, and each group key as the API names it (`property:step`). */
export interface AnalyticsRow {
  windowStart: string;
  used: number;
  events: number;
  [groupKey: string]: unknown;
}

export interface StripeConfigInput {
  webhookSecret?: string;
  apiKey?: string;
  creditPacks?: Record<string, { meter: string; amount: number }>;
  plansByPrice?: Record<string, string>;
}

export interface WebhookInput {
  url: string;
  secret: string;
}

/** The counter of one meter; throws when the user's plan has no such meter. */
export function counter(usage: { counters: Counter[] }, meter: string): Counter {
  const found = usage.counters.find((candidate) => candidate.meter === meter);
  if (found === undefined) throw new RangeError(`no counter for meter ${meter}`);
  return found;
}
