"""The kinds of batch job the console serves. Each kind's pages (list, create, detail, status, downloads),
API operations, task and reconciliation are the same code; an entry here says what differs: the model (whose
name also names the form, the task and the CLI operation), the recipes it runs, its quota, what it recommends,
the URL names, the labels, and which of the inference job's extras (item titles, exploration, clone and rerun,
sharding) the kind has.

The model and form are named, not imported: the models and forms read this registry too."""

import re
from dataclasses import dataclass

from django.apps import apps
from django.conf import settings
from django.urls import reverse
from django.utils.module_loading import import_string


def member_name(resource: str) -> str:
    """The API's member name for a resource type: BatchInferenceJob -> batchInferenceJob."""
    return resource[0].lower() + resource[1:]


@dataclass(frozen=True)
class JobKind:
    # The model's class name, which is also the API's name for the resource (DescribeBatchInferenceJob,
    # batchInferenceJobArn, batchInferenceJobs); its form, task, CLI operation and title are named after it.
    name: str
    # Recipe types a job of this kind runs; the create form offers only solutions with one of them.
    recipe_types: tuple[str, ...]
    # The setting holding the quota on jobs pending or in progress.
    quota_setting: str
    # What a job recommends for each input line, "items" or "users": what its filter must filter too.
    recommends: str
    max_num_results: int
    # URL names are batchjobs:<slug>_list, _create, _detail, _status, _list_status and _download, and
    # templates batchjobs/<slug>_list.html, _create.html.
    slug: str
    num_results_label: str
    # Output previews name recommended items by their titles in the Items dataset.
    item_titles: bool = False
    exploration: bool = False
    # Clone, download the failed lines and re-run them.
    reruns: bool = False
    # A large input is split into BatchShard rows run in parallel, then joined.
    shards: bool = False

    @property
    def form_name(self) -> str:
        return self.name + "Form"

    @property
    def task(self) -> str:
        """The RQ task that runs one job, by its dotted path (what the queue stores): run_batch_inference_job."""
        return "batchjobs.tasks.run_" + "_".join(self._words())

    @property
    def operation(self) -> str:
        """The create form's AWS CLI operation, for the CLI/boto3 panel: create-batch-inference-job."""
        return "create-" + "-".join(self._words())

    @property
    def title(self) -> str:
        return " ".join(self._words()).capitalize()

    @property
    def form_id(self) -> str:
        return f"batch-{self.slug.replace('_', '-')}-form"

    @property
    def filter_target(self) -> str:
        """What the job's filter must filter: "ItemID" or "UserID"."""
        return {"items": "ItemID", "users": "UserID"}[self.recommends]

    @property
    def items_heading(self) -> str:
        return f"Recommended {self.recommends}"

    def _words(self) -> list[str]:
        return [word.lower() for word in re.findall(r"[A-Z][a-z]*", self.name)]

    @property
    def model(self):
        return apps.get_model("batchjobs", self.name)

    @property
    def form(self):
        return import_string(f"batchjobs.forms.{self.form_name}")

    @property
    def quota(self) -> int:
        return getattr(settings, self.quota_setting)

    @property
    def api_member(self) -> str:
        """The resource's member name in the API: batchInferenceJob."""
        return member_name(self.name)

    @property
    def plural(self) -> str:
        return self.title + "s"

    @property
    def singular(self) -> str:
        return self.title.lower()

    def url(self, page: str, *args) -> str:
        return reverse(f"batchjobs:{self.slug}_{page}", args=args)

    def context(self, group) -> dict:
        """What the shared templates read, as `kind`."""
        return {
            "prefix": self.slug,
            "plural": self.plural,
            "singular": self.singular,
            "title": self.title,
            "list_url": self.url("list", group.pk),
            "create_url": self.url("create", group.pk),
            "detail_url_name": f"batchjobs:{self.slug}_detail",
            "form_id": self.form_id,
            "num_results_label": self.num_results_label,
            "items_heading": self.items_heading,
            "exploration": self.exploration,
            "reruns": self.reruns,
        }


INFERENCE = JobKind(
    name="BatchInferenceJob",
    recipe_types=("USER_PERSONALIZATION", "PERSONALIZED_RANKING", "RELATED_ITEMS"),
    quota_setting="MAX_ACTIVE_BATCH_JOBS",
    recommends="items",
    max_num_results=500,
    slug="job",
    num_results_label="Number of results",
    item_titles=True,
    exploration=True,
    reruns=True,
    shards=True,
)

SEGMENT = JobKind(
    name="BatchSegmentJob",
    recipe_types=("USER_SEGMENTATION",),
    quota_setting="MAX_ACTIVE_BATCH_SEGMENT_JOBS",
    recommends="users",
    # The service's maximum number of users per segment.
    max_num_results=5_000_000,
    slug="segment_job",
    num_results_label="Number of users",
)

KINDS = (INFERENCE, SEGMENT)


def kind_of(model) -> JobKind:
    """The kind of a batch job model or row."""
    name = model.__name__ if isinstance(model, type) else type(model).__name__
    return next(kind for kind in KINDS if kind.name == name)
