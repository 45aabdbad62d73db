"""Encryption of secrets the console must keep at rest but can still read: the SigV4 secret access keys.

SigV4 signs with the secret itself, so a server that verifies signatures needs the secret, not a hash of
it. It is kept encrypted with Fernet (AES-128-CBC with an HMAC-SHA256 tag, from the `cryptography`
package) under a key derived from SECRET_KEY, so a copy of the database alone reveals no secret. Secrets
encrypted under an entry of SECRET_KEY_FALLBACKS still decrypt, which lets SECRET_KEY be rotated.
"""

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.utils.crypto import salted_hmac

_PURPOSE = "batchjobs.keyring.access-key-secret"


class UndecryptableSecret(Exception):
    """The secret was encrypted under a SECRET_KEY this process does not have."""


def _fernet(secret_key: str) -> Fernet:
    derived = salted_hmac(_PURPOSE, "fernet", secret=secret_key, algorithm="sha256").digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def _keys() -> MultiFernet:
    return MultiFernet([_fernet(k) for k in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]])


def encrypt(secret: str) -> str:
    return _keys().encrypt(secret.encode()).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return _keys().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise UndecryptableSecret(
            "This secret was encrypted under another SECRET_KEY; run the console with that SECRET_KEY (or list "
            "it in SECRET_KEY_FALLBACKS), or create a new access key."
        ) from None
