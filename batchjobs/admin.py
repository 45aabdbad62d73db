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


@admin.register(DatasetGroup)
class DatasetGroupAdmin(AsyncResourceAdmin):
    list_display = ("name", "status", "domain", "created")
    list_filter = ("status", "domain")
    search_fields = ("name", "arn")


@admin.register(Schema)
class SchemaAdmin(admin.ModelAdmin):
    list_display = ("name", "domain", "created")
    search_fields = ("name", "arn")
    readonly_fields = ("arn", "created", "last_updated")


@admin.register(Dataset)
class DatasetAdmin(AsyncResourceAdmin):
    list_display = ("name", "dataset_group", "dataset_type", "status", "record_count", "created")
    list_filter = ("status", "dataset_type")
    search_fields = ("name", "arn", "dataset_group__name")
    list_select_related = ("dataset_group",)


@admin.register(DatasetImportJob)
class DatasetImportJobAdmin(AsyncResourceAdmin):
    list_display = ("job_name", "dataset", "status", "import_mode", "records_imported", "created")
    list_filter = ("status", "import_mode")
    search_fields = ("job_name", "arn", "data_location")
    list_select_related = ("dataset",)


@admin.register(DatasetExportJob)
class DatasetExportJobAdmin(AsyncResourceAdmin):
    list_display = ("job_name", "dataset", "status", "ingestion_mode", "records_exported", "created")
    list_filter = ("status", "ingestion_mode")
    search_fields = ("job_name", "arn", "output_path")
    list_select_related = ("dataset",)


@admin.register(Solution)
class SolutionAdmin(AsyncResourceAdmin):
    list_display = ("name", "dataset_group", "recipe_arn", "status", "created")
    list_filter = ("status", "recipe_arn")
    search_fields = ("name", "arn", "recipe_arn")
    list_select_related = ("dataset_group",)


@admin.register(SolutionVersion)
class SolutionVersionAdmin(AsyncResourceAdmin):
    list_display = ("arn", "solution", "status", "training_mode", "training_hours", "created")
    list_filter = ("status", "training_mode", "solution__recipe_arn")
    search_fields = ("arn", "name", "solution__name")
    list_select_related = ("solution",)


@admin.register(Campaign)
class CampaignAdmin(AsyncResourceAdmin):
    list_display = ("name", "solution_version", "status", "min_provisioned_tps", "created")
    search_fields = ("name", "arn", "solution_version__arn")
    list_select_related = ("solution_version",)
    raw_id_fields = ("solution", "solution_version")


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


@admin.register(Filter)
class FilterAdmin(AsyncResourceAdmin):
    list_display = ("name", "dataset_group", "status", "filter_expression", "created")
    search_fields = ("name", "arn", "filter_expression")
    list_select_related = ("dataset_group",)


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
