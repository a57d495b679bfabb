"""DynamoDB: the single table's keys, item shapes and the boto3 calls."""
