"""What every API handler reads: the request's members, keyset pagination, and the table of resources
that one generic Describe and one generic List serve."""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.core import signing
from django.db.models import Q

from batchjobs import serializers, validation
from batchjobs.errors import InvalidInputException, InvalidNextTokenException
from batchjobs.kinds import KINDS, member_name
from batchjobs.models import (
    Campaign,
    Dataset,
    DatasetExportJob,
    DatasetGroup,
    DatasetImportJob,
    EventTracker,
    Filter,
    Schema,
    Solution,
    SolutionVersion,
)


@dataclass(frozen=True)
class Call:
    params: dict
    user: object


@dataclass(frozen=True)
class Operation:
    handler: Callable[[Call], dict]
    # Creates or changes something: refused to read-only users.
    mutates: bool = False


# ---------------------------------------------------------------------------------------------------
# Request members. validation.check_request has checked every member against the operation's input
# shape before a handler runs, so here they only need to be read.


def _member(params: dict, *path: str, required: bool = False, default=None):
    """The value at `path` in the request (e.g. "jobInput", "s3DataSource", "path")."""
    value = params
    for depth, name in enumerate(path):
        value = value.get(name) if isinstance(value, dict) else None
        if value is None:
            if required:
                raise validation.null_error(".".join(path[: depth + 1]))
            return default
    return value


def _text(params: dict, *path: str, required: bool = False) -> str:
    return _member(params, *path, required=required, default="")


# ---------------------------------------------------------------------------------------------------
# Pagination: keyset tokens. A token names the list, the filter it was asked with and the last item it
# returned (creation time and id, the list's order); it is signed, so it cannot be forged or moved to
# another list. A resource created between two pages is newer than the position, so it never shows up
# again on a later page.

_TOKEN_SALT = "batchjobs.api.nextToken"


def _encode_token(result_key: str, scope: str, position: list) -> str:
    return signing.dumps({"list": result_key, "scope": scope, "after": position}, salt=_TOKEN_SALT, compress=True)


def _decode_token(token, result_key: str, scope: str) -> list | None:
    if token is None:
        return None
    try:
        decoded = signing.loads(token, salt=_TOKEN_SALT)
        if decoded["list"] != result_key or decoded["scope"] != scope:
            raise ValueError
        return list(decoded["after"])
    except (signing.BadSignature, ValueError, TypeError, KeyError):
        raise InvalidNextTokenException("Invalid next token.", field="nextToken") from None


def _page_size(call: Call) -> int:
    return _member(call.params, "maxResults", default=100)


def _page(call: Call, rows, result_key: str, to_api: Callable, scope: str = "") -> dict:
    """One page of `rows` (a queryset, newest first) under `result_key`, with nextToken if there are more.
    `scope` names the filter the list was asked with (e.g. the dataset group's ARN)."""
    size = _page_size(call)
    after = _decode_token(call.params.get("nextToken"), result_key, scope)
    rows = rows.order_by("-created", "-pk")
    if after is not None:
        try:
            created, pk = dt.datetime.fromisoformat(after[0]), int(after[1])
        except (ValueError, TypeError, IndexError):
            raise InvalidNextTokenException("Invalid next token.", field="nextToken") from None
        rows = rows.filter(Q(created__lt=created) | Q(created=created, pk__lt=pk))
    window = list(rows[: size + 1])
    body = {result_key: [to_api(row) for row in window[:size]]}
    if len(window) > size:
        last = window[size - 1]
        body["nextToken"] = _encode_token(result_key, scope, [last.created.isoformat(), last.pk])
    return body


def _page_of_list(call: Call, items: list, key: Callable, result_key: str, to_api: Callable, scope: str) -> dict:
    """`_page` for a fixed list (the built-in recipes): the position is the last item's `key`."""
    size = _page_size(call)
    after = _decode_token(call.params.get("nextToken"), result_key, scope)
    keys = [key(item) for item in items]
    start = 0
    if after is not None:
        if after[:1] == [] or after[0] not in keys:
            raise InvalidNextTokenException("Invalid next token.", field="nextToken")
        start = keys.index(after[0]) + 1
    window = items[start : start + size]
    body = {result_key: [to_api(item) for item in window]}
    if start + size < len(items):
        body["nextToken"] = _encode_token(result_key, scope, [key(window[-1])])
    return body


def _filtered(call: Call, queryset, member: str, parent_model, field: str) -> tuple:
    """`queryset` narrowed to the parent named by the optional ARN member (ResourceNotFound if unknown),
    and the ARN as the pagination scope."""
    arn = _text(call.params, member)
    if not arn:
        return queryset, ""
    parent = validation.lookup(parent_model.objects, arn, member)
    return queryset.filter(**{field: parent}), arn


def _tags(params: dict) -> list:
    return _member(params, "tags", default=[])


def refuse_member(params: dict, member: str, why: str) -> None:
    """Refuse a request member this server does not act on, saying why, rather than drop it."""
    if _member(params, member):
        raise InvalidInputException(f"{member} {why}", field=member)


def create(call: Call, model, *required, **members) -> dict:
    """A Create* operation: `model.create_validated` takes the text members at the `required` paths (a
    member's name, or a tuple naming a nested one) in order, then `members` and the request's tags; the
    answer is the new resource's ARN, under the model's member name (datasetArn for Dataset)."""
    texts = [_text(call.params, *((path,) if isinstance(path, str) else path), required=True) for path in required]
    row = model.create_validated(*texts, **members, tags=_tags(call.params))
    return {member_name(model.__name__) + "Arn": row.arn}


def deletes(resource: str) -> Callable[[Call], dict]:
    """The Delete* operation of a resource whose model's delete_validated holds the rules."""

    def delete(call: Call) -> dict:
        RESOURCES[resource].get(call).delete_validated()
        return {}

    return delete



# ---------------------------------------------------------------------------------------------------
# Describe and List, the same for every resource: a row found by its ARN member, or a page of rows
# (narrowed to a parent when the request names one), through the resource's serializers.


@dataclass(frozen=True)
class Parent:
    member: str
    model: type
    field: str


@dataclass(frozen=True)
class Resource:
    # The API's name for the resource, which is also the model's: DescribeDatasetGroup, datasetGroupArn.
    name: str
    rows: object
    parent: Parent | None = None
    # The List answer's member; the service capitalises one of them ("Filters").
    list_member: str = ""

    @property
    def model(self) -> type:
        return self.rows.model

    @property
    def member(self) -> str:
        return member_name(self.name)

    @property
    def arn_member(self) -> str:
        return self.member + "Arn"

    def _serializer(self, suffix: str = "") -> Callable:
        snake = "".join("_" + c.lower() if c.isupper() else c for c in self.name).lstrip("_")
        return getattr(serializers, snake + suffix)

    def get(self, call: Call):
        return validation.lookup(self.rows, _text(call.params, self.arn_member, required=True), self.arn_member)

    def describe(self, call: Call) -> dict:
        return {self.member: self._serializer()(self.get(call))}

    def list(self, call: Call) -> dict:
        rows, scope = self.rows.all(), ""
        if self.parent is not None:
            rows, scope = _filtered(call, rows, self.parent.member, self.parent.model, self.parent.field)
        return _page(call, rows, self.list_member or self.member + "s", self._serializer("_summary"), scope)


_IN_GROUP = Parent("datasetGroupArn", DatasetGroup, "dataset_group")
_OF_SOLUTION = Parent("solutionArn", Solution, "solution")

RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource("DatasetGroup", DatasetGroup.objects.select_related("role")),
        Resource("Schema", Schema.objects.all()),
        Resource("Dataset", Dataset.objects.select_related("dataset_group", "schema"), _IN_GROUP),
        Resource(
            "DatasetImportJob",
            DatasetImportJob.objects.select_related("dataset", "role"),
            Parent("datasetArn", Dataset, "dataset"),
        ),
        Resource(
            "DatasetExportJob",
            DatasetExportJob.objects.select_related("dataset", "role"),
            Parent("datasetArn", Dataset, "dataset"),
        ),
        Resource("Solution", Solution.objects.select_related("dataset_group"), _IN_GROUP),
        Resource("SolutionVersion", SolutionVersion.objects.select_related("solution__dataset_group"), _OF_SOLUTION),
        *(
            Resource(
                kind.name,
                kind.model.objects.select_related("role"),
                Parent("solutionVersionArn", SolutionVersion, "solution_version"),
            )
            for kind in KINDS
        ),
        Resource("Filter", Filter.objects.select_related("dataset_group"), _IN_GROUP, list_member="Filters"),
        Resource("Campaign", Campaign.objects.select_related("solution", "solution_version"), _OF_SOLUTION),
        Resource("EventTracker", EventTracker.objects.select_related("dataset_group"), _IN_GROUP),
    )
}
