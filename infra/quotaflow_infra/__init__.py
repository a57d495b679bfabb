"""The quotaflow CDK app: one stack (`QuotaflowStack`) for the API, the table and the functions around it.

Modules, in reading order: `settings` (context → validated settings), `functions` (the registry: one line per
Lambda function), `bundling` (how a function's code and dependencies are packaged, without Docker), `lambdas`
(the one defaults factory every function goes through), `stack` (the resources and their wiring), `app`
(building the app with cdk-nag, shared by `infra/app.py` and the tests)."""
