"""The kinds of batch job the console serves. Each kind's pages (list, create, detail, status, downloads)
are the same code; an entry here says what differs: the model and form, the URL names, the labels, and
which of the inference job's extras (item titles, exploration, clone and rerun) the kind has."""

from dataclasses import dataclass

from django import forms
from django.urls import reverse

from batchjobs.forms import BatchInferenceJobForm, BatchSegmentJobForm
from batchjobs.models import BatchInferenceJob, BatchJob, BatchSegmentJob


@dataclass(frozen=True)
class JobKind:
    model: type[BatchJob]
    form: type[forms.Form]
    # URL names are batchjobs:<slug>_list, _create, _detail, _status, _list_status and _download, and
    # templates batchjobs/<slug>_list.html, _create.html.
    slug: str
    title: str
    form_id: str
    # The create form's AWS CLI operation, for the CLI/boto3 panel.
    operation: str
    num_results_label: str
    items_heading: str
    # Output previews name recommended items by their titles in the Items dataset.
    item_titles: bool = False
    exploration: bool = False
    # Clone, download the failed lines and re-run them.
    reruns: bool = False

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
    model=BatchInferenceJob,
    form=BatchInferenceJobForm,
    slug="job",
    title="Batch inference job",
    form_id="batch-job-form",
    operation="create-batch-inference-job",
    num_results_label="Number of results",
    items_heading="Recommended items",
    item_titles=True,
    exploration=True,
    reruns=True,
)

SEGMENT = JobKind(
    model=BatchSegmentJob,
    form=BatchSegmentJobForm,
    slug="segment_job",
    title="Batch segment job",
    form_id="batch-segment-job-form",
    operation="create-batch-segment-job",
    num_results_label="Number of users",
    items_heading="Recommended users",
)

KINDS = (INFERENCE, SEGMENT)
