"""CDK app entry point (`cdk.json` runs this). The stack itself is not written yet: until it is, this says so
and fails, rather than synthesizing an empty template that could be mistaken for a deployable one."""

import sys

sys.exit("quotaflow: the CDK stack (QuotaflowStack) is not written yet; run `quotaflow serve` locally meanwhile.")
