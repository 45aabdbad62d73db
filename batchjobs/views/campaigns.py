"""Console pages for campaigns: the list, the create form (in the real console's order), and the detail page
with its status history and a "Test campaign results" panel that asks the campaign as GetRecommendations or
GetPersonalizedRanking would, beside the equivalent CLI and boto3 calls."""

import json

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect

from batchjobs import runtime
from batchjobs.cli_snippets import boto3_text, cli_text, static_cli
from batchjobs.errors import ServiceError
from batchjobs.models import Campaign, Dataset, Filter, SolutionVersion, Status
from batchjobs.permissions import console_page
from batchjobs.views import pages
from batchjobs.views.common import get_group_for_user
from engine.serving import ServingUnavailable


class CampaignForm(forms.Form):
    API_FIELDS = {
        "name": "name",
        "solutionVersionArn": "solution_version",
        "minProvisionedTPS": "min_provisioned_tps",
        "campaignConfig.itemExplorationConfig.explorationWeight": "exploration_weight",
        "campaignConfig.itemExplorationConfig.explorationItemAgeCutOff": "exploration_item_age_cut_off",
        "campaignConfig": "exploration_weight",
    }

    name = forms.CharField(label="Campaign name", max_length=63,
                           help_text="Letters, digits, hyphens and underscores; unique in this account.")
    solution_version = forms.ChoiceField(label="Solution and solution version",
                                         help_text="An ACTIVE solution version of this dataset group.")
    min_provisioned_tps = forms.IntegerField(label="Minimum provisioned transactions per second", initial=1,
                                             min_value=1)
    exploration_weight = forms.CharField(
        label="Exploration weight", required=False, initial="0.3",
        help_text="aws-user-personalization only: the share of each list given to young and cold items (0 to 1).",
    )
    exploration_item_age_cut_off = forms.CharField(
        label="Exploration item age cut off (days)", required=False, initial="30",
        help_text="aws-user-personalization only: items younger than this are explored.",
    )
    enable_metadata = forms.BooleanField(label="Include item metadata in recommendations", required=False)

    def __init__(self, *args, versions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["solution_version"].choices = [
            (v.arn, f"{v.solution.name} / {v.version_id} ({v.solution.recipe.name})") for v in versions
        ]


def _campaigns_of(group):
    return Campaign.objects.filter(solution__dataset_group=group).select_related("solution", "solution_version")


def _get_campaign(group, pk) -> Campaign:
    return get_object_or_404(_campaigns_of(group), pk=pk)


@login_required
def campaign_list(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    return pages.group_list(
        request, group, "batchjobs/campaigns.html", "Campaigns", _campaigns_of(group), "campaigns", "name"
    )


def _create_params(data) -> dict:
    params = {"name": data["name"], "solutionVersionArn": data["solution_version"],
              "minProvisionedTPS": data["min_provisioned_tps"]}
    config = {}
    exploration = {}
    if data.get("exploration_weight"):
        exploration["explorationWeight"] = data["exploration_weight"]
    if data.get("exploration_item_age_cut_off"):
        exploration["explorationItemAgeCutOff"] = data["exploration_item_age_cut_off"]
    if exploration:
        config["itemExplorationConfig"] = exploration
    if data.get("enable_metadata"):
        config["enableMetadataWithRecommendations"] = True
    if config:
        params["campaignConfig"] = config
    return params


@console_page("GET", "POST", write="create a campaign")
def campaign_create(request: HttpRequest, group_pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    versions = (
        SolutionVersion.objects.filter(solution__dataset_group=group, status=Status.ACTIVE)
        .select_related("solution").order_by("-created")
    )
    versions = [v for v in versions if v.solution.recipe.recipe_type in Campaign.RECIPE_TYPES]
    form = CampaignForm(request.POST or None, versions=versions)

    def create(data: dict) -> Campaign:
        params = _create_params(data)
        version = next((v for v in versions if v.arn == params["solutionVersionArn"]), None)
        explores = version is not None and any(h.scope == "inference" for h in version.solution.recipe.hyperparameters)
        if not explores:
            params.get("campaignConfig", {}).pop("itemExplorationConfig", None)
        return Campaign.create_validated(
            params["name"], params["solutionVersionArn"], min_provisioned_tps=params["minProvisionedTPS"],
            campaign_config=params.get("campaignConfig"),
        )

    row = pages.create_from_form(request, form, create)
    if row is not None:
        messages.success(request, f"Campaign {row.name} created.")
        return redirect("batchjobs:campaign_detail", group.pk, row.pk)
    params = _create_params(form.cleaned_data) if form.is_bound and form.is_valid() else {
        "name": "my-campaign", "solutionVersionArn": versions[0].arn if versions else "...", "minProvisionedTPS": 1,
    }
    return pages.group_form(
        request, group, "batchjobs/campaign_create.html", form, static_cli(request, "create-campaign", params),
        ("Campaigns", "campaign_list"), "Create campaign", has_versions=bool(versions),
    )


def _filter_values(text: str) -> dict:
    """`NAME=value` lines (the value as the API takes it, e.g. "Comedy" in quotes) into filterValues."""
    values = {}
    for line in text.splitlines():
        if "=" in line:
            name, _, value = line.partition("=")
            if name.strip():
                values[name.strip()] = value.strip()
    return values


def _runtime_endpoint(request) -> str:
    return request.build_absolute_uri("/api/personalize-runtime")


def _runtime_cli(request, operation: str, params: dict) -> dict:
    endpoint = _runtime_endpoint(request)
    cli = cli_text(operation, params, endpoint).replace("aws personalize ", "aws personalize-runtime ", 1)
    code = boto3_text(operation, params, endpoint).replace(
        'personalize = boto3.client("personalize"', 'runtime = boto3.client("personalize-runtime"'
    ).replace("response = personalize.", "response = runtime.")
    return {"cli": cli, "boto3": code, "spec": None}


@login_required
def campaign_detail(request: HttpRequest, group_pk: int, pk: int) -> HttpResponse:
    group = get_group_for_user(request, group_pk)
    campaign = _get_campaign(group, pk)
    recipe = campaign.recipe
    filters = Filter.objects.filter(dataset_group=group, status=Status.ACTIVE).order_by("name")
    item_filters = [f for f in filters if _target(f) == "ItemID"]
    asked = "run" in request.GET
    user_id, item_id = request.GET.get("user_id", "").strip(), request.GET.get("item_id", "").strip()
    item_list = [i.strip() for i in request.GET.get("item_list", "").replace(",", "\n").splitlines() if i.strip()]
    filter_arn = request.GET.get("filter", "")
    filter_values = _filter_values(request.GET.get("filter_values", ""))
    ranking = recipe.input_kind == "userId+itemList"
    operation = "GetPersonalizedRanking" if ranking else "GetRecommendations"
    params = {"campaignArn": campaign.arn}
    if ranking:
        params.update(userId=user_id or "USER_ID", inputList=item_list or ["ITEM_ID"])
    elif recipe.input_kind == "itemId":
        params["itemId"] = item_id or "ITEM_ID"
    else:
        params["userId"] = user_id or "USER_ID"
    if filter_arn:
        params["filterArn"] = filter_arn
        if filter_values:
            params["filterValues"] = filter_values
    results, error = None, ""
    # What the call needs, said on the page rather than answered with a placeholder's recommendations.
    if recipe.input_kind == "itemId":
        missing = "" if item_id else "an item ID"
    elif recipe.input_kind in ("userId", "userId+itemList"):
        missing = "" if user_id else "a user ID"
    else:
        missing = ""
    if not missing and ranking and not item_list:
        missing = "the item IDs to rank"
    if asked and missing:
        error = f"Enter {missing}."
    elif asked:
        try:
            request_spec, _ = runtime.resolve(operation, {k: v for k, v in params.items()})
            items_dataset = Dataset.objects.filter(dataset_group=group, dataset_type=Dataset.Type.ITEMS).first()
            if items_dataset is not None and items_dataset.data_file:
                request_spec["metadata"] = {"items_file": items_dataset.data_file, "columns": ["TITLE"]}
            reply = runtime.model_server().handle(request_spec)
            if "error" in reply:
                error = reply["error"]["message"]
            else:
                scores = reply.get("scores") or []
                metadata = reply.get("metadata") or [{} for _ in reply["items"]]
                results = [
                    {"rank": i + 1, "item": item, "title": metadata[i].get("TITLE", ""),
                     "score": scores[i] if i < len(scores) else ""}
                    for i, item in enumerate(reply["items"])
                ]
        except ServiceError as exc:
            error = exc.message
        except ServingUnavailable as exc:
            error = str(exc)
    cli_operation = "get-personalized-ranking" if ranking else "get-recommendations"
    return pages.group_detail(
        request, group, "batchjobs/campaign_detail.html", campaign, ("Campaigns", "campaign_list"),
        campaign=campaign, recipe=recipe,
        config_json=json.dumps(campaign.config, indent=2) if campaign.config else "",
        ranking=ranking, by_item=recipe.input_kind == "itemId", item_filters=item_filters,
        asked=asked, user_id=user_id, item_id=item_id, item_list="\n".join(item_list),
        filter_arn=filter_arn, filter_values=request.GET.get("filter_values", ""),
        results=results, error=error, has_scores=recipe.has_scores,
        cli=_runtime_cli(request, cli_operation, params),
    )


def _target(row: Filter) -> str:
    try:
        return row.target
    except ValueError:
        return ""
