"""The domain core: counters, limits, periods, reservations and the ledger. Pure: no I/O, no clock reads."""
