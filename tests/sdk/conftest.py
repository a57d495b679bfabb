from tests.sdk.support import proxy, qf, server, tenant  # noqa: F401 - fixtures
