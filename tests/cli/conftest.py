from tests.sdk.support import qf, server, tenant  # noqa: F401 - fixtures
