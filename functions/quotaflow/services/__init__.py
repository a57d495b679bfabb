"""Use cases as plain functions over a `Scope` (a tenant's view of the store at one moment)."""
