"""Routes for agent runs and long calls: draw on a reservation's hold, increase it, extend it, list its steps.

Importing this module registers the routes on the resolver in `quotaflow.handlers.http`."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from quotaflow.handlers import schemas
from quotaflow.handlers.http import access, app, idempotency_claim, path_id, tenant_scope
from quotaflow.services import pricing, runs
from quotaflow.services.views import DrawView, ReservationView, StepsView

STEPS_PAGE_DEFAULT = 50


@app.post("/v1/reservations/<reservation_id>/draw")
@access("secret")
def draw(reservation_id: str, body: Annotated[schemas.DrawBody, Body()]) -> DrawView:
    """Record usage that happened against the hold and keep the reservation open (agent steps, long streams)."""
    scope = tenant_scope()
    lines, priced = pricing.resolve_lines(scope, [line.priced() for line in body.lines])
    properties = {**body.properties, **({"pricing": priced} if priced else {})}
    rid = path_id(reservation_id, "reservation_id")
    return runs.draw(scope, rid, lines, idempotency_claim(200), properties or None)


@app.post("/v1/reservations/<reservation_id>/increase")
@access("secret")
def increase(reservation_id: str, body: Annotated[schemas.IncreaseBody, Body()]) -> ReservationView:
    """A bigger hold, guarded like a new reserve (402 changes nothing)."""
    scope = tenant_scope()
    return runs.increase(scope, path_id(reservation_id, "reservation_id"), body.lines, idempotency_claim(200))


@app.post("/v1/reservations/<reservation_id>/extend")
@access("secret")
def extend(reservation_id: str, body: Annotated[schemas.ExtendBody, Body()]) -> ReservationView:
    """A heartbeat: the reservation now expires `ttl_seconds` from now (at most 7 days after its creation)."""
    scope = tenant_scope()
    return runs.extend(scope, path_id(reservation_id, "reservation_id"), body.ttl_seconds, idempotency_claim(200))


@app.get("/v1/reservations/<reservation_id>/steps")
@access("secret")
def steps(
    reservation_id: str,
    limit: Annotated[int, Query(ge=1, le=runs.STEPS_PAGE_MAX)] = STEPS_PAGE_DEFAULT,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> StepsView:
    """The reservation's draws, oldest first: lines, overage and step properties."""
    scope = tenant_scope()
    return runs.steps(scope, path_id(reservation_id, "reservation_id"), limit, cursor)
