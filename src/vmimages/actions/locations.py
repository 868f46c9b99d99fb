"""DescribeRegions (seed dialect)."""

from __future__ import annotations

from typing import Any

from vmimages.actions import Action, Context
from vmimages.validation import STRING_ARRAY, Param, spec


async def describe_regions(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    wanted = params["regionIds"]
    found = await ctx.store.list_locations(
        region_ids=None if wanted is None else tuple(dict.fromkeys(wanted))
    )
    return {"regions": [{"regionId": loc.region_id, "regionName": loc.name} for loc in found]}


SEED_ACTIONS = [
    Action(
        "DescribeRegions",
        spec(Param("regionIds", STRING_ARRAY, max_length=100, item_max_length=64)),
        describe_regions,
    ),
]
