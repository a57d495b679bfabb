"""The table's stream, read by polling, for `serve`: what Lambda's event source mapping does in AWS. Records are
handed to the notifier in the shape Lambda gives them."""

from __future__ import annotations

from typing import Any

RECORDS_PER_READ_MAX = 1000


class StreamPoller:
    def __init__(self, dynamodb: Any, streams: Any, table_name: str) -> None:
        self.streams = streams
        self.arn: str = dynamodb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
        self.iterators: dict[str, str | None] = {}

    def poll(self) -> list[dict[str, Any]]:
        """Every record written since the last poll (from the stream's start on the first)."""
        records: list[dict[str, Any]] = []
        for shard in self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]:
            shard_id = shard["ShardId"]
            if shard_id not in self.iterators:
                self.iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self.arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            iterator = self.iterators[shard_id]
            if iterator is None:
                continue  # a closed shard, read to its end
            page = self.streams.get_records(ShardIterator=iterator, Limit=RECORDS_PER_READ_MAX)
            self.iterators[shard_id] = page.get("NextShardIterator")
            records += [_lambda_shaped(record, self.arn) for record in page["Records"]]
        return records


def _lambda_shaped(record: dict[str, Any], arn: str) -> dict[str, Any]:
    change = dict(record.get("dynamodb") or {})
    created = change.get("ApproximateCreationDateTime")
    if created is not None and not isinstance(created, int | float):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "dynamodb": change, "eventSourceARN": arn}
