"""The Oracle's view of a DynamoDB table: plain values in and out, as its document client.

Built on the counted low-level client of ``AwsClients``, so every call is evidence.
"""

from __future__ import annotations

from typing import Any

from mirror_rollout.aws import AwsClients


class DdbTable:
    """A table over the counted low-level client: plain values in, plain values out."""

    _IN = ("Item", "Key", "ExpressionAttributeValues", "ExclusiveStartKey")
    _OUT = ("Item", "Attributes", "LastEvaluatedKey")

    def __init__(self, clients: AwsClients, name: str):
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self.client = clients.client("dynamodb")
        self.name = name
        self._ser, self._des = TypeSerializer(), TypeDeserializer()

    def _wire(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(v) for k, v in values.items()}

    def _plain(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: self._des.deserialize(v) for k, v in values.items()}

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        for name in self._IN:
            if name in kwargs:
                kwargs[name] = self._wire(kwargs[name])
        response = getattr(self.client, operation)(TableName=self.name, **kwargs)
        for name in self._OUT:
            if name in response:
                response[name] = self._plain(response[name])
        if "Items" in response:
            response["Items"] = [self._plain(i) for i in response["Items"]]
        return response

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("put_item", **kwargs)

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("get_item", **kwargs)

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("update_item", **kwargs)

    def query(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("query", **kwargs)

    def scan(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("scan", **kwargs)

    def delete_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("delete_item", **kwargs)
