"""SigV4 authentication of API calls against the console's access keys.

The expected signature is computed by botocore's own signer (SigV4Auth / SigV4QueryAuth) over an
AWSRequest rebuilt from the Django request: same method, path, query, signed headers, body and the
request's own X-Amz-Date. We never write our own canonical request, so we agree with every SDK byte for
byte. Both forms are accepted: the Authorization header and a presigned query string.
"""

import datetime as dt
import hashlib
import hmac
import logging
from dataclasses import dataclass

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from django.conf import settings
from django.utils import timezone

from batchjobs.keyring import UndecryptableSecret
from batchjobs.models import AccessKey
from batchjobs.validation import shown

log = logging.getLogger(__name__)

SERVICE = "personalize"
# How stale an access key's last_used may get before a call records it again.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = dt.timedelta(minutes=15)
MAX_PRESIGNED_EXPIRES = 7 * 24 * 3600


class AuthError(Exception):
    """A request the API refuses before looking at the operation: answered with `code` and `status`."""

    def __init__(self, code: str, message: str, status: int = 403):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _missing() -> AuthError:
    return AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")


def _incomplete(message: str) -> AuthError:
    return AuthError("IncompleteSignatureException", message, status=400)


def _unrecognized() -> AuthError:
    return AuthError("UnrecognizedClientException", "The security token included in the request is invalid.")


def _mismatch() -> AuthError:
    return AuthError(
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. Check your AWS "
        "Secret Access Key and signing method. Consult the service documentation for details.",
    )


@dataclass(frozen=True)
class _Signed:
    """What the client claims: who, when, where, which headers, and the signature."""

    access_key_id: str
    date: str  # yyyymmdd of the credential scope
    region: str
    service: str
    amz_date: str  # the full X-Amz-Date, e.g. 20240101T120000Z
    signed_headers: list[str]
    signature: str
    presigned: bool
    expires: int | None = None


def _parse_credential(credential: str) -> tuple[str, str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise _incomplete(
            f"Credential should be scoped to a valid region, not '{shown(credential)}'. "
            "Expected <AccessKeyId>/<yyyymmdd>/<region>/personalize/aws4_request."
        )
    return parts[0], parts[1], parts[2], parts[3]


def _from_header(header: str, amz_date: str) -> _Signed:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"Unsupported authorization algorithm '{shown(algorithm)}'; use {ALGORITHM}.")
    fields = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields[name] = value
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
    if missing:
        raise _incomplete(f"Authorization header requires {', '.join(missing)}. Authorization={shown(header)}")
    if not amz_date:
        raise _incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    key_id, date, region, service = _parse_credential(fields["Credential"])
    return _Signed(
        key_id, date, region, service, amz_date, fields["SignedHeaders"].split(";"), fields["Signature"], False
    )


def _from_query(params) -> _Signed:
    required = ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature")
    missing = [name for name in required if not params.get(name)]
    if missing:
        raise _incomplete(f"AWS query-string parameters must include {', '.join(missing)}.")
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise _incomplete(f"Unsupported X-Amz-Algorithm '{shown(params['X-Amz-Algorithm'])}'; use {ALGORITHM}.")
    try:
        expires = int(params.get("X-Amz-Expires", SigV4QueryAuth.DEFAULT_EXPIRES))
    except ValueError:
        raise _incomplete("X-Amz-Expires must be a whole number of seconds.") from None
    if not 1 <= expires <= MAX_PRESIGNED_EXPIRES:
        raise _incomplete(f"X-Amz-Expires must be between 1 and {MAX_PRESIGNED_EXPIRES} seconds.")
    key_id, date, region, service = _parse_credential(params["X-Amz-Credential"])
    return _Signed(
        key_id,
        date,
        region,
        service,
        params["X-Amz-Date"],
        params["X-Amz-SignedHeaders"].split(";"),
        params["X-Amz-Signature"],
        True,
        expires,
    )


def _check_time(signed: _Signed, now: dt.datetime) -> None:
    try:
        when = dt.datetime.strptime(signed.amz_date, SIGV4_TIMESTAMP).replace(tzinfo=dt.UTC)
    except ValueError:
        raise _incomplete(f"Date must be in ISO-8601 'basic format'. Got '{shown(signed.amz_date)}'.") from None
    stamp = now.strftime(SIGV4_TIMESTAMP)
    if signed.presigned:
        if now > when + dt.timedelta(seconds=signed.expires):
            expired_at = (when + dt.timedelta(seconds=signed.expires)).strftime(SIGV4_TIMESTAMP)
            raise AuthError(
                "InvalidSignatureException", f"Signature expired: {expired_at} is now earlier than {stamp}."
            )
    elif when < now - MAX_SKEW:
        earliest = (now - MAX_SKEW).strftime(SIGV4_TIMESTAMP)
        raise AuthError(
            "InvalidSignatureException",
            f"Signature expired: {signed.amz_date} is now earlier than {earliest} ({stamp} - 15 min.)",
        )
    if when > now + MAX_SKEW:
        latest = (now + MAX_SKEW).strftime(SIGV4_TIMESTAMP)
        raise AuthError(
            "InvalidSignatureException",
            f"Signature not yet current: {signed.amz_date} is still later than {latest} ({stamp} + 15 min.)",
        )


def _header_value(request, name: str) -> str | None:
    if name == "host":
        return request.META.get("HTTP_HOST")
    meta_name = name.upper().replace("-", "_")
    if meta_name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return request.META.get(meta_name)
    return request.META.get("HTTP_" + meta_name)


def _expected_signature(request, signed: _Signed, secret: str) -> str:
    headers = {}
    for name in signed.signed_headers:
        value = _header_value(request, name)
        if value is None:
            raise _mismatch()
        headers[name] = value
    body = request.body
    if "x-amz-content-sha256" in headers and headers["x-amz-content-sha256"] != hashlib.sha256(body).hexdigest():
        # botocore trusts this header as the payload hash: make sure it is the hash of what we received.
        raise _mismatch()
    query = request.META.get("QUERY_STRING", "")
    if signed.presigned:
        query = "&".join(p for p in query.split("&") if p and not p.startswith("X-Amz-Signature="))
    url = f"{request.scheme}://{headers.get('host') or request.META.get('HTTP_HOST', 'localhost')}{request.path}"
    if query:
        url += "?" + query
    aws_request = AWSRequest(method=request.method, url=url, headers=headers, data=body)
    aws_request.context["timestamp"] = signed.amz_date
    signer_class = SigV4QueryAuth if signed.presigned else SigV4Auth
    signer = signer_class(Credentials(signed.access_key_id, secret), signed.service, signed.region)
    canonical = signer.canonical_request(aws_request)
    return signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)


def authenticate(request) -> AccessKey:
    """The active access key that signed `request`, or AuthError. Updates the key's last_used."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    query_algorithm = request.GET.get("X-Amz-Algorithm")
    if header:
        signed = _from_header(header, request.META.get("HTTP_X_AMZ_DATE", ""))
    elif query_algorithm:
        signed = _from_query(request.GET)
    else:
        raise _missing()
    if signed.service != SERVICE:
        raise AuthError("InvalidSignatureException", f"Credential should be scoped to correct service: '{SERVICE}'.")
    if signed.region != settings.AWS_REGION:
        # The service's wording; a client configured for another region signs for the wrong endpoint.
        raise AuthError(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region, not '{shown(signed.region)}'. This endpoint serves "
            f"'{settings.AWS_REGION}': use --region {settings.AWS_REGION} (region_name='{settings.AWS_REGION}').",
        )
    if signed.date != signed.amz_date[:8]:
        raise AuthError(
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{shown(signed.date)}' != '{shown(signed.amz_date[:8])}', from '{shown(signed.amz_date)}'.",
        )
    if "host" not in signed.signed_headers:
        raise AuthError("InvalidSignatureException", "'Host' must be a 'SignedHeader' in the AWS Authorization.")
    key = AccessKey.objects.select_related("user").filter(access_key_id=signed.access_key_id).first()
    if key is None or not key.is_active or not key.user.is_active:
        raise _unrecognized()
    now = timezone.now().astimezone(dt.UTC)
    _check_time(signed, now)
    try:
        secret = key.secret_access_key
    except UndecryptableSecret as exc:
        log.warning("Access key %s cannot be used: %s", key.access_key_id, exc)
        raise _unrecognized() from None
    expected = _expected_signature(request, signed, secret)
    if not hmac.compare_digest(expected.encode(), signed.signature.encode()):
        raise _mismatch()
    if key.last_used is None or now - key.last_used > LAST_USED_RESOLUTION:
        # A write per call would put a database commit on every runtime request's path; to the minute is enough.
        AccessKey.objects.filter(pk=key.pk).update(last_used=now)
    return key
