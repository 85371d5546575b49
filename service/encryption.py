"""Case data, engine state, audit details, drafts and notification bodies encrypted at rest.

The keys come from the environment: ``DATA_ENCRYPTION_KEYS`` is a comma-separated list of Fernet keys,
the first of which encrypts; every key in the list decrypts, so a new key is put first, ``flask data
rotate-key`` re-encrypts every value with it, and then the old key can be dropped. A deployment without
a key refuses to start; only tests and a developer's machine (``DEVELOPMENT=true``, set by ``make run``)
get a key generated into the instance folder, like the session secret.

The columns are :class:`EncryptedJSON` and :class:`EncryptedText`: the service reads and writes plain
dicts and strings, and only the database holds ciphertext. Nothing may filter on these columns in SQL.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask, current_app
from sqlalchemy.orm import Session
from sqlalchemy.types import Text, TypeDecorator

EXTENSION = "data_encryption"
KEY_FILE = "data_encryption_key"

#: Every encrypted column: (table, primary key, column).
ENCRYPTED_COLUMNS = (
    ("cases", "id", "data"), ("cases", "id", "state"), ("cases", "id", "error"), ("tasks", "id", "draft"),
    ("audit_events", "id", "detail"), ("notifications", "id", "body"), ("notifications", "id", "email_error"),
)
#: Encrypted columns of tables made after migration d7a3b9c4e215 (which encrypted ENCRYPTED_COLUMNS'
#: existing values, and reads that tuple as it was): written encrypted from their first row, rotated alike.
LATER_ENCRYPTED_COLUMNS = (
    ("families", "id", "name"), ("people", "id", "given_name"), ("people", "id", "family_name"),
    ("people", "id", "date_of_birth"), ("people", "id", "council_number"), ("people", "id", "nhs_number"),
    ("case_notes", "id", "who"), ("case_notes", "id", "text"), ("case_documents", "id", "title"),
    ("case_documents", "id", "filename"), ("case_documents", "id", "content"),
)
SEARCH_KEYS = "search_index_keys"


class NoKey(RuntimeError):
    """The service has no data encryption key: it must not start (it would write personal data in clear)."""


def init_app(app: Flask) -> None:
    keys = configured_keys(app)
    app.extensions[EXTENSION] = keyring(keys)
    app.extensions[SEARCH_KEYS] = [search_key(k) for k in keys]


def search_key(fernet_key: str) -> bytes:
    """The key of the blind index of names and dates of birth (``service.families``), derived from a data key:
    HMAC-SHA256 under the data key of a fixed label, so it is never the data key itself."""
    return hmac.new(base64.urlsafe_b64decode(fernet_key.encode()), b"step-pathways blind index v1",
                    hashlib.sha256).digest()


def search_keys() -> list[bytes]:
    """One blind-index key per data key, the current first: new entries are written under the first, and a
    search looks for the digests under every key (so search keeps working while ``rotate-key`` runs)."""
    return current_app.extensions[SEARCH_KEYS]


def configured_keys(app: Flask) -> list[str]:
    """The keys of ``DATA_ENCRYPTION_KEYS``; for tests and development, one kept in the instance folder."""
    keys = [k.strip() for k in (app.config.get("DATA_ENCRYPTION_KEYS") or "").split(",") if k.strip()]
    if keys:
        return keys
    if app.config.get("TESTING") or app.config.get("DEVELOPMENT"):
        return [_instance_key(app.instance_path)]
    raise NoKey("DATA_ENCRYPTION_KEYS is not set: give the service its data encryption key "
                "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')")


def keyring(keys: list[str]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except ValueError:
        raise NoKey("a key in DATA_ENCRYPTION_KEYS is not a Fernet key (32 url-safe base64-encoded bytes)") from None


def _instance_key(instance_path: str) -> str:
    path = Path(instance_path) / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return path.read_text().strip()


def current_keyring() -> MultiFernet:
    return current_app.extensions[EXTENSION]


def encrypt(plain: str) -> str:
    return current_keyring().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return current_keyring().decrypt(token.encode()).decode()
    except InvalidToken:
        # The message names no value: a wrong key list, not bad data, is the likely cause.
        raise NoKey("a stored value cannot be decrypted with any key of DATA_ENCRYPTION_KEYS") from None


class EncryptedText(TypeDecorator):
    """A string, stored as a Fernet token."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        return encrypt(value) if value is not None else None

    def process_result_value(self, value: str | None, dialect) -> str | None:
        return decrypt(value) if value is not None else None


class EncryptedBytes(TypeDecorator):
    """Bytes (an uploaded document), stored as the Fernet token of the bytes (text, so keys rotate alike)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: bytes | None, dialect) -> str | None:
        return current_keyring().encrypt(bytes(value)).decode() if value is not None else None

    def process_result_value(self, value: str | None, dialect) -> bytes | None:
        if value is None:
            return None
        try:
            return current_keyring().decrypt(value.encode())
        except InvalidToken:
            raise NoKey("a stored value cannot be decrypted with any key of DATA_ENCRYPTION_KEYS") from None


class EncryptedJSON(TypeDecorator):
    """A JSON value (dict or list), stored as a Fernet token of its JSON text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect) -> str | None:
        return encrypt(json.dumps(value, ensure_ascii=False)) if value is not None else None

    def process_result_value(self, value: str | None, dialect) -> Any:
        return json.loads(decrypt(value)) if value is not None else None


#: The column types whose values are stored encrypted.
ENCRYPTED = (EncryptedText, EncryptedBytes, EncryptedJSON)


def rotate(session: Session, batch: int = 500) -> dict[str, int]:
    """Re-encrypt every stored value with the current (first) key; return how many values per column.

    Tokens are rotated as they are (``MultiFernet.rotate``), never decoded into data, in batches by
    primary key, each only if it has not changed meanwhile (so the service may run alongside, once its
    processes have the new key first). Each batch is committed on its own: the service's writes to the rows
    of a batch wait for that batch at most, never for the whole run (at a million cases, hours of rows locked
    in one transaction). Run inside ``tenancy.all_councils``: every council's rows.
    """
    ring = current_keyring()
    counts: dict[str, int] = {}
    for table_name, key, column in ENCRYPTED_COLUMNS + LATER_ENCRYPTED_COLUMNS:
        table = sa.table(table_name, sa.column(key), sa.column(column, Text))
        done, after = 0, None
        while True:
            query = select_batch(table, key, column, after, batch)
            rows = session.execute(query).all()
            for row_key, token in rows:
                # Only if unchanged meanwhile: a value the service wrote since is already under the new key.
                session.execute(sa.update(table).where(table.c[key] == row_key, table.c[column] == token)
                                .values({column: ring.rotate(token.encode()).decode()}))
            session.commit()
            done += len(rows)
            if len(rows) < batch:
                break
            after = rows[-1][0]
        counts[f"{table_name}.{column}"] = done
    return counts


def select_batch(table, key: str, column: str, after: Any, size: int):
    query = sa.select(table.c[key], table.c[column]).where(table.c[column].is_not(None))
    if after is not None:
        query = query.where(table.c[key] > after)
    return query.order_by(table.c[key]).limit(size)
