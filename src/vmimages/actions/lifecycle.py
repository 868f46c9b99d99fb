"""The image lifecycle, both dialects (API.md §7): CreateImage, ModifyImagesAttributes,
DeleteImages, DescribeImageQuota. Only the location parameter's name differs."""

from __future__ import annotations

import re
import secrets
from dataclasses import replace
from typing import Any

from vmimages.accounts import ALPHANUMERIC
from vmimages.actions import Action, Context
from vmimages.catalog import ImageIdTaken, Location
from vmimages.validation import STRING, STRING_ARRAY, Param, spec

# 2 to 24 letters, digits, Chinese characters, `-` and `_`.
IMAGE_NAME = re.compile(r"[A-Za-z0-9\u3400-\u4dbf\u4e00-\u9fff_-]+")

IMAGE_IDS = Param(
    "imageIds", STRING_ARRAY, required=True, min_length=1, max_length=100, item_max_length=64
)
NAME_RULE = "letters, digits, Chinese characters, `-` or `_`"
NEW_NAME = Param(
    "imageName", STRING, min_length=2, max_length=24, pattern=IMAGE_NAME, pattern_text=NAME_RULE
)
DESCRIPTION = Param("imageDescription", STRING, max_length=255)


def new_image_id() -> str:
    return "img-" + "".join(secrets.choice(ALPHANUMERIC) for _ in range(8))


async def create_image(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    for _ in range(5):
        try:
            image = await ctx.store.create_image(
                ctx.caller,
                params["instanceId"],
                new_image_id(),
                params["imageName"],
                params["imageDescription"],
                ctx.image_quota,
            )
            break
        except ImageIdTaken:
            continue
    else:  # five collisions in a row among 62^8 ids: something else is wrong
        raise RuntimeError("could not draw a free image id")
    ctx.image_created()
    return {"imageId": image.image_id, "imageName": image.name}


async def modify_images_attributes(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    # Terraform sends only `imageIds` when the description is empty (and never a name): then
    # the images are checked as for a change, and nothing changes (API.md §7).
    name, description = params["imageName"], params["imageDescription"]
    ids = list(dict.fromkeys(params["imageIds"]))
    await ctx.store.modify_images(ctx.caller, ids, name, description)
    return {}


async def delete_images(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    await ctx.store.delete_images(ctx.caller, list(dict.fromkeys(params["imageIds"])))
    return {}


async def describe_image_quota(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    key = "regionId" if ctx.seed else "zoneId"
    wanted = params[key + "s"]
    locations: list[Location] | None = None
    if wanted:
        locations = []
        for ident in dict.fromkeys(wanted):
            if ctx.seed:
                locations.append(await ctx.store.find_location(region_id=ident))
            else:
                locations.append(await ctx.store.find_location(zone_id=ident))
    quotas = await ctx.store.image_quotas(ctx.caller, locations, ctx.image_quota)
    return {
        "images": [
            {
                key: q.location.region_id if ctx.seed else q.location.zone_id,
                "count": q.count,
                "maxCount": q.max_count,
            }
            for q in quotas
        ]
    }


def _actions(location_ids: str) -> list[Action]:
    return [
        Action(
            "CreateImage",
            spec(
                Param("instanceId", STRING, required=True, min_length=1, max_length=64),
                replace(NEW_NAME, required=True),
                DESCRIPTION,
            ),
            create_image,
            mutating=True,
        ),
        Action(
            "ModifyImagesAttributes",
            spec(IMAGE_IDS, NEW_NAME, DESCRIPTION),
            modify_images_attributes,
            mutating=True,
        ),
        Action("DeleteImages", spec(IMAGE_IDS), delete_images, mutating=True),
        Action(
            "DescribeImageQuota",
            spec(Param(location_ids, STRING_ARRAY, max_length=100, item_max_length=64)),
            describe_image_quota,
        ),
    ]


SEED_ACTIONS = _actions("regionIds")
PUBLISHED_ACTIONS = _actions("zoneIds")
