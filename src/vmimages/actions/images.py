"""DescribeImages in both dialects, and DescribeImage (published): one query, two shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import orjson

from vmimages.actions import Action, Answer, Context
from vmimages.catalog import (
    IMAGE_STATUSES,
    IMAGE_TYPES,
    OS_TYPES,
    SEED_CATEGORIES,
    Image,
    ImageNotFound,
    ImagePage,
    ImageQuery,
)
from vmimages.catalogfile import CATEGORY
from vmimages.protocol import weak_etag
from vmimages.validation import INTEGER, STRING, STRING_ARRAY, Param, Spec, spec

MAX_PAGE_NUM: Final = 2**31 - 1


def describe_images_params(location: Param, category: Param) -> Spec:
    return spec(
        Param("imageIds", STRING_ARRAY, max_length=100, item_max_length=64),
        Param("imageName", STRING, max_length=128),
        location,
        category,
        Param("imageType", STRING, choices=IMAGE_TYPES),
        Param("osType", STRING, choices=OS_TYPES, any_case=True),  # the Go SDK says `Linux`
        Param("imageStatus", STRING, choices=IMAGE_STATUSES),
        Param("pageNum", INTEGER, minimum=1, maximum=MAX_PAGE_NUM, default=1),
        Param("pageSize", INTEGER, minimum=1, maximum=1000, default=20),
    )


def image_query(ctx: Context, params: dict[str, Any], location: int | None) -> ImageQuery:
    ids = params["imageIds"]
    return ImageQuery(
        viewer=ctx.caller,
        image_ids=tuple(dict.fromkeys(ids)) if ids else None,  # [] means "no id filter"
        name_contains=params["imageName"] or None,
        location=location,
        category=params["category"],
        image_type=params["imageType"],
        os_type=params["osType"],
        status=params["imageStatus"],
        page_num=params["pageNum"],
        page_size=params["pageSize"],
    )


def seed_image_info(image: Image) -> dict[str, Any]:
    """ImageInfo of the seed dialect: the data structure's fields plus the example's names."""
    return {
        "imageId": image.image_id,
        "imageName": image.name,
        "imageType": image.image_type,
        "imageStatus": image.status,
        "imageSize": image.size_gb,
        "imageDescription": image.description,
        "imageVersion": image.version,
        "category": image.category,
        "osType": image.os_type,
        "regionId": image.region_id,
        "createTime": image.create_time,
        "type": image.os_type,
        "version": image.version,
    }


def published_image_info(image: Image) -> dict[str, Any]:
    """ImageInfo of the published dialect: imageSize is a string (the Go SDK fails on a number)."""
    return {
        "imageId": image.image_id,
        "imageName": image.name,
        "imageType": image.image_type,
        "imageSize": str(image.size_gb),
        "imageDescription": image.description,
        "imageVersion": image.version,
        "imageStatus": image.status,
        "category": image.category,
        "osType": image.os_type,
    }


def answer(page: ImagePage, key: str, shape: Callable[[Image], dict[str, Any]]) -> Answer:
    """A page's answer in one dialect's shape (its images under `key`), its JSON and ETag made
    once per page (see ImagePage.memo): an answer kept in memory is neither serialized nor
    hashed again."""
    made: Answer | None = page.memo.get(shape.__name__)
    if made is None:  # (never changed once made: the envelope copies it)
        images = orjson.dumps([shape(image) for image in page.images])
        fields = {"totalCount": page.total_count, key: orjson.Fragment(images)}
        made = Answer(fields, weak_etag(images, b"%d" % page.total_count))
        page.memo[shape.__name__] = made
    return made


async def describe_images(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Seed dialect: optional regionId, the list under `images`."""
    location = None
    if params["regionId"] is not None:
        location = (await ctx.store.find_location(region_id=params["regionId"])).id
    page = await ctx.store.describe_images(image_query(ctx, params, location))
    return answer(page, "images", seed_image_info)


async def describe_images_published(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Published dialect: required zoneId, the list under `dataSet`."""
    location = (await ctx.store.find_location(zone_id=params["zoneId"])).id
    page = await ctx.store.describe_images(image_query(ctx, params, location))
    return answer(page, "dataSet", published_image_info)


async def describe_image(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Published dialect: one image by id, its fields flat in the response."""
    query = ImageQuery(viewer=ctx.caller, image_ids=(params["imageId"],), page_size=1)
    page = await ctx.store.describe_images(query)
    if not page.images:
        raise ImageNotFound(params["imageId"])
    return published_image_info(page.images[0])


SEED_ACTIONS = [
    Action(
        "DescribeImages",
        describe_images_params(
            Param("regionId", STRING, min_length=1, max_length=64),
            Param("category", STRING, choices=SEED_CATEGORIES),
        ),
        describe_images,
        conditional=True,
    ),
]

PUBLISHED_ACTIONS = [
    Action(
        "DescribeImages",
        describe_images_params(
            Param("zoneId", STRING, required=True, min_length=1, max_length=64),
            # The published API lists more categories than the seed's four (docs/errors.md).
            Param("category", STRING, pattern=CATEGORY, max_length=32),
        ),
        describe_images_published,
        conditional=True,
    ),
    Action(
        "DescribeImage",
        spec(Param("imageId", STRING, required=True, min_length=1, max_length=64)),
        describe_image,
        conditional=True,
    ),
]
