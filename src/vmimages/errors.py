"""Every error the API can answer, in one table, and the one table of what domain errors answer.

The wire contract (API.md §4, §5) is the code; the HTTP status belongs to the code. Messages are
for people and name the problem (the parameter, the value, the limit).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, Final

from vmimages import accounts, catalog, history


class Code(Enum):
    """The error table: code name, the HTTP status it is always answered with, and what it means."""

    def __init__(self, status: int, meaning: str) -> None:
        self.status = status
        self.meaning = meaning

    MISSING_PARAMETER = (400, "a required parameter or the action header is missing")
    INVALID_PARAMETER_TYPE = (400, "a parameter has the wrong JSON type")
    INVALID_PARAMETER_VALUE = (400, "a value is not allowed, or the body is not a JSON object")
    INVALID_PARAMETER_EXCEED_MAXIMUM = (400, "a number is above its maximum")
    INVALID_PARAMETER_LESS_MINIMUM = (400, "a number is below its minimum")
    INVALID_PARAMETER_EXCEED_LENGTH = (400, "a string or array is too long")
    INVALID_PARAMETER_LESS_LENGTH = (400, "a string or array is too short")
    INVALID_PARAMETER_PATTERN_ERROR = (400, "a string does not match its pattern")
    # The contract's whole table is kept; one code is not answered yet (docs/errors.md): no
    # action takes a date.
    INVALID_PARAMETER_DATE_FORMAT_ERROR = (400, "a date is malformed")
    AUTHFAILURE_INVALID_AUTHORIZATION = (401, "no, malformed or unknown credentials")
    AUTHFAILURE_SIGNATURE_FAILURE = (401, "the signature does not match")
    AUTHFAILURE_SIGNATURE_EXPIRED = (401, "the timestamp is more than 5 minutes off")
    AUTHFAILURE_UNAUTHORIZED_OPERATION = (401, "the action does not exist or is not allowed")
    INVALID_REGION_NOT_FOUND = (404, "the regionId names no region")
    INVALID_ZONE_NOT_FOUND = (404, "the zoneId names no zone")
    INVALID_IMAGE_NOT_FOUND = (404, "no image with that id is visible to the caller")
    INVALID_INSTANCE_NOT_FOUND = (404, "no instance with that id belongs to the caller")
    INVALID_IMAGE_STATUS = (400, "the image's status does not allow the operation")
    LIMIT_EXCEEDED_IMAGE_QUOTA = (400, "the custom image quota of the location is used up")
    OPERATION_FAILED_RESOURCE_NOT_FOUND = (404, "no such resource, or no such path")
    # Transport-level answers the contract does not name; see docs/errors.md.
    UNSUPPORTED_HTTP_METHOD = (405, "the endpoint takes POST only")
    REQUEST_TIMEOUT = (408, "the whole request was not received in time")
    REQUEST_ENTITY_TOO_LARGE = (413, "the body is larger than the configured limit")
    UNSUPPORTED_MEDIA_TYPE = (415, "the body is not sent as application/json")
    REQUEST_LIMIT_EXCEEDED = (429, "rate limited; retry with backoff")
    REQUEST_HEADER_FIELDS_TOO_LARGE = (431, "the request line and headers are too large")
    INTERNAL_SERVER_ERROR = (500, "an unexpected failure; details are in the server log only")
    SERVICE_TEMPORARY_UNAVAILABLE = (503, "the store is unreachable; retry later")
    REQUEST_TIMED_OUT = (503, "the request ran out of time")
    # vmimages' own extensions (docs/changes.md).
    INVALID_CURSOR_EXPIRED = (410, "the cursor is older than the history kept; start again")


class ApiError(Exception):
    """An error answered to the client as the JSON error envelope."""

    def __init__(
        self,
        code: Code,
        message: str,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        hold_seconds: float = 0.0,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers
        self.hold_seconds = hold_seconds  # how long the answer waits before it is sent

    @property
    def status(self) -> int:
        return self.code.status


# Helpers for messages that quote what a caller sent.


SHOWN: Final = 64  # characters of a caller's text that a message or a log line quotes


def shown(text: str, limit: int = SHOWN) -> str:
    """A caller's text as quoted in a message: bounded, so an error never echoes a huge value."""
    return text if len(text) <= limit else text[:limit] + "..."


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


INTERNAL_MESSAGE = "An internal error occurred. Quote the requestId when you report it."


# Each domain error's code and message: the one table (catalog.py raises, the edge answers).
DOMAIN_ERRORS: dict[type[catalog.DomainError], Callable[[Any], tuple[Code, str]]] = {
    catalog.LocationNotFound: lambda e: (
        Code.INVALID_ZONE_NOT_FOUND if e.kind == "zone" else Code.INVALID_REGION_NOT_FOUND,
        f"The specified {e.kind}Id `{e.value}` is not found.",
    ),
    catalog.ImageNotFound: lambda e: (
        Code.INVALID_IMAGE_NOT_FOUND,
        f"The specified imageId `{e.image_id}` is not found.",
    ),
    catalog.NotCustomImage: lambda e: (
        Code.AUTHFAILURE_UNAUTHORIZED_OPERATION,
        f"The image `{e.image_id}` is a public image; only custom images can be changed.",
    ),
    catalog.InvalidImageStatus: lambda e: (
        Code.INVALID_IMAGE_STATUS,
        f"The image `{e.image_id}` is {e.status}; it cannot be {e.action} now.",
    ),
    catalog.InstanceNotFound: lambda e: (
        Code.INVALID_INSTANCE_NOT_FOUND,
        f"The specified instanceId `{e.instance_id}` is not found.",
    ),
    catalog.QuotaExceeded: lambda e: (
        Code.LIMIT_EXCEEDED_IMAGE_QUOTA,
        f"The custom image quota is used up: at most {e.limit} custom images in"
        f" {e.location.region_id} ({e.location.zone_id}). Delete one first.",
    ),
    catalog.StoreUnavailable: lambda e: (
        Code.SERVICE_TEMPORARY_UNAVAILABLE,
        "The image catalog is temporarily unavailable. Retry later.",
    ),
    catalog.WritesUnavailable: lambda e: (
        Code.SERVICE_TEMPORARY_UNAVAILABLE,
        "The image catalog takes no changes right now (reading it works). Retry later.",
    ),
    # The operator's errors, answered when serve --dev's control endpoints meet them (dev.py).
    catalog.InstanceExists: lambda e: (
        Code.INVALID_PARAMETER_VALUE,
        f"The instanceId `{e.instance_id}` is taken; choose another.",
    ),
    accounts.AccountNotFound: lambda e: (
        Code.OPERATION_FAILED_RESOURCE_NOT_FOUND,
        f"There is no account named `{e.name}`.",
    ),
    accounts.AccountHasImages: lambda e: (
        Code.INVALID_PARAMETER_VALUE,
        f"The account `{e.name}` owns {e.count} custom images: delete them first, or delete"
        " the account with its images.",
    ),
    accounts.InvalidAccountName: lambda e: (
        Code.INVALID_PARAMETER_VALUE,
        f"The account name `{shown(e.name)}` must be 1 to 64 letters, digits, `.`, `_` or `-`,"
        " starting with a letter or digit.",
    ),
    history.CursorExpired: lambda e: (
        Code.INVALID_CURSOR_EXPIRED,
        "The cursor is older than the history this service keeps (changes before it were"
        " compacted): start again without a cursor, which sends the whole catalog first.",
    ),
    accounts.AccountExists: lambda e: (
        Code.INVALID_PARAMETER_VALUE,
        f"The account `{e.name}` exists already.",
    ),
    accounts.CredentialNotFound: lambda e: (
        Code.OPERATION_FAILED_RESOURCE_NOT_FOUND,
        f"There is no {e.kind} `{e.ident}`.",
    ),
}
# Never answered: a CreateImage that draws a taken id draws another (actions/lifecycle.py).
INTERNAL_ONLY = frozenset({catalog.ImageIdTaken})


def to_api_error(exc: Exception) -> ApiError:
    """What the client is answered for any exception: an ApiError as raised, a domain error
    from the table, anything else INTERNAL_SERVER_ERROR (whose details stay in the log)."""
    if isinstance(exc, ApiError):
        return exc
    row = DOMAIN_ERRORS.get(type(exc)) if isinstance(exc, catalog.DomainError) else None
    if row is None:
        return ApiError(Code.INTERNAL_SERVER_ERROR, INTERNAL_MESSAGE)
    return ApiError(*row(exc))
