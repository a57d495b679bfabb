"""The `quotaflow` command line."""
