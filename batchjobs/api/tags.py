"""API handlers for tags: the `tags` list of {"tagKey", "tagValue"} on every resource that has one."""

from batchjobs import validation
from batchjobs.api.resources import RESOURCES, Call, _member, _text
from batchjobs.errors import ResourceNotFoundException, TooManyTagKeysException, TooManyTagsException


def _tagged_resource(call: Call):
    arn = _text(call.params, "resourceArn", required=True)
    for resource in RESOURCES.values():
        found = resource.model.objects.filter(arn=arn).first()
        if found is not None:
            return found
    raise ResourceNotFoundException(f"Resource Arn {arn} does not exist.", field="resourceArn")


def _save_tags(resource, tags: list[dict]) -> None:
    type(resource).objects.filter(pk=resource.pk).update(tags=tags)


def tag_resource(call: Call) -> dict:
    resource = _tagged_resource(call)
    new = validation.check_tags(_member(call.params, "tags", required=True))
    merged = {t["tagKey"]: t["tagValue"] for t in resource.tags}
    merged.update({t["tagKey"]: t["tagValue"] for t in new})
    if len(merged) > validation.MAX_TAGS_PER_RESOURCE:
        raise TooManyTagsException(
            f"A resource can have at most {validation.MAX_TAGS_PER_RESOURCE} tags; this call would give it "
            f"{len(merged)}.",
            field="tags",
        )
    _save_tags(resource, [{"tagKey": k, "tagValue": v} for k, v in merged.items()])
    return {}


def untag_resource(call: Call) -> dict:
    resource = _tagged_resource(call)
    keys = _member(call.params, "tagKeys", required=True)
    if len(keys) > validation.MAX_TAGS_PER_RESOURCE:
        raise TooManyTagKeysException(
            f"At most {validation.MAX_TAGS_PER_RESOURCE} tag keys can be removed in one call.", field="tagKeys"
        )
    _save_tags(resource, [t for t in resource.tags if t["tagKey"] not in set(keys)])
    return {}


def list_tags_for_resource(call: Call) -> dict:
    return {"tags": list(_tagged_resource(call).tags)}

