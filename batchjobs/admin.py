"""The Django admin for operators: every resource, read-only ARNs and histories, no secrets."""

from django.contrib import admin
from django.contrib.contenttypes.admin import GenericTabularInline

from batchjobs.models import (
    AccessKey,
    BatchInferenceJob,
    BatchSegmentJob,
    BatchShard,
    Campaign,
    Dataset,
    DatasetExportJob,
    DatasetGroup,
    DatasetImportJob,
    Filter,
    Role,
    Schema,
    Solution,
    SolutionVersion,
    StatusTransition,
)


class StatusTransitionInline(GenericTabularInline):
    """The status history, as the workers wrote it: never edited by hand."""

    model = StatusTransition
    fields = ("status", "at", "message")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("at", "pk")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AsyncResourceAdmin(admin.ModelAdmin):
    inlines = [StatusTransitionInline]
    list_filter = ("status",)
    date_hierarchy = "created"
    # The status moves only through the model's compare-and-swap transitions.
    readonly_fields = ("arn", "status", "failure_reason", "created", "last_updated")


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ("name", "arn", "created")
    search_fields = ("name", "arn")
    readonly_fields = ("arn", "created")


@admin.register(Schema)
class SchemaAdmin(admin.ModelAdmin):
    list_display = ("name", "domain", "created")
    search_fields = ("name", "arn")
    readonly_fields = ("arn", "created", "last_updated")


def register_resource(model, list_display, search=(), filters=(), **options) -> None:
    """Register an asynchronous resource's admin: its changelist's columns, the fields searched besides its
    name and ARN, and its filters besides status. The foreign keys among the columns are fetched with the list."""
    related = tuple(column for column in list_display if model._meta.get_field(column).many_to_one)
    options.update(
        list_display=list_display,
        search_fields=(model.NAME_FIELD, "arn", *search),
        list_filter=("status", *filters),
    )
    if related:
        options["list_select_related"] = related
    admin.site.register(model, type(f"{model.__name__}Admin", (AsyncResourceAdmin,), options))


register_resource(DatasetGroup, ("name", "status", "domain", "created"), filters=("domain",))
register_resource(Dataset, ("name", "dataset_group", "dataset_type", "status", "record_count", "created"),
                  search=("dataset_group__name",), filters=("dataset_type",))
register_resource(DatasetImportJob, ("job_name", "dataset", "status", "import_mode", "records_imported", "created"),
                  search=("data_location",), filters=("import_mode",))
register_resource(DatasetExportJob, ("job_name", "dataset", "status", "ingestion_mode", "records_exported", "created"),
                  search=("output_path",), filters=("ingestion_mode",))
register_resource(Solution, ("name", "dataset_group", "recipe_arn", "status", "created"),
                  search=("recipe_arn",), filters=("recipe_arn",))
register_resource(SolutionVersion, ("arn", "solution", "status", "training_mode", "training_hours", "created"),
                  search=("solution__name",), filters=("training_mode", "solution__recipe_arn"))
register_resource(Campaign, ("name", "solution_version", "status", "min_provisioned_tps", "created"),
                  search=("solution_version__arn",), raw_id_fields=("solution", "solution_version"))
register_resource(Filter, ("name", "dataset_group", "status", "filter_expression", "created"),
                  search=("filter_expression",))


class BatchJobAdmin(AsyncResourceAdmin):
    list_display = ("job_name", "status", "solution_version", "lines_done", "lines_failed", "created", "last_updated")
    list_filter = ("status", "solution_version__solution__recipe_arn")
    search_fields = ("job_name", "arn", "solution_version__arn", "input_path", "output_path")
    list_select_related = ("solution_version",)
    raw_id_fields = ("solution_version", "created_by")
    readonly_fields = AsyncResourceAdmin.readonly_fields + (
        "lines_done", "lines_failed", "input_bytes", "input_files", "output_files",
    )
    # Both pages link to django-rq's dashboard (queues, workers, failed RQ jobs), mounted by django-rq's
    # own admin under /admin/django_rq/dashboard/ for staff.
    change_list_template = "admin/batchjobs/batch_job_change_list.html"
    change_form_template = "admin/batchjobs/batch_job_change_form.html"


@admin.register(BatchInferenceJob)
class BatchInferenceJobAdmin(BatchJobAdmin):
    list_filter = ("status", "mode", "solution_version__solution__recipe_arn")


@admin.register(BatchSegmentJob)
class BatchSegmentJobAdmin(BatchJobAdmin):
    pass


@admin.register(BatchShard)
class BatchShardAdmin(AsyncResourceAdmin):
    list_display = ("__str__", "job", "status", "input_uri", "lines_done", "lines_failed", "last_updated")
    search_fields = ("job__job_name", "input_uri", "output_uri")
    list_select_related = ("job",)
    raw_id_fields = ("job",)
    # Shards have no ARN; their ranges and counts are the worker's to write.
    readonly_fields = ("status", "failure_reason", "created", "last_updated", "byte_start", "byte_end",
                       "lines_read", "lines_done", "lines_failed", "error_counts", "error_examples")
    change_list_template = BatchJobAdmin.change_list_template
    change_form_template = BatchJobAdmin.change_form_template


@admin.register(AccessKey)
class AccessKeyAdmin(admin.ModelAdmin):
    list_display = ("access_key_id", "user", "is_active", "created", "last_used")
    list_filter = ("is_active",)
    search_fields = ("access_key_id", "user__username")
    # The secret is shown once, to its owner, when the key is issued; never here.
    exclude = ("secret_access_key",)
    readonly_fields = ("access_key_id", "user", "created", "last_used")

    def has_add_permission(self, request):
        # Keys are issued with a fresh secret by AccessKey.issue (console or createaccesskey), not typed in.
        return False


@admin.register(StatusTransition)
class StatusTransitionAdmin(admin.ModelAdmin):
    list_display = ("content_type", "object_id", "status", "at", "message")
    list_filter = ("status", "content_type")
    search_fields = ("message",)
    readonly_fields = ("content_type", "object_id", "status", "at", "message")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

from batchjobs import event_trackers_admin  # noqa: E402, F401
