"""Reading the usage lake with SQL: DuckDB over the local directory (`serve`), Athena over S3 (AWS).

Both engines run the SQL that `services.analytics` builds; what differs between them is only what a `Dialect`
names. Neither engine's library is imported until a query runs: the API function's cold start does not pay for
them. Values always travel as query parameters, never inside the SQL text."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from quotaflow.config import Settings
from quotaflow.ledger import errors
from quotaflow.store.lake import COLUMNS, PARTITION_COLUMNS

Value = str | int | None
QueryState = Literal["running", "succeeded", "failed", "too_large"]
IDENTIFIER = re.compile(r"[a-z0-9_]{1,255}")  # Glue database and table names (deployment settings, not input)
DUCKDB_TYPES = {"string": "VARCHAR", "bigint": "BIGINT", "map<string,string>": "MAP(VARCHAR, VARCHAR)"}
DUCKDB_RELATION = "ledger_entries"
ATHENA_RESULTS_PAGE_MAX = 1000  # GetQueryResults' own limit
ATHENA_POLL_FIRST_S = 0.1
ATHENA_POLL_MAX_S = 1.0
# Athena ends a query that scans more than the workgroup's cutoff with this reason.
ATHENA_TOO_LARGE = "Bytes scanned limit was exceeded"


@dataclass(frozen=True)
class Dialect:
    """Where the two engines' SQL differs, and nothing else: the relation read, and a property's lookup (Trino's
    `map[key]` fails on a missing key; `element_at` gives NULL; DuckDB's `map[key]` gives NULL already)."""

    name: str
    relation: str
    property_lookup: str  # an expression with one `?`: the property's name

    def literal(self, value: Value) -> str:
        """A parameter as Athena's ExecutionParameters take it: a SQL literal (strings quoted, quotes doubled)."""
        if value is None:
            return "NULL"
        if isinstance(value, int):
            return str(value)
        return "'" + value.replace("'", "''") + "'"


def duckdb_dialect() -> Dialect:
    return Dialect("duckdb", DUCKDB_RELATION, "properties[?]")


def athena_dialect(database: str, table: str) -> Dialect:
    for name in (database, table):
        if not IDENTIFIER.fullmatch(name):
            raise ValueError(f"Glue names are lower-case letters, digits and _: {name!r}")
    return Dialect("athena", f'"{database}"."{table}"', "element_at(properties, ?)")


@dataclass(frozen=True)
class DuckDbLake:
    """DuckDB, in memory, reading the NDJSON files under `root` (see `store.lake.LocalLakeWriter`)."""

    root: Path
    dialect: Dialect = field(default_factory=duckdb_dialect)

    def run(self, sql: str, params: Sequence[Value]) -> list[tuple[Any, ...]]:
        pattern = self.root / "tenant_id=*" / "day=*" / "*.ndjson"
        if not any(self.root.glob("tenant_id=*/day=*/*.ndjson")):
            return []  # nothing written yet (DuckDB refuses a glob that matches no file)
        import duckdb

        columns = {name: DUCKDB_TYPES[kind] for name, kind in {**PARTITION_COLUMNS, **COLUMNS}.items()}
        try:
            with duckdb.connect(":memory:") as connection:
                # The path is this deployment's own directory, not input; the columns fix every type.
                entries = connection.read_json(
                    str(pattern), format="newline_delimited", hive_partitioning=False, columns=columns
                )
                entries.create_view(DUCKDB_RELATION)
                return connection.execute(sql, list(params)).fetchall()
        except duckdb.Error as failure:  # an unreadable file in the directory, a full disk: not the caller's fault
            raise errors.Unavailable(f"the local usage lake could not be read: {failure}") from None


@dataclass
class AthenaLake:
    """Athena through its API: a query starts, is polled, and its result pages are read."""

    client: Any
    workgroup: str
    database: str
    table: str

    @property
    def dialect(self) -> Dialect:
        return athena_dialect(self.database, self.table)

    def start(self, sql: str, params: Sequence[Value]) -> str:
        try:
            answer = self.client.start_query_execution(
                QueryString=sql,
                WorkGroup=self.workgroup,
                QueryExecutionContext={"Database": self.database},
                ExecutionParameters=[self.dialect.literal(value) for value in params],
            )
        except self.client.exceptions.TooManyRequestsException:
            raise errors.Throttled("too many analytics queries at once; retry shortly") from None
        return str(answer["QueryExecutionId"])

    def state(self, query_id: str) -> QueryState:
        try:
            status = self.client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
        except self.client.exceptions.InvalidRequestException:
            raise errors.NotFound(f"no query {query_id}") from None
        state = status["State"]
        if state == "SUCCEEDED":
            return "succeeded"
        if state in ("FAILED", "CANCELLED"):
            return "too_large" if ATHENA_TOO_LARGE in status.get("StateChangeReason", "") else "failed"
        return "running"

    def wait(self, query_id: str, wait_s: float) -> QueryState:
        """Poll until the query ends or `wait_s` has passed (then it is still running)."""
        deadline = time.monotonic() + wait_s
        pause = ATHENA_POLL_FIRST_S
        while (state := self.state(query_id)) == "running" and time.monotonic() + pause < deadline:
            time.sleep(pause)
            pause = min(pause * 2, ATHENA_POLL_MAX_S)
        return state

    def rows(self, query_id: str, rows_max: int) -> list[tuple[str | None, ...]]:
        """The result rows as text (Athena's own form), header dropped, at most `rows_max`."""
        rows: list[tuple[str | None, ...]] = []
        token: str | None = None
        pages_max = rows_max // ATHENA_RESULTS_PAGE_MAX + 2  # + the header row's page share
        for _ in range(pages_max):
            page = self.client.get_query_results(
                QueryExecutionId=query_id,
                MaxResults=ATHENA_RESULTS_PAGE_MAX,
                **({"NextToken": token} if token else {}),
            )
            batch = [tuple(cell.get("VarCharValue") for cell in row["Data"]) for row in page["ResultSet"]["Rows"]]
            rows += batch[1:] if token is None else batch  # the first page starts with the column names
            token = page.get("NextToken")
            if token is None or len(rows) >= rows_max:
                break
        return rows[:rows_max]


Lake = DuckDbLake | AthenaLake


def open_lake(settings: Settings) -> Lake | None:
    """The deployment's lake reader: Athena when a workgroup is configured, else DuckDB over `lake_dir`."""
    if settings.athena_workgroup and settings.lake_database and settings.lake_table:
        from quotaflow.store.connect import aws_client

        return AthenaLake(
            aws_client("athena", settings), settings.athena_workgroup, settings.lake_database, settings.lake_table
        )
    if settings.lake_dir:
        return DuckDbLake(Path(settings.lake_dir))
    return None
