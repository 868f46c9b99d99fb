"""DescribeImages (seed dialect): filters, paging, the seed's ImageInfo."""

from __future__ import annotations

from typing import Any

from vmimages.actions import Action, Context
from vmimages.catalog import (
    IMAGE_STATUSES,
    IMAGE_TYPES,
    OS_TYPES,
    SEED_CATEGORIES,
    Image,
    ImageQuery,
)
from vmimages.validation import INTEGER, STRING, STRING_ARRAY, Param, Spec, spec

MAX_PAGE_NUM = 2**31 - 1


def describe_images_params(location: Param, categories: tuple[str, ...]) -> Spec:
    return spec(
        Param("imageIds", STRING_ARRAY, max_length=100, item_max_length=64),
        Param("imageName", STRING, max_length=128),
        location,
        Param("category", STRING, choices=categories),
        Param("imageType", STRING, choices=IMAGE_TYPES),
        Param("osType", STRING, choices=OS_TYPES),
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


async def describe_images(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    location = None
    if params["regionId"] is not None:
        location = (await ctx.store.find_location(region_id=params["regionId"])).id
    page = await ctx.store.describe_images(image_query(ctx, params, location))
    return {
        "totalCount": page.total_count,
        "images": [seed_image_info(image) for image in page.images],
    }


SEED_ACTIONS = [
    Action(
        "DescribeImages",
        describe_images_params(
            Param("regionId", STRING, min_length=1, max_length=64), SEED_CATEGORIES
        ),
        describe_images,
    ),
]
