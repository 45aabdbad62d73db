"""The runtime API boto3's `personalize-runtime` client calls (REST-JSON): POST /recommendations and POST
/personalize-ranking under /api/personalize-runtime, SigV4-signed for the service `personalize` like the rest.

A web worker only resolves a request here: the campaign, the solution version it serves, the seed and
exploration settings a batch job on that version uses, the filter and the dataset files it reads. The
answer comes from a model kept loaded by the campaign server (`engine.serving`, started by `make run` beside
the web server, reached over a unix socket: settings.CAMPAIGN_SOCKET), or, without one (tests,
`manage.py runserver`), by the same code in this process. Either way it is the batch runner's answer.
"""

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings
from django.urls import re_path

from batchjobs import validation
from batchjobs.errors import InvalidInputException, ResourceInUseException, ResourceNotFoundException, ServiceError
from batchjobs.models import Campaign, Dataset, Filter, SolutionVersion, Status, exploration_seed
from batchjobs.models.event_trackers import realtime_events
from batchjobs.rest_json import rest_json_view
from engine.recipes.catalog import ATTRIBUTES_INPUT, POPULAR_INPUT, validate_exploration_config
from engine.serving import ModelServer, ServingClient, ServingUnavailable

MAX_RESULTS = 500
MAX_RESULTS_WITH_METADATA = 50
_STATUS = {"ResourceNotFoundException": 404, "InvalidInputException": 400}

_server_lock = threading.Lock()
_server = None


def model_server():
    """The campaign server's client, or an in-process server when no socket is configured."""
    global _server
    with _server_lock:
        path = getattr(settings, "CAMPAIGN_SOCKET", "")
        wanted = ServingClient if path else ModelServer
        if not isinstance(_server, wanted) or (path and _server.path != path):
            _server = ServingClient(path) if path else ModelServer(max_models=2)
        return _server


@dataclass(frozen=True)
class _Deployment:
    """What a runtime call needs of a campaign, kept per web worker while the campaign row is unchanged."""

    arn: str
    solution_arn: str
    dataset_group_id: int
    recipe: object
    metadata_enabled: bool
    version_arn: str
    version_pk: int
    #: The solution's eventType and eventValueThreshold: which recorded events count as new interactions.
    event_type: str
    event_value_threshold: str | None
    artifact: str
    checksum: str
    exploration: dict


_DEPLOYMENTS: OrderedDict = OrderedDict()
_DEPLOYMENTS_LOCK = threading.Lock()


def _deployment(params: dict) -> _Deployment:
    """The campaign's deployment. One small query per call says whether the cached one is still current (the
    campaign's lastUpdatedDateTime, and for a synced campaign its solution's newest ACTIVE version)."""
    if params.get("recommenderArn"):
        raise InvalidInputException(
            "Recommenders (domain dataset groups) are not supported; pass a campaignArn.", field="recommenderArn"
        )
    arn = params.get("campaignArn")
    if not arn:
        raise InvalidInputException("Either campaignArn or recommenderArn is required.", field="campaignArn")
    validation.check_arn(arn, "campaignArn")
    row = Campaign.objects.filter(arn=arn).values_list("pk", "last_updated", "status", "config", "solution_id").first()
    if row is None:
        raise ResourceNotFoundException(f"Resource Arn {arn} does not exist.", field="campaignArn")
    pk, last_updated, status, config, solution_id = row
    if status != Status.ACTIVE:
        raise ResourceInUseException(f"The campaign {arn} is {status}.", field="campaignArn")
    stamp = (pk, last_updated)
    if config.get("syncWithLatestSolutionVersion"):
        latest = (
            SolutionVersion.objects.filter(solution_id=solution_id, status=Status.ACTIVE)
            .order_by("-created", "-pk").values_list("pk", flat=True).first()
        )
        stamp += (latest,)
    with _DEPLOYMENTS_LOCK:
        cached = _DEPLOYMENTS.get(arn)
        if cached is not None and cached[0] == stamp:
            _DEPLOYMENTS.move_to_end(arn)
            return cached[1]
    campaign = Campaign.objects.select_related("solution", "solution_version").get(pk=pk)
    version = campaign.serving_version()
    recipe = campaign.solution.recipe
    deployment = _Deployment(
        arn=campaign.arn, solution_arn=campaign.solution.arn, dataset_group_id=campaign.solution.dataset_group_id,
        recipe=recipe, metadata_enabled=campaign.metadata_enabled, version_arn=version.arn,
        version_pk=version.pk, event_type=campaign.solution.event_type,
        event_value_threshold=(campaign.solution.solution_config or {}).get("eventValueThreshold"),
        artifact=version.artifact,
        checksum=version.artifact_checksum,
        exploration=validate_exploration_config(recipe, campaign.exploration_config),
    )
    with _DEPLOYMENTS_LOCK:
        _DEPLOYMENTS[arn] = (stamp, deployment)
        while len(_DEPLOYMENTS) > 256:
            _DEPLOYMENTS.popitem(last=False)
    return deployment


def _datasets(campaign: _Deployment) -> dict:
    return {d.dataset_type: d for d in Dataset.objects.filter(dataset_group_id=campaign.dataset_group_id)}


def _filter_spec(campaign: _Deployment, params: dict) -> dict | None:
    arn = params.get("filterArn")
    if not arn:
        if params.get("filterValues"):
            raise InvalidInputException("filterValues were given without a filterArn.", field="filterValues")
        return None
    found = validation.lookup(Filter.objects, arn, "filterArn")
    if found.status != Status.ACTIVE:
        raise ResourceInUseException(f"The filter {found.arn} is {found.status}.", field="filterArn")
    if found.dataset_group_id != campaign.dataset_group_id:
        raise InvalidInputException(
            f"The filter {found.arn} belongs to another dataset group than the campaign.", field="filterArn"
        )
    if found.target != "ItemID":
        raise InvalidInputException(
            f"Recommendations take a filter on items; {found.name} filters {found.target}.", field="filterArn"
        )
    return {
        "key": found.arn,
        "expression": found.filter_expression,
        "target": found.target,
        "files": {kind: d.data_file for kind, d in _datasets(campaign).items() if d.data_file},
    }


def _metadata_spec(campaign: _Deployment, params: dict) -> dict | None:
    columns = params.get("metadataColumns")
    if not columns:
        return None
    if not campaign.metadata_enabled:
        raise InvalidInputException(
            f"The campaign {campaign.arn} was not created with campaignConfig.enableMetadataWithRecommendations; "
            "update it to return item metadata.",
            field="metadataColumns",
        )
    unknown = set(columns) - {"ITEMS"}
    if unknown:
        raise InvalidInputException(
            f"metadataColumns takes the dataset type ITEMS only, got {', '.join(sorted(unknown))}.",
            field="metadataColumns",
        )
    items = _datasets(campaign).get(Dataset.Type.ITEMS)
    return {"items_file": items.data_file if items else "", "columns": list(columns["ITEMS"])}


def _num_results(params: dict, with_metadata: bool) -> int:
    n = params.get("numResults")
    n = 25 if n is None else n
    limit = MAX_RESULTS_WITH_METADATA if with_metadata else MAX_RESULTS
    return validation.check_int_range(n, "numResults", minimum=1, maximum=limit)


def _query(kind: str, params: dict, operation: str, campaign: _Deployment) -> dict:
    recipe = campaign.recipe
    if operation == "GetPersonalizedRanking":
        if kind != "userId+itemList":
            raise InvalidInputException(
                f"The campaign {campaign.arn} serves {recipe.name} ({recipe.recipe_type}); GetPersonalizedRanking "
                "needs a PERSONALIZED_RANKING campaign. Call GetRecommendations.",
                field="campaignArn",
            )
        return {"userId": params["userId"], "itemList": params["inputList"]}
    if kind == "userId+itemList":
        raise InvalidInputException(
            f"The campaign {campaign.arn} serves {recipe.name} (PERSONALIZED_RANKING); call GetPersonalizedRanking.",
            field="campaignArn",
        )
    if kind in (ATTRIBUTES_INPUT, "itemId->users"):
        raise InvalidInputException(f"{recipe.name} does not give real-time recommendations.", field="campaignArn")
    user, item = params.get("userId"), params.get("itemId")
    if kind == "itemId":
        if not item:
            raise InvalidInputException(
                f"itemId is required: the campaign serves {recipe.name} (RELATED_ITEMS).", field="itemId"
            )
        return {"itemId": item}
    if kind == POPULAR_INPUT:
        return {"userId": user} if user else ({"itemId": item} if item else {})
    if not user:
        raise InvalidInputException(
            f"userId is required: the campaign serves {recipe.name} (USER_PERSONALIZATION).", field="userId"
        )
    return {"userId": user}


def resolve(operation: str, params: dict) -> tuple[dict, bool]:
    """The campaign server's request for a runtime call, and whether the recipe gives scores."""
    if params.get("promotions"):
        raise InvalidInputException(
            "promotions need aws-user-personalization-v2, which this server does not offer.", field="promotions"
        )
    campaign = _deployment(params)
    recipe = campaign.recipe
    metadata = _metadata_spec(campaign, params)
    query = _query(recipe.input_kind, params, operation, campaign)
    item_filter = _filter_spec(campaign, params)
    if item_filter is not None:
        query["filterValues"] = dict(params.get("filterValues") or {})
    if operation == "GetPersonalizedRanking":
        limit = MAX_RESULTS_WITH_METADATA if metadata else MAX_RESULTS
        if len(query["itemList"]) > limit:
            raise InvalidInputException(
                f"inputList has {len(query['itemList'])} items; at most {limit} are ranked.", field="inputList"
            )
        num_results = max(1, len(query["itemList"]))
    else:
        num_results = _num_results(params, metadata is not None)
    request = {
        "artifact": campaign.artifact,
        "checksum": campaign.checksum,
        "query": query,
        "input_kind": recipe.input_kind,
        "num_results": num_results,
        "exploration": campaign.exploration,
        "seed": exploration_seed(campaign.version_arn),
        "filter": item_filter,
        "metadata": metadata,
    }
    events = realtime_events(
        campaign.dataset_group_id, campaign.version_pk, recipe.input_kind, query,
        event_type=campaign.event_type, event_value_threshold=campaign.event_value_threshold,
    )
    if events:
        request["events"] = events
    return request, recipe.has_scores


def recommendations(operation: str, params: dict) -> dict:
    """Answer a resolved runtime call: {"items", "scores", "metadata"?} or raise the service's error."""
    request, _ = resolve(operation, params)
    try:
        reply = model_server().handle(request)
    except ServingUnavailable as exc:
        raise _Unavailable(str(exc)) from None
    if "error" in reply:
        code, message = reply["error"]["code"], reply["error"]["message"]
        if code == "InvalidInputException":
            raise InvalidInputException(message)
        if code == "ResourceNotFoundException":
            raise ResourceNotFoundException(message)
        raise RuntimeError(f"{code}: {message}")
    return reply


class _Unavailable(ServiceError):
    code = "ServiceUnavailableException"
    status = 503


def _runtime_view(operation: str, list_member: str):
    def answer(key, params: dict) -> str:
        from engine.realtime import Answer, response_json

        validation.check_request(operation, params, validation.runtime_service_model())
        reply = recommendations(operation, params)
        result = Answer(items=reply["items"], scores=reply.get("scores"))
        extra = {"recommendationId": f"RID-{uuid.uuid4()}"}
        return response_json(result, list_member, extra, reply.get("metadata"))

    return rest_json_view(operation, answer, _STATUS, compact_errors=True)


get_recommendations = _runtime_view("GetRecommendations", "itemList")
get_personalized_ranking = _runtime_view("GetPersonalizedRanking", "personalizedRanking")

# Mounted by console/urls.py; boto3 posts to <endpoint_url>/recommendations and /personalize-ranking.
urlpatterns = [
    re_path(r"^api/personalize-runtime/recommendations/?$", get_recommendations, name="runtime-recommendations"),
    re_path(r"^api/personalize-runtime/personalize-ranking/?$", get_personalized_ranking, name="runtime-ranking"),
]
