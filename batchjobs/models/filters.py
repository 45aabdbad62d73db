"""Filters over a dataset group's data, for batch jobs and campaigns."""

from functools import cached_property

from django.db import models

from batchjobs import validation
from batchjobs.errors import (
    InvalidInputException,
    LimitExceededException,
)
from batchjobs.models.base import AsyncResource, Named, Status
from batchjobs.models.datasets import DatasetGroup
from engine.filters import FilterSyntaxError, FilterValidationError, parse_filter, validate_filter


class Filter(Named, AsyncResource):
    """A filter expression over a dataset group's data, validated against its schemas when created."""

    ARN_TYPE = "filter"

    # The service's quotas: filters per dataset group, and distinct dataset fields across them.
    MAX_PER_GROUP = 30
    MAX_FIELDS_PER_GROUP = 20

    name = models.CharField(max_length=63, unique=True)
    arn = models.CharField(max_length=256, unique=True)
    dataset_group = models.ForeignKey(DatasetGroup, related_name="filters", on_delete=models.CASCADE)
    filter_expression = models.TextField()
    placeholders = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]

    @cached_property
    def parsed(self):
        # Parsed once per row: target checks and job starts ask for it repeatedly.
        return parse_filter(self.filter_expression)

    @property
    def target(self) -> str:
        """"ItemID" for recommendation filters, "UserID" for segment filters."""
        return self.parsed.target

    @classmethod
    def create_validated(cls, name: str, dataset_group_arn: str, filter_expression: str, tags=None) -> "Filter":
        """Syntax errors are refused at once (InvalidInputException, with the position); a filter that parses
        is saved, then checked against the dataset group's schemas: ACTIVE, or CREATE FAILED with the reason."""
        validation.check_name(name)
        validation.check_length(filter_expression, "filterExpression", max_length=2500)
        group = validation.lookup(DatasetGroup.objects, dataset_group_arn, "datasetGroupArn")
        try:
            parsed = parse_filter(filter_expression)
        except FilterSyntaxError as exc:
            raise InvalidInputException(str(exc), field="filterExpression") from None
        tags = validation.check_tags(tags)
        with cls.creating(name):
            others = list(group.filters.exclude(status=Status.CREATE_FAILED))
            if len(others) >= cls.MAX_PER_GROUP:
                raise LimitExceededException(
                    f"The dataset group {group.name} already has {len(others)} filters; the quota is "
                    f"{cls.MAX_PER_GROUP}."
                )
            fields = set(parsed.fields).union(*(f.parsed.fields for f in others))
            if len(fields) > cls.MAX_FIELDS_PER_GROUP:
                raise LimitExceededException(
                    f"The filters of dataset group {group.name} would use {len(fields)} distinct dataset fields; "
                    f"the quota is {cls.MAX_FIELDS_PER_GROUP}."
                )
            row = cls.objects.create(name=name, dataset_group=group, filter_expression=filter_expression, tags=tags)
            row.start()
            schemas = {ds.dataset_type: ds.schema.field_names for ds in group.datasets.select_related("schema")}
            try:
                placeholders = validate_filter(parsed, schemas)
            except FilterValidationError as exc:
                row.fail(str(exc))
            else:
                row.succeed("The filter matches the dataset group's schemas.", placeholders=placeholders)
        return row
