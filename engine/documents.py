"""Document models and validation: `change` and `announcement`, plus registered types.

A document is stored as the JSON the user wrote (unknown fields kept as written); the model
only validates it and pulls out the indexed fields.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.exceptions import InvalidDocumentError

ID_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"


# Each customer has an index entry written in the commit's transaction: 1 image + 49 puts +
# 49 deletes (customers dropped by an update) = 99 of DynamoDB's 100 items per transaction.
MAX_CUSTOMERS = 49


class BaseDocument(BaseModel):
    """Fields every document has; extra fields are allowed and kept."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=False)

    id: str = Field(pattern=ID_PATTERN)
    object_type: str
    title: str
    customer_codes: list[str]
    status: str = Field(min_length=1)
    created_at: AwareDatetime
    modified_at: AwareDatetime

    @field_validator("customer_codes")
    @classmethod
    def _codes_not_blank(cls, value: list[str]) -> list[str]:
        if any(not code.strip() or "#" in code for code in value):
            raise ValueError("customer codes must be non-empty and must not contain '#'")
        if len(set(value)) > MAX_CUSTOMERS:  # one customer-index entry each, in one transaction
            raise ValueError(f"at most {MAX_CUSTOMERS} distinct customer codes per document")
        return value

    @field_validator("status")
    @classmethod
    def _status_plain(cls, value: str) -> str:
        if "#" in value:
            raise ValueError("must not contain '#'")
        return value


class ChangeDocument(BaseDocument):
    pass


class AnnouncementDocument(BaseDocument):
    pass


@dataclass(frozen=True, slots=True)
class DocumentType:
    name: str
    model: type[BaseDocument]
    default_prefix: str


TYPES: dict[str, DocumentType] = {}


def register_type(doc_type: DocumentType) -> None:
    """Add a document type (a model and its default prefix)."""
    TYPES[doc_type.name] = doc_type


register_type(DocumentType("change", ChangeDocument, "changes/"))
register_type(DocumentType("announcement", AnnouncementDocument, "announcements/"))


@dataclass(frozen=True, slots=True)
class Document:
    """A validated document and the exact bytes stored in S3."""

    type: str
    id: str
    body: bytes
    title: str
    status: str
    customer_codes: tuple[str, ...]
    created_at: datetime
    modified_at: datetime

    @property
    def etag(self) -> str:
        """S3's ETag of a single-part put: the MD5 of the body."""
        return hashlib.md5(self.body, usedforsecurity=False).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


def doc_type(name: str) -> DocumentType:
    try:
        return TYPES[name]
    except KeyError:
        known = ", ".join(sorted(TYPES))
        raise InvalidDocumentError(
            f"unknown document type {name!r} (known: {known})", ["type"]
        ) from None


def parse_document(raw: bytes | str | dict[str, Any], type_name: str | None = None) -> Document:
    """Validate a document; `type_name` (if given) must agree with its `object_type`."""
    if isinstance(raw, dict):
        data = raw
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidDocumentError(f"document is not valid JSON: {exc}", ["<body>"]) from exc
    if not isinstance(data, dict):
        raise InvalidDocumentError("document must be a JSON object", ["<body>"])
    name = type_name or data.get("object_type")
    if not isinstance(name, str):
        raise InvalidDocumentError("field 'object_type': missing", ["object_type"])
    dt = doc_type(name)
    try:
        model = dt.model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    if model.object_type != dt.name:
        raise InvalidDocumentError(
            f"field 'object_type': {model.object_type!r} does not match type {dt.name!r}",
            ["object_type"],
        )
    try:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except (ValueError, UnicodeEncodeError) as exc:  # NaN/Infinity, lone surrogates
        raise InvalidDocumentError(f"document is not valid JSON: {exc}", ["<body>"]) from exc
    return Document(
        type=dt.name,
        id=model.id,
        body=body,
        title=model.title,
        status=model.status,
        customer_codes=tuple(model.customer_codes),
        created_at=model.created_at.astimezone(UTC),
        modified_at=model.modified_at.astimezone(UTC),
    )


def _invalid(exc: ValidationError) -> InvalidDocumentError:
    fields, parts = [], []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "<body>"
        fields.append(field)
        parts.append(f"field {field!r}: {err['msg']}")
    return InvalidDocumentError("invalid document: " + "; ".join(parts), fields)
