"""quotaflow: usage metering and credits for AI apps."""

__version__ = "0.1.0"
