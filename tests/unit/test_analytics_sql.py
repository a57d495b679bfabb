"""The SQL the Athena path sends, built by the same code as DuckDB's, checked against Trino's grammar (Athena engine
version 3 is Trino) with sqlglot. Athena itself cannot run here; DuckDB runs the same text in tests/e2e."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from quotaflow.services.analytics import UsageQuery, build_sql
from quotaflow.store.lake_query import athena_dialect, duckdb_dialect

pytestmark = pytest.mark.unit

ATHENA = athena_dialect("quotaflow_dev", "ledger_entries")
QUERIES = [
    {"meter": "tokens", "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
    {
        "meter": "llm.tokens",
        "from": "2026-01-01T00:00:00Z",
        "to": "2027-01-01T00:00:00Z",
        "window": "month",
        "group_by": ["model", "user", "property:feature"],
        "filters": {"kind": "commit", "property:step": "search", "account": "org-1"},
        "limit": 20,
    },
    {
        "meter": "cents",
        "from": "2026-11-27T10:00:00Z",
        "to": "2026-11-27T12:00:00Z",
        "window": "hour",
        "group_by": ["kind"],
    },
]


def with_literals(text: str, values: list[str]) -> str:
    """The query as Athena runs it: each `?` replaced, in order, by its ExecutionParameters literal."""
    parts = text.split("?")
    assert len(parts) == len(values) + 1
    return "".join(part + value for part, value in zip(parts, [*values, ""], strict=True))


@pytest.mark.parametrize("raw", QUERIES)
def test_the_athena_sql_is_trino_sql_with_one_parameter_per_value(raw: dict[str, object]) -> None:
    sql = build_sql(UsageQuery.model_validate(raw), "acme", ATHENA)
    (tree,) = sqlglot.parse(sql.text, read="trino")
    assert tree is not None
    assert len(list(tree.find_all(exp.Placeholder))) == len(sql.params)
    tables = {table.sql(dialect="trino") for table in tree.find_all(exp.Table)}
    assert tables == {'"quotaflow_dev"."ledger_entries"', "entries"}
    # and with the parameters in place it is still one statement of Trino
    bound = with_literals(sql.text, [ATHENA.literal(value) for value in sql.params])
    assert sqlglot.parse_one(bound, read="trino").find(exp.Where) is not None


def test_every_query_reads_only_its_tenant_and_the_days_of_its_range() -> None:
    sql = build_sql(UsageQuery.model_validate(QUERIES[0]), "acme", ATHENA)
    bound = with_literals(sql.text, [ATHENA.literal(value) for value in sql.params])
    where = sqlglot.parse_one(bound, read="trino").find(exp.Where)
    assert where is not None
    conditions = {condition.sql(dialect="trino") for condition in where.find_all(exp.EQ, exp.GTE, exp.LTE)}
    assert {"tenant_id = 'acme'", "day >= '2026-11-01'", "day <= '2026-12-01'"} <= conditions
    # the tenant condition is a top-level AND term: no OR anywhere can widen it
    assert not list(where.find_all(exp.Or))


def test_a_quote_in_a_filter_stays_inside_its_string_literal() -> None:
    raw = {**QUERIES[0], "filters": {"user": "u1' OR '1'='1"}}
    sql = build_sql(UsageQuery.model_validate(raw), "acme", ATHENA)
    assert "u1" not in sql.text
    bound = with_literals(sql.text, [ATHENA.literal(value) for value in sql.params])
    where = sqlglot.parse_one(bound, read="trino").find(exp.Where)
    assert where is not None
    assert not list(where.find_all(exp.Or))
    literals = [literal.this for literal in where.find_all(exp.Literal) if literal.is_string]
    assert "u1' OR '1'='1" in literals


def test_the_engines_differ_only_in_the_relation_and_the_property_lookup() -> None:
    query = UsageQuery.model_validate(QUERIES[1])
    athena, duckdb = build_sql(query, "acme", ATHENA), build_sql(query, "acme", duckdb_dialect())
    assert athena.params == duckdb.params
    assert (
        athena.text.replace(ATHENA.relation, "ledger_entries").replace("element_at(properties, ?)", "properties[?]")
        == duckdb.text
    )
    assert "element_at(properties, ?)" in athena.text  # Trino's map[key] fails on a missing key; element_at is NULL
