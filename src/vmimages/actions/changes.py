"""DescribeImageChanges (a vmimages extension, both dialects): the catalog as a feed
(docs/changes.md). Without a cursor: every image the caller may see, as CREATED, then every
change after that; each page's `nextCursor` is where the next starts. With `waitSeconds`, a
page with nothing new waits (up to 20 s) for a change the caller may see."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vmimages.actions import Action, Context
from vmimages.actions.images import published_image_info, seed_image_info
from vmimages.catalog import Image
from vmimages.errors import ApiError, Code
from vmimages.history import FeedEntry
from vmimages.validation import BOOLEAN, INTEGER, STRING, Param, Spec, spec


def params(location: Param) -> Spec:
    return spec(
        Param("cursor", STRING, min_length=1, max_length=1024),
        Param("pageSize", INTEGER, minimum=1, maximum=1000, default=100),
        Param("waitSeconds", INTEGER, minimum=0, maximum=20, default=0),
        Param("fromNow", BOOLEAN, default=False),
        location,
    )


async def changes(
    ctx: Context,
    values: dict[str, Any],
    where: str,
    shape: Callable[[Image], dict[str, Any]],
) -> dict[str, Any]:
    """`where`: the dialect's location parameter, and the field each change names it by."""
    assert ctx.feed is not None, "the app gives the feed to every request"
    located = values[where]
    region_id = zone_id = None
    if located is not None:  # a location that does not exist is an error, as elsewhere
        if where == "regionId":
            region_id = (await ctx.store.find_location(region_id=located)).region_id
        else:
            zone_id = (await ctx.store.find_location(zone_id=located)).zone_id
    scope = f"{ctx.caller} {where}={located or ''}"
    ctx.extend_deadline(values["waitSeconds"])  # the wait is not counted as work
    cursor = None if values["cursor"] is None else ctx.feed.open(values["cursor"], scope)
    if cursor is not None and values["fromNow"]:
        raise ApiError(
            Code.INVALID_PARAMETER_VALUE,
            "Give `cursor` (go on from there) or `fromNow` (start from now), not both.",
        )
    page = await ctx.feed.page(
        ctx.caller, cursor, values["pageSize"], values["waitSeconds"],
        region_id=region_id, zone_id=zone_id, from_now=values["fromNow"],
    )  # fmt: skip
    return {
        "changes": [change(entry, where, shape) for entry in page.entries],
        "nextCursor": ctx.feed.seal(page.cursor, scope),
    }


def change(
    entry: FeedEntry, where: str, shape: Callable[[Image], dict[str, Any]]
) -> dict[str, Any]:
    return {
        "changeType": entry.kind,
        "changeTime": entry.at,
        "imageId": entry.image_id,
        where: entry.region_id if where == "regionId" else entry.zone_id,
        "image": None if entry.image is None else shape(entry.image),
    }


async def describe_image_changes(ctx: Context, values: dict[str, Any]) -> dict[str, Any]:
    return await changes(ctx, values, "regionId", seed_image_info)


async def describe_image_changes_published(ctx: Context, values: dict[str, Any]) -> dict[str, Any]:
    return await changes(ctx, values, "zoneId", published_image_info)


SEED_ACTIONS = [
    Action(
        "DescribeImageChanges",
        params(Param("regionId", STRING, min_length=1, max_length=64)),
        describe_image_changes,
        conditional=True,
    ),
]
PUBLISHED_ACTIONS = [
    Action(
        "DescribeImageChanges",
        params(Param("zoneId", STRING, min_length=1, max_length=64)),
        describe_image_changes_published,
        conditional=True,
    ),
]
