"""Where the console keeps things: the users' s3:// paths and its own artifacts."""

from functools import cache
from pathlib import Path

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from engine.storage import Storage, get_storage


@cache
def object_storage() -> Storage:
    """The object store behind s3:// paths: DATA_DIR/s3/<bucket>/<key>, or S3 through boto3."""
    if settings.S3_BACKEND == "aws":
        return get_storage("s3", endpoint_url=settings.AWS_ENDPOINT_URL_S3, region_name=settings.AWS_REGION)
    return get_storage("local", root=settings.S3_LOCAL_ROOT)


def artifact_path(*parts: str) -> Path:
    """A path under ARTIFACT_ROOT for imported datasets and trained models; the parent is created."""
    path = Path(settings.ARTIFACT_ROOT).joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@receiver(setting_changed)
def _forget_storage(*, setting, **kwargs):
    # Tests point S3_LOCAL_ROOT or S3_BACKEND elsewhere; a cached storage would keep the old place.
    if setting in {"S3_BACKEND", "S3_LOCAL_ROOT", "AWS_ENDPOINT_URL_S3", "DATA_DIR"}:
        object_storage.cache_clear()
