"""The personal fields of a store, sealed at rest.

Every value of the ``personal`` table (the submission key and each direct field: names, phone
numbers, ID numbers) is kept as ``enc1:`` and the base64 of a 12-byte nonce and its AES-256-GCM
ciphertext, the column's name as associated data (a value moved to another column does not
open). The key is derived (HKDF-SHA256) from the store's secret, which is kept outside the
store: a copy of the file or a dump of the database without the secret yields no name and no
number. The envelope is the same on both backends; PostgreSQL's pgcrypto is not needed.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from profiling._errors import StoreError

PREFIX = "enc1:"
_INFO = b"profiling store: personal fields, AES-256-GCM, v1"


def personal_key(secret: bytes) -> bytes:
    """The key of the sealed fields, derived from the store's secret."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)


def seal(values: Iterable[object], column: str, key: bytes) -> list[str | None]:
    """Each value sealed (missing values stay missing: that a field was not given is not
    personal)."""
    aead = AESGCM(key)
    aad = column.encode("utf-8")
    out: list[str | None] = []
    for v in values:
        if v is None or v != v:  # None, NaN, pd.NA's stand-ins
            out.append(None)
            continue
        nonce = os.urandom(12)
        blob = nonce + aead.encrypt(nonce, str(v).encode("utf-8"), aad)
        out.append(PREFIX + base64.b64encode(blob).decode("ascii"))
    return out


def unseal(values: Sequence[object], column: str, key: bytes, where: str) -> list[str | None]:
    """The values :func:`seal` sealed; a value that is not sealed, or does not open with this
    store's key, is an error (the store was altered)."""
    aead = AESGCM(key)
    aad = column.encode("utf-8")
    out: list[str | None] = []
    for v in values:
        if v is None or v != v:
            out.append(None)
            continue
        text = str(v)
        if not text.startswith(PREFIX):
            raise StoreError(f"store {where}: a value of the personal field {column!r} is not "
                             "sealed; the store was written by something else than profiling")
        try:
            blob = base64.b64decode(text[len(PREFIX):], validate=True)
            out.append(aead.decrypt(blob[:12], blob[12:], aad).decode("utf-8"))
        except (ValueError, InvalidTag):
            raise StoreError(f"store {where}: a sealed value of the personal field {column!r} "
                             "does not open with this store's key; it was altered") from None
    return out
