"""`make bench`: DynamoDB calls and capacity per operation, handler overhead, `serve` throughput, cold start and
cost, each measured as a ratio against the physical floor in the same run (`python -m tests.bench.run`).

Not collected by pytest (no `test_` modules here): the deterministic call budgets are asserted in
tests/store/test_budgets.py; this package measures what is noisy and reports it."""
