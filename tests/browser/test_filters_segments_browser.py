"""Filters and batch segment jobs in Chromium: a filter's syntax error inline, the filters page, the
placeholder hint under the Filter select, and a finished segment job's detail with its preview."""

import json
import re

import pytest

from batchjobs import tasks
from batchjobs.models import BatchSegmentJob, Filter
from batchjobs.storage import object_storage
from tests.browser.conftest import expect
from tests.helpers import write_lines

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_filters_and_a_segment_job(page, signed_in_writer, shot, trained_version, demo_world):
    version = trained_version("aws-item-affinity")
    group_pk = demo_world["group"].pk

    page.goto(f"/dataset-groups/{group_pk}/filters/")
    page.get_by_role("link", name="Create filter").first.click()
    page.get_by_label("Filter name").fill("watchers")
    page.get_by_label("Expression").fill("INCLUDE UserID WHER Interactions.EVENT_TYPE")
    page.get_by_role("button", name="Create filter").click()
    expect(page.locator(".field-error")).to_contain_text("position")
    page.get_by_label("Expression").fill('INCLUDE UserID WHERE Interactions.EVENT_TYPE IN ("watch")')
    expect(page.locator('[data-cli="cli"]')).to_contain_text("create-filter")
    page.get_by_role("button", name="Create filter").click()
    expect(page.locator("h1")).to_contain_text("watchers")
    Filter.create_validated("genre", demo_world["group"].arn, "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")
    page.goto(f"/dataset-groups/{group_pk}/filters/")
    expect(page.locator("table")).to_contain_text("genre")
    shot(page, "filters")

    # The inference job form lists the chosen filter's placeholders.
    page.goto(f"/dataset-groups/{group_pk}/batch-inference-jobs/create/")
    hint = page.locator("#filter-placeholders")
    expect(hint).to_be_hidden()
    page.locator("#id_filter").select_option(label="genre")
    expect(hint).to_contain_text("GENRE")

    items = demo_world["data"].item_ids[:6]
    write_lines(object_storage(), "s3://bucket/in/items.json", [json.dumps({"itemId": i}) for i in items])
    page.goto(f"/dataset-groups/{group_pk}/batch-segment-jobs/create/")
    page.get_by_label("Batch segment job name").fill("item-segments")
    page.get_by_label("Solution", exact=True).select_option(label=version.solution.name)
    page.get_by_label("Solution version ID").select_option(label=version.version_id)
    page.get_by_label("Number of users").fill("8")
    page.get_by_label("S3 input path").fill("s3://bucket/in/items.json")
    page.get_by_label("S3 output path").fill("s3://bucket/out/segments/")
    page.get_by_label("IAM service role").select_option(label=demo_world["role"].name)
    page.locator("#id_filter").select_option(label="watchers")
    expect(page.locator('[data-cli="cli"]')).to_contain_text("--filter-arn")
    page.get_by_role("button", name="Create batch segment job").click()
    expect(page.locator("h1")).to_contain_text("item-segments")
    tasks.run_batch_segment_job(BatchSegmentJob.objects.get(job_name="item-segments").pk)
    expect(page.locator('[data-live="badge"]').first).to_have_text(re.compile("Active"), timeout=30_000)
    page.reload()
    expect(page.locator(".preview-table")).to_contain_text(items[0])
    expect(page.get_by_role("columnheader", name="Recommended users")).to_be_visible()
    shot(page, "segment-job-detail")
