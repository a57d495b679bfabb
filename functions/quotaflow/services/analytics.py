"""Usage analytics over the lake: validate a usage query, build its SQL once for either engine, run it, shape rows.

The SQL reads only the asking tenant's rows (`tenant_id = ?` first, also Athena's partition key), deduplicates
by `entry_id` (the lake is at-least-once), and sums `delta_used` of the entries that changed usage. Every value
from the request travels as a parameter; the only text that varies is chosen by code from fixed lists (columns,
window lengths) and validated integers (the row limit)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints

from quotaflow.ledger import errors
from quotaflow.ledger.amounts import MeterKey
from quotaflow.ledger.model import Model
from quotaflow.ledger.periods import iso
from quotaflow.services.scope import Scope
from quotaflow.store import keys
from quotaflow.store.lake_query import AthenaLake, Dialect, DuckDbLake, Lake, Value

RANGE_DAYS_MAX = 366
GROUP_KEYS_MAX = 3
FILTERS_MAX = 8
FILTER_VALUE_LENGTH_MAX = 256
ROWS_LIMIT_DEFAULT = 1000
ROWS_LIMIT_MAX = 10_000
ATHENA_WAIT_S = 5.0  # the API function has 10 s; past this the caller gets 202 and a query id to poll
QUERY_KEPT_S = 24 * 3600  # how long a query id can be polled (its table record's TTL)
QUERY_ID = re.compile(r"[A-Za-z0-9-]{1,128}")  # Athena's query execution ids (UUIDs)
PROPERTY_PREFIX = "property:"
PROPERTY_NAME = r"[A-Za-z0-9_.:-]{1,64}"  # the API's property keys
GROUP_KEY_PATTERN = rf"^(model|user|account|kind|{PROPERTY_PREFIX}{PROPERTY_NAME})$"
# Group keys and filters -> lake columns; property:<name> looks the name up in the properties map.
COLUMN_OF = {"model": "model", "user": "user_id", "account": "account_id", "kind": "kind"}
# A window is named by the first N characters of `occurred_at` (ISO 8601) plus what completes its start.
WINDOW_PREFIX = {"hour": (13, ":00:00Z"), "day": (10, "T00:00:00Z"), "month": (7, "-01T00:00:00Z")}
GroupKey = Annotated[str, StringConstraints(pattern=GROUP_KEY_PATTERN)]
FilterValue = Annotated[str, StringConstraints(min_length=1, max_length=FILTER_VALUE_LENGTH_MAX)]


class UsageQuery(Model):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    meter: MeterKey
    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime
    window: Literal["hour", "day", "month"] = "day"
    group_by: list[GroupKey] = Field(default=[], max_length=GROUP_KEYS_MAX)
    filters: dict[GroupKey, FilterValue] = Field(default={}, max_length=FILTERS_MAX)
    limit: Annotated[int, Field(strict=True, ge=1, le=ROWS_LIMIT_MAX)] = ROWS_LIMIT_DEFAULT

    def check(self) -> None:
        """What one field alone cannot say: the range, and each group key once."""
        if self.from_ >= self.to:
            raise errors.InvalidRequest("from must be before to", field="from")
        if self.to - self.from_ > timedelta(days=RANGE_DAYS_MAX):
            raise errors.InvalidRequest(f"from..to spans at most {RANGE_DAYS_MAX} days", field="to")
        if len(set(self.group_by)) != len(self.group_by):
            raise errors.InvalidRequest("each group_by key at most once", field="group_by")


class UsageRows(Model):
    """A finished query (200); `query_id` is set when it ran on Athena."""

    rows: list[dict[str, Any]]
    query_id: str | None = None
    status: Literal["succeeded"] = "succeeded"


class QueryPending(Model):
    """An Athena query still running (202): poll GET /v1/analytics/queries/{query_id}."""

    query_id: str
    status: Literal["running"] = "running"


@dataclass(frozen=True)
class Sql:
    text: str
    params: list[Value]
    group_by: list[str]


def _column(key: str, dialect: Dialect, params: list[Value]) -> str:
    """The lake expression of a group key or filter; a property's name goes in as a parameter."""
    if key.startswith(PROPERTY_PREFIX):
        params.append(key.removeprefix(PROPERTY_PREFIX))
        return dialect.property_lookup
    return COLUMN_OF[key]


def _ceil_second(moment: datetime) -> datetime:
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


def build_sql(query: UsageQuery, tenant_id: str, dialect: Dialect) -> Sql:
    """The one SQL text for both engines. Parameters appear in the order of their `?`s."""
    query.check()
    # Entries are stamped to the second (truncated): `from` rounds down and the exclusive `to` up, so an entry
    # written inside the range, even in its last fraction of a second, is counted.
    start, end = iso(query.from_), iso(_ceil_second(query.to))
    group_params: list[Value] = []
    groups = [f"max({_column(key, dialect, group_params)}) AS g{i}" for i, key in enumerate(query.group_by)]
    where_params: list[Value] = [tenant_id, start[:10], end[:10], start, end, query.meter]
    conditions = [
        "tenant_id = ?",
        "day >= ?",
        "day <= ?",
        "occurred_at >= ?",
        "occurred_at < ?",
        "meter = ?",
        "delta_used <> 0",
    ]
    for key, value in sorted(query.filters.items()):
        conditions.append(f"{_column(key, dialect, where_params)} = ?")
        where_params.append(value)
    length, completion = WINDOW_PREFIX[query.window]
    group_names = [f"g{i}" for i in range(len(query.group_by))]
    positions = ", ".join(str(i) for i in range(1, len(group_names) + 2))
    order = ", ".join(["window_start", "used DESC", *(f"{name} NULLS LAST" for name in group_names)])
    select_groups = "".join(f", {group}" for group in groups)
    outer_groups = "".join(f", {name}" for name in group_names)
    where = "\n    AND ".join(conditions)
    # No request value in this text: columns come from fixed lists, values go in as parameters.
    text = "\n".join(
        [
            "WITH entries AS (",
            f"  SELECT entry_id, max(occurred_at) AS occurred_at, max(delta_used) AS delta_used{select_groups}",
            f"  FROM {dialect.relation}",
            f"  WHERE {where}",
            "  GROUP BY entry_id",
            ")",
            f"SELECT substr(occurred_at, 1, {length}) || '{completion}' AS window_start{outer_groups}, "
            "sum(delta_used) AS used, count(*) AS events",
            "FROM entries",
            f"GROUP BY {positions}",
            f"ORDER BY {order}",
            f"LIMIT {int(query.limit)}",
        ]
    )
    return Sql(text, group_params + where_params, list(query.group_by))


def shape(rows: list[tuple[Any, ...]], group_by: list[str]) -> list[dict[str, Any]]:
    """Engine rows (window, groups..., used, events) as the API's objects; Athena's text numbers become ints."""
    shaped = []
    for row in rows:
        window_start, *groups, used, events = row
        shaped.append(
            {
                "window_start": window_start,
                **dict(zip(group_by, groups, strict=True)),
                "used": int(used),
                "events": int(events),
            }
        )
    return shaped


def usage(scope: Scope, lake: Lake, query: UsageQuery) -> UsageRows | QueryPending:
    sql = build_sql(query, scope.tenant_id, lake.dialect)
    if isinstance(lake, DuckDbLake):
        return UsageRows(rows=shape(lake.run(sql.text, sql.params), sql.group_by))
    query_id = lake.start(sql.text, sql.params)
    scope.store.put(
        {
            **keys.analytics_query(scope.tenant_id, query_id),
            "group_by": sql.group_by,
            "limit": query.limit,
            "ttl": int(scope.now.timestamp()) + QUERY_KEPT_S,
        }
    )
    return _answer(lake, query_id, sql.group_by, query.limit, ATHENA_WAIT_S)


def query_result(scope: Scope, lake: Lake, query_id: str) -> UsageRows | QueryPending:
    """A query this tenant started (another tenant's id, or an unknown one, is 404)."""
    record = scope.store.get(keys.analytics_query(scope.tenant_id, query_id))
    if record is None or not isinstance(lake, AthenaLake):
        raise errors.NotFound(f"no analytics query {query_id}")
    return _answer(lake, query_id, list(record["group_by"]), int(record["limit"]), 0.0)


def _answer(
    lake: AthenaLake, query_id: str, group_by: list[str], limit: int, wait_s: float
) -> UsageRows | QueryPending:
    state = lake.wait(query_id, wait_s) if wait_s else lake.state(query_id)
    if state == "running":
        return QueryPending(query_id=query_id)
    if state == "too_large":
        raise errors.InvalidRequest("the query scanned more than the workgroup allows: narrow from..to", field="to")
    if state == "failed":
        raise errors.Unavailable(f"analytics query {query_id} failed; run it again")
    return UsageRows(rows=shape(lake.rows(query_id, limit), group_by), query_id=query_id)
