"""The catalog's history: every change to an image, recorded by the store in the transaction
that makes it, in commit order, with what changed, when and by whom (migration 0007). It is what
DescribeImageChanges (actions/changes.py) and `vmimages changes` read.

Who made a change is the `Actor` of the work under way, set where that work is known: the API
pipeline sets the caller (account, credential, request id) once authenticated (app.dispatch),
the build worker sets itself, the CLI its command, `serve --dev` its control endpoint. A change
made with none set says `unknown`.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

from vmimages.catalog import DomainError, Image

CREATED, MODIFIED, DELETED = "CREATED", "MODIFIED", "DELETED"


@dataclass(frozen=True, slots=True)
class Actor:
    account: int | None = None  # the account that called the API
    credential: str | None = None  # "key:ACCESS_KEY_ID" or "token:TOKEN_ID"
    request_id: str | None = None
    command: str | None = None  # not the API: "vmimages images import", "build worker", ...

    def text(self) -> str:
        """As the audit trail shows it."""
        if self.command is not None:
            return self.command
        parts = [f"account {self.account}"]
        if self.credential is not None:
            parts.append(self.credential)
        if self.request_id is not None:
            parts.append(f"request {self.request_id}")
        return ", ".join(parts)


UNKNOWN = Actor(command="unknown")
_ACTOR: contextvars.ContextVar[Actor] = contextvars.ContextVar("vmimages_actor", default=UNKNOWN)


def actor() -> Actor:
    return _ACTOR.get()


def set_actor(who: Actor) -> None:
    """For the rest of this task (a request's, a control endpoint's, the build worker's loop,
    a CLI command's run)."""
    _ACTOR.set(who)


@dataclass(frozen=True, slots=True)
class Change:
    """One change to one image, as a writer states it; the store numbers and stamps it."""

    image_id: str
    owner: int
    region_id: str
    zone_id: str
    kind: str
    detail: dict[str, Any] | None = None  # MODIFIED: {field: [before, after]}; DELETED: name


@dataclass(frozen=True, slots=True)
class Recorded:
    """A change as the history holds it."""

    seq: int
    image_id: str
    owner: int
    region_id: str
    zone_id: str
    kind: str
    at: str  # UTC, YYYY-MM-DDThh:mm:ssZ
    actor: str
    detail: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a reader of the feed is: `seq`, the change number it has everything up to; while it
    reads the catalog as it stood at `seq` (a reader that started without a cursor), `after`
    is the last image id it was sent ("" before the first)."""

    seq: int
    after: str | None = None


@dataclass(frozen=True, slots=True)
class FeedEntry:
    kind: str
    at: str
    image_id: str
    region_id: str
    zone_id: str
    image: Image | None  # as DescribeImages shows it now; None for DELETED


@dataclass(frozen=True, slots=True)
class FeedPage:
    entries: list[FeedEntry]
    cursor: Cursor  # where the next page starts
    latest: int  # the newest change number the page was read against


class CursorExpired(DomainError):
    def __init__(self, seq: int, floor: int) -> None:
        super().__init__(f"cursor at change {seq} is older than the history kept (from {floor})")
        self.seq = seq
        self.floor = floor
