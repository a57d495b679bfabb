"""The loopback Stripe server in its own process for the bench: Stripe's work is not on the exporter's CPU (nor
under its interpreter lock), as it is not in AWS. The child runs `tests.support.stripe_stub.StripeStub` and
answers two questions over a pipe: where it listens, and, when stopped, what it received."""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import TracebackType

START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Received:
    meter_events: int
    in_flight_max: int


def _serve(control: Connection, latency_s: float, customers: list[str], meters: list[str]) -> None:
    from tests.support.stripe_stub import StripeStub

    with StripeStub() as stub:
        stub.latency_seconds = latency_s
        stub.add_customers(*customers)
        stub.add_meters(*meters)
        control.send((stub.url, stub.api_key))
        control.recv()  # stop
        control.send(Received(len(stub.meter_events), stub.in_flight_max))


class StripeProcess:
    def __init__(self, *, latency_s: float, customers: list[str], meters: list[str]) -> None:
        context = multiprocessing.get_context("spawn")
        self._control, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, latency_s, customers, meters), name="stripe-stub", daemon=True
        )
        self.url = self.api_key = ""
        self.received: Received | None = None

    def __enter__(self) -> StripeProcess:
        self._process.start()
        if not self._control.poll(START_TIMEOUT_S):
            self._process.kill()
            raise RuntimeError("the Stripe stub process did not start")
        self.url, self.api_key = self._control.recv()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._control.send("stop")
        if self._control.poll(START_TIMEOUT_S):
            self.received = self._control.recv()
        self._process.join(START_TIMEOUT_S)
        if self._process.is_alive():
            self._process.kill()
