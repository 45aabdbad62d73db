"""Who may do what: service roles over S3 paths, and API access keys."""

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from batchjobs import arns, keyring, policy, validation
from batchjobs.errors import (
    RoleDenied,
)
from batchjobs.models.base import _creating, _refuse_duplicate
from engine.storage import parse_s3_uri


class Role(models.Model):
    """An IAM-style service role: a name, an ARN and a permissions policy over S3 paths."""

    name = models.CharField(max_length=64, unique=True)
    arn = models.CharField(max_length=256, unique=True)
    description = models.CharField(max_length=1000, blank=True)
    policy = models.JSONField(default=dict)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @classmethod
    def create_with_prefixes(cls, name: str, read: list[str], write: list[str], description: str = ""):
        """Create a role that may read under each `read` S3 prefix and write under each `write` prefix."""
        validation.check_pattern(name, "roleName", r"[\w+=,.@-]+", max_length=64)
        document = policy.s3_policy([parse_s3_uri(p) for p in read], [parse_s3_uri(p) for p in write])
        with _creating(lambda: _refuse_duplicate(cls.objects.filter(name=name), "role", name)):
            role = cls.objects.create(name=name, arn=arns.role_arn(name), policy=document, description=description)
        return role

    def prefixes(self, action: str) -> list[str]:
        """The s3:// prefixes this role's Allow statements grant `action` on (for display)."""
        found = []
        for statement in policy.statements(self.policy):
            if statement.get("Effect") != "Allow" or action not in policy.as_list(statement.get("Action")):
                continue
            for resource in policy.as_list(statement.get("Resource")):
                if resource.startswith("arn:aws:s3:::"):
                    found.append("s3://" + resource.removeprefix("arn:aws:s3:::").rstrip("*"))
        return found

    def allows(self, action: str, uri: str) -> bool:
        bucket, key = parse_s3_uri(uri)
        if action == "s3:ListBucket":
            return policy.is_allowed(self.policy, action, arns.s3_resource_arn(bucket), {"s3:prefix": key})
        return policy.is_allowed(self.policy, action, arns.s3_resource_arn(bucket, key))

    def require(self, action: str, uri: str) -> None:
        if not self.allows(action, uri):
            raise RoleDenied(
                f"Insufficient privileges for accessing data in Amazon S3: the role {self.arn} is not "
                f"allowed {action} on {uri}. Add that path to the role's policy and try again."
            )


class AccessKey(models.Model):
    """An access key pair for the AWS-compatible API, owned by a console user."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="access_keys", on_delete=models.CASCADE)
    access_key_id = models.CharField(max_length=20, unique=True)
    # SigV4 needs the secret itself to recompute signatures, so it cannot be a one-way hash: it is kept
    # encrypted with a key derived from SECRET_KEY (batchjobs.keyring), never in clear.
    secret_ciphertext = models.TextField()
    is_active = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return self.access_key_id

    @property
    def secret_access_key(self) -> str:
        """The secret in clear, for SigV4 and for showing once at creation. keyring.UndecryptableSecret when
        it was encrypted under a SECRET_KEY this process no longer has."""
        return keyring.decrypt(self.secret_ciphertext)

    @secret_access_key.setter
    def secret_access_key(self, secret: str) -> None:
        self.secret_ciphertext = keyring.encrypt(secret)

    @classmethod
    def issue(cls, user) -> "AccessKey":
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
        key_id = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
        key = cls(user=user, access_key_id=key_id)
        key.secret_access_key = secrets.token_urlsafe(30)[:40]
        key.save()
        return key
