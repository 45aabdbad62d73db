"""The console as a user drives it in Chromium: sign in, import data through the forms, train, run a batch
job and watch it finish without reloading, download its output, and the form's error states."""

import json
import re
from pathlib import Path

import pytest

from batchjobs.demo import INTERACTIONS_SCHEMA, ITEMS_SCHEMA
from batchjobs.models import BatchInferenceJob, Role
from batchjobs.storage import object_storage
from engine import synthetic
from tests.browser.conftest import expect, sign_in
from tests.helpers import write_lines

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ACTIVE_TIMEOUT = 120_000


def _import(page, group_pk: int, dataset_type: str, name: str, schema: dict, location: str, role: Role, shot=None):
    page.goto(f"/dataset-groups/{group_pk}/datasets/create/")
    page.get_by_label("Dataset type").select_option(dataset_type)
    page.get_by_label("Dataset name").fill(name)
    page.get_by_label("New schema name").fill(f"{name}-schema")
    page.get_by_label("Schema definition").fill(json.dumps(schema, indent=2))
    page.get_by_role("button", name="Create dataset").click()
    expect(page.get_by_text(f"Dataset {name} created.")).to_be_visible()

    page.goto(f"/dataset-groups/{group_pk}/import-jobs/create/")
    page.get_by_label("Dataset import job name").fill(f"import-{name}")
    page.get_by_label("Dataset", exact=True).select_option(label=name)
    page.get_by_label("S3 data location").fill(location)
    page.get_by_label("IAM service role").select_option(label=role.name)
    cli = page.locator('[data-cli="cli"]')
    expect(cli).to_contain_text(f"--job-name import-{name}")
    expect(cli).to_contain_text(location)
    if shot:
        shot(page, "import-job-create")
    page.get_by_role("button", name="Start import").click()
    page.wait_for_url(re.compile(r"/import-jobs/\d+/$"))
    expect(page.locator('[data-live="badge"]')).to_have_text(re.compile("Active"), timeout=ACTIVE_TIMEOUT)


def test_a_user_imports_trains_and_runs_a_batch_job_watching_it_live(page, shot, workers, writer, live_server):
    data = synthetic.generate(n_users=150, n_items=60, n_interactions=3000, seed=5)
    storage = object_storage()
    storage.write_bytes("s3://bucket/data/interactions.csv", data.interactions_csv)
    storage.write_bytes("s3://bucket/data/items.csv", data.items_csv)
    write_lines(storage, "s3://bucket/in/users.json", [json.dumps({"userId": u}) for u in data.user_ids[:120]])
    role = Role.create_with_prefixes("browser-role", read=["s3://bucket/"], write=["s3://bucket/out/"])

    sign_in(page)
    expect(page.get_by_text("No dataset groups yet")).to_be_visible()
    shot(page, "dataset-groups-empty")
    page.get_by_role("link", name="Create dataset group").first.click()
    page.get_by_label("Dataset group name").fill("browser-movies")
    expect(page.locator('[data-cli="cli"]')).to_contain_text("--name browser-movies")
    shot(page, "dataset-group-create")
    page.get_by_role("button", name="Create dataset group").click()
    expect(page.get_by_role("heading", name=re.compile("browser-movies"))).to_be_visible()
    group_pk = int(re.search(r"/dataset-groups/(\d+)/", page.url).group(1))

    _import(page, group_pk, "INTERACTIONS", "interactions", INTERACTIONS_SCHEMA,
            "s3://bucket/data/interactions.csv", role, shot)
    shot(page, "import-job-detail")
    _import(page, group_pk, "ITEMS", "items", ITEMS_SCHEMA, "s3://bucket/data/items.csv", role)

    # Train a solution version and watch training finish on the page.
    page.goto(f"/dataset-groups/{group_pk}/solutions/create/")
    page.get_by_label("Solution name").fill("browser-up")
    page.get_by_label("Recipe").select_option("arn:aws:personalize:::recipe/aws-user-personalization")
    shot(page, "solution-create")
    page.get_by_role("button", name="Create solution").click()
    page.get_by_role("button", name="Create solution version").click()
    page.wait_for_url(re.compile(r"/solution-versions/\d+/$"))
    expect(page.locator('[data-live="badge"]')).to_have_text(re.compile("Active"), timeout=ACTIVE_TIMEOUT)
    page.reload()
    expect(page.locator("svg.chart[role=img]")).to_be_visible()
    shot(page, "solution-version-detail")

    # The overview draws the imported interactions.
    page.goto(f"/dataset-groups/{group_pk}/")
    expect(page.get_by_role("img", name="Interactions per week")).to_be_visible()
    expect(page.get_by_role("img", name="Item popularity curve")).to_be_visible()
    shot(page, "dataset-group-overview")

    # Create the batch job from the form; the equivalent CLI command follows the fields.
    page.goto(f"/dataset-groups/{group_pk}/batch-inference-jobs/create/")
    page.get_by_label("Batch inference job name").fill("browser-job")
    page.get_by_label("Solution", exact=True).select_option(label="browser-up")
    page.get_by_label("Solution version ID").select_option(index=1)
    page.get_by_label("Number of results").fill("5")
    page.get_by_label("S3 input path").fill("s3://bucket/in/users.json")
    page.get_by_label("S3 output path").fill("s3://bucket/out/")
    page.get_by_label("IAM service role").select_option(label="browser-role")
    cli = page.locator('[data-cli="cli"]')
    expect(cli).to_contain_text("aws personalize create-batch-inference-job")
    expect(cli).to_contain_text("--job-name browser-job")
    expect(cli).to_contain_text("--num-results 5")
    expect(cli).to_contain_text('\'{"s3DataSource":{"path":"s3://bucket/in/users.json"}}\'')
    expect(cli).to_contain_text('"itemExplorationConfig":{"explorationWeight":"0.3"')
    expect(cli).to_contain_text(f"--endpoint-url {live_server.url}/api/personalize")
    expect(page.locator('[data-cli="boto3"]')).to_contain_text("personalize.create_batch_inference_job(")
    shot(page, "job-create")
    page.get_by_role("button", name="Create batch inference job").click()
    page.wait_for_url(re.compile(r"/batch-inference-jobs/\d+/$"))

    # Live: the badge moves to Active with no reload (a marker set on the window survives).
    page.evaluate("window.__sameDocument = true")
    badge = page.locator('[data-live="badge"]')
    expect(badge).to_have_text(re.compile("Active"), timeout=ACTIVE_TIMEOUT)
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    bar = page.get_by_role("progressbar", name="Batch inference job progress")
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("table.preview-table")).to_be_visible()
    # Titles from the Items dataset appear beside the recommended ids.
    expect(page.locator(".item-title").first).to_be_visible()
    shot(page, "job-detail-active")

    with page.expect_download() as info:
        page.get_by_role("link", name="Download", exact=True).first.click()
    body = Path(info.value.path()).read_text()
    lines = [json.loads(line) for line in body.splitlines()]
    assert len(lines) == 120
    assert all(line["error"] is None and len(line["output"]["recommendedItems"]) == 5 for line in lines)

    page.goto(f"/dataset-groups/{group_pk}/batch-inference-jobs/")
    expect(page.locator('tr[data-job-id] [data-live="badge"]')).to_have_text(re.compile("Active"))
    shot(page, "job-list")


def test_the_list_page_updates_a_running_job_without_reloading(
    page, signed_in_writer, shot, trained_version, demo_world
):
    version = trained_version("aws-user-personalization", hidden_dimension=32)
    write_lines(object_storage(), "s3://bucket/in/users.json", [json.dumps({"userId": "u"})])
    job = BatchInferenceJob.create_validated(
        "list-live-job", version.arn, "s3://bucket/in/users.json", "s3://bucket/out/", demo_world["role"].arn
    )
    group_pk = demo_world["group"].pk
    page.goto(f"/dataset-groups/{group_pk}/batch-inference-jobs/")
    row = page.locator(f'tr[data-job-id="{job.pk}"]')
    expect(row.locator('[data-live="badge"]')).to_have_text(re.compile("Create pending"))
    page.evaluate("window.__sameDocument = true")
    # The worker's progress, as save_progress writes it, shows up on the next poll.
    job.start()
    job.save_progress(lines_done=40, lines_failed=3, input_bytes=4000, input_files=["s3://bucket/in/users.json"])
    expect(row.locator('[data-live="lines_done"]')).to_have_text("40")
    expect(row.locator('[data-live="lines_failed"]')).to_have_text("3")
    expect(row.locator('[data-live="badge"]')).to_have_text(re.compile("Create in progress"))
    expect(row.get_by_role("progressbar")).to_have_attribute("aria-valuenow", re.compile(r"\d+"))
    shot(page, "job-list-in-progress")
    job.succeed()
    expect(row.locator('[data-live="badge"]')).to_have_text(re.compile("Active"))
    assert page.evaluate("window.__sameDocument === true")


def test_the_job_form_shows_its_errors_inline(page, signed_in_writer, shot, workers, trained_version, demo_world):
    version = trained_version("aws-user-personalization", hidden_dimension=32)
    group_pk = demo_world["group"].pk
    storage = demo_world["storage"]
    # An itemId file for a user-personalization job: every line fails with the kind of error.
    item_ids = demo_world["data"].item_ids[:6]
    write_lines(storage, "s3://bucket/in/items.json", [json.dumps({"itemId": i}) for i in item_ids])
    BatchInferenceJob.create_validated(
        "taken-name", version.arn, "s3://bucket/in/items.json", "s3://bucket/out/other/", demo_world["role"].arn
    )
    create = f"/dataset-groups/{group_pk}/batch-inference-jobs/create/"

    # Missing fields.
    page.goto(create)
    page.get_by_role("button", name="Create batch inference job").click()
    expect(page.get_by_role("alert")).to_contain_text("Fix the errors below")
    expect(page.locator(".field.has-error")).to_have_count(6)
    expect(page.locator(".field.has-error").first).to_contain_text("This field is required.")
    shot(page, "job-create-missing-fields")

    def fill(name: str) -> None:
        page.get_by_label("Batch inference job name").fill(name)
        page.get_by_label("Solution", exact=True).select_option(label=version.solution.name)
        page.get_by_label("Solution version ID").select_option(label=version.version_id)
        page.get_by_label("S3 input path").fill("s3://bucket/in/items.json")
        page.get_by_label("S3 output path").fill("s3://bucket/out/wrong-kind/")
        page.get_by_label("IAM service role").select_option(label=demo_world["role"].name)
        page.get_by_role("button", name="Create batch inference job").click()

    # Name taken: the error sits beside the name field.
    fill("taken-name")
    name_field = page.locator(".field", has=page.get_by_label("Batch inference job name"))
    expect(name_field).to_contain_text("already exists")
    shot(page, "job-create-name-taken")

    # Wrong input kind: the job runs, every line fails, and the summary tells the kind.
    fill("wrong-kind-job")
    page.wait_for_url(re.compile(r"/batch-inference-jobs/\d+/$"))
    expect(page.locator('[data-live="badge"]')).to_have_text(re.compile("Active"), timeout=ACTIVE_TIMEOUT)
    errors = page.get_by_role("region", name=re.compile("Failed lines"))
    expect(errors).to_be_visible()
    expect(errors).to_contain_text("userId")
    expect(errors.get_by_role("cell", name=str(len(item_ids)), exact=True)).to_be_visible()
    shot(page, "job-detail-failed-lines")

    with page.expect_download() as info:
        page.get_by_role("link", name="Download failed lines").click()
    failed = [json.loads(line) for line in Path(info.value.path()).read_text().splitlines()]
    assert len(failed) == len(item_ids) and all(line["error"] for line in failed)

    page.get_by_role("button", name="Re-run failed lines").click()
    page.wait_for_url(re.compile(r"/batch-inference-jobs/create/\?"))
    expect(page.get_by_label("Batch inference job name")).to_have_value("wrong-kind-job-rerun-1")
    expect(page.get_by_label("S3 input path")).to_have_value("s3://bucket/out/wrong-kind/wrong-kind-job-failed-inputs.json")
    shot(page, "job-create-rerun")
