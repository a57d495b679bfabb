"""CDK app entry point: `cdk.json` runs this with the repo's .venv Python. Context (`-c key=value`): stage,
table_name, log_retention_days, bundling (pip | stub); see infra/quotaflow_infra/settings.py."""

from quotaflow_infra.build import build_app

app, _stack = build_app()
app.synth()
