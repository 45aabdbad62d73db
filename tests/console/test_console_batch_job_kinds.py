"""What the console pages of both batch job kinds do alike (they share their views and form base): each test
runs once per kind, on an ACTIVE version of a solution whose recipe the kind runs."""

from dataclasses import dataclass

import pytest

from batchjobs.kinds import INFERENCE, KINDS, SEGMENT, JobKind
from tests import factories

pytestmark = pytest.mark.django_db


@dataclass
class KindWorld:
    kind: JobKind
    client: object
    group: object
    solution: object
    version: object
    role: object

    def make_job(self, name: str, **fields):
        make = factories.make_job if self.kind is INFERENCE else factories.make_segment_job
        return make(self.version, self.role, name, **fields)

    def form_data(self, **overrides) -> dict:
        data = {
            "job_name": "my-job", "solution": self.solution.pk, "solution_version": self.version.pk,
            "num_results": "25", "input_path": "s3://bucket/in/users.json", "output_path": "s3://bucket/out/",
            "role": self.role.pk,
        }
        if self.kind.exploration:
            data.update(exploration_weight="0.3", exploration_item_age_cut_off="30")
        return {**data, **overrides}

    def post(self, capture_on_commit_callbacks, **overrides):
        """The create form posted: the response and the on-commit callbacks it registered (not run)."""
        with capture_on_commit_callbacks(execute=False) as callbacks:
            response = self.client.post(self.kind.url("create", self.group.pk), self.form_data(**overrides))
        return response, callbacks


RECIPES = {INFERENCE: factories.USER_PERSONALIZATION, SEGMENT: factories.ITEM_AFFINITY}


def _world(kind: JobKind, client, group, role) -> KindWorld:
    solution = factories.make_solution(group, "sol", RECIPES[kind])
    return KindWorld(kind, client, group, solution, factories.make_version(solution), role)


@pytest.fixture(params=KINDS, ids=lambda kind: kind.slug)
def world(request, signed_in, group, role) -> KindWorld:
    return _world(request.param, signed_in, group, role)


def test_the_form_has_the_console_fields_in_order(world):
    kind = world.kind
    html = world.client.get(kind.url("create", world.group.pk)).content.decode()
    labels = [
        f"{kind.title} details",
        f'for="id_job_name">{kind.title} name',
        'for="id_solution">Solution<',
        'for="id_solution_version">Solution version ID',
        f'for="id_num_results">{kind.num_results_label}',
        "Input source",
        'for="id_input_path">S3 input path',
        "Output destination",
        'for="id_output_path">S3 output path',
        'for="id_role">IAM service role',
        'for="id_filter">Filter',
    ]
    if kind.exploration:
        labels += [
            'for="id_exploration_weight">Emphasis on exploring less relevant items (exploration weight)',
            'for="id_exploration_item_age_cut_off">Exploration item age cutoff',
        ]
    labels.append(f"Create {kind.singular}</button>")
    positions = [html.index(label) for label in labels]
    assert positions == sorted(positions)
    assert 'placeholder="s3://bucket/output-folder/"' in html
    assert 'name="num_results" value="25"' in html


def test_it_uses_25_results_when_left_empty(world, django_capture_on_commit_callbacks):
    world.post(django_capture_on_commit_callbacks, num_results="")
    assert world.kind.model.objects.get().num_results == 25


BAD_INPUT = [
    ({"job_name": ""}, "job_name", "This field is required."),
    ({"job_name": "-bad name!"}, "job_name", "failed to satisfy constraint"),
    ({"input_path": ""}, "input_path", "This field is required."),
    ({"input_path": "s3://B/in.json"}, "input_path", "Invalid S3 input path"),
    ({"output_path": "ftp://bucket/out/"}, "output_path", "failed to satisfy constraint"),
    ({"output_path": "s3://bucket/in/users.json"}, "output_path", "must differ from the input"),
    ({"num_results": "0"}, "num_results", "greater than or equal to 1"),
    ({"num_results": "many"}, "num_results", "Enter a whole number."),
    ({"role": ""}, "role", "This field is required."),
    ({"solution": ""}, "solution", "This field is required."),
    ({"solution_version": ""}, "solution_version", "This field is required."),
]
EXPLORATION_BAD_INPUT = [
    ({"exploration_weight": "1.5"}, "exploration_weight", "out of range"),
    ({"exploration_item_age_cut_off": "0"}, "exploration_item_age_cut_off", "out of range"),
]


@pytest.mark.parametrize(
    ("kind", "overrides", "field", "message"),
    [(kind, *case) for kind in KINDS for case in BAD_INPUT]
    + [(kind, *case) for kind in KINDS if kind.exploration for case in EXPLORATION_BAD_INPUT],
    ids=lambda value: value.slug if isinstance(value, JobKind) else None,
)
def test_it_shows_bad_input_inline_and_creates_nothing(
    signed_in, group, role, django_capture_on_commit_callbacks, kind, overrides, field, message
):
    world = _world(kind, signed_in, group, role)
    response, callbacks = world.post(django_capture_on_commit_callbacks, **overrides)
    assert response.status_code == 200
    errors = response.context["form"].errors.get(field, [])
    assert any(message in e for e in errors), errors
    assert 'class="field-error"' in response.content.decode()
    assert not kind.model.objects.exists()
    assert callbacks == []


def test_it_says_the_name_is_taken(world, django_capture_on_commit_callbacks):
    world.make_job("my-job")
    response, callbacks = world.post(django_capture_on_commit_callbacks)
    assert any("already exists" in e for e in response.context["form"].errors["job_name"])
    assert world.kind.model.objects.count() == 1
    assert callbacks == []


def test_it_404s_a_job_of_another_group(world):
    job = world.make_job("elsewhere")
    other = factories.make_group("other-group")
    assert world.client.get(world.kind.url("detail", other.pk, job.pk)).status_code == 404
