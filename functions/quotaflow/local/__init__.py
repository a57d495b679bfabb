"""`quotaflow serve`: the Lambda handlers in one local process, on embedded DynamoDB or any endpoint."""
