"""The actions: one module per family, each handler named after the action it serves.

A handler gets the validated parameters and a Context, and returns the response fields; the
app wraps them in the envelope. Handlers are registered per dialect (API.md §1).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from vmimages.catalog import DEFAULT_IMAGE_QUOTA
from vmimages.errors import ApiError, Code, shown
from vmimages.protocol import SEED
from vmimages.store import RequestStore
from vmimages.validation import Spec

if TYPE_CHECKING:
    from vmimages.feed import Feed


class Context:
    """What a handler may use besides its parameters; one is made for each request."""

    __slots__ = (
        "caller",
        "extend_deadline",
        "feed",
        "image_created",
        "image_quota",
        "store",
        "version",
    )

    def __init__(
        self,
        store: RequestStore,
        version: str,
        caller: int,
        image_quota: int = DEFAULT_IMAGE_QUOTA,
        image_created: Callable[[], None] = lambda: None,
        feed: Feed | None = None,
        extend_deadline: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self.store = store
        self.version = version  # SEED ("") or a published X-ZC-Version
        self.caller = caller  # the calling account
        self.image_quota = image_quota  # custom images per location, unless the account's own
        self.image_created = image_created  # tells the build worker there is work
        self.feed = feed  # DescribeImageChanges' cursors and long polls (feed.py)
        self.extend_deadline = extend_deadline  # for a long poll's wait

    @property
    def seed(self) -> bool:
        return self.version == SEED


class Answer(dict[str, Any]):
    """A handler's response fields with the answer's ETag, for a handler that knows it without
    hashing the whole answer again (DescribeImages: its pages' JSON is made and hashed once,
    actions/images.py). Other conditional answers are hashed by the app (protocol.etag_of)."""

    def __init__(self, fields: dict[str, Any], etag: bytes) -> None:
        super().__init__(fields)
        self.etag = etag


Handler = Callable[[Context, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    params: Spec
    handler: Handler
    mutating: bool = False  # changes the catalog: carried out once per signature (replay.py)
    conditional: bool = False  # answered with an ETag, and 304 to a matching If-None-Match


def _registry() -> dict[tuple[bool, str], Action]:
    from vmimages.actions import changes, images, lifecycle, locations

    table: dict[tuple[bool, str], Action] = {}
    for module in (images, locations, lifecycle, changes):
        for action in module.SEED_ACTIONS:
            table[(True, action.name)] = action
        for action in module.PUBLISHED_ACTIONS:
            table[(False, action.name)] = action
    return table


ACTIONS: Final = _registry()


def find_action(version: str, name: str) -> Action:
    action = ACTIONS.get((version == SEED, name))
    if action is None:
        dialect = "the seed dialect" if version == SEED else f"version {version}"
        raise ApiError(
            Code.AUTHFAILURE_UNAUTHORIZED_OPERATION,
            f"The action `{shown(name)}` does not exist in {dialect}.",
        )
    return action
