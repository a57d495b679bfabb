// The API speaks snake_case JSON; this package speaks camelCase. Keys that are data (meter names, feature names,
// event properties, Stripe price ids) are never renamed: only their values are converted.
const DATA_MAP_FIELDS = new Set([
  "limits",
  "custom_limits",
  "features",
  "custom_features",
  "properties",
  "meter_event_names",
  "credit_packs",
  "plans_by_price",
  "effective",
  "filters",
]);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export function toSnake(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

export function toCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
}

/** A body sent exactly as given (its keys are someone else's format). */
export class Verbatim {
  constructor(readonly value: unknown) {}
}

/** A camelCase value as the API's JSON; `undefined` fields are left out. */
export function toWire(value: unknown): Json {
  if (value instanceof Verbatim) return value.value as Json;
  return convert(value, toSnake, false) as Json;
}

/** The API's JSON in camelCase. */
export function fromWire<T>(value: unknown): T {
  return convert(value, toCamel, true) as T;
}

function convert(value: unknown, rename: (name: string) => string, incoming: boolean): unknown {
  if (Array.isArray(value)) return value.map((item) => convert(item, rename, incoming));
  if (value === null || typeof value !== "object") return value;
  const converted: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(value)) {
    if (field === undefined) continue;
    const wireName = incoming ? name : rename(name);
    converted[rename(name)] = DATA_MAP_FIELDS.has(wireName) ? convertDataMap(field, rename, incoming) : convert(field, rename, incoming);
  }
  return converted;
}

function convertDataMap(map: unknown, rename: (name: string) => string, incoming: boolean): unknown {
  if (map === null || typeof map !== "object" || Array.isArray(map)) return convert(map, rename, incoming);
  const converted: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(map)) {
    if (field !== undefined) converted[key] = convert(field, rename, incoming);
  }
  return converted;
}
