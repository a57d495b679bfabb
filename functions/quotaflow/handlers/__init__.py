"""One module per Lambda function: glue between events and use cases."""
