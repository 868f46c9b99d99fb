"""The locations: DescribeRegions (seed dialect) and DescribeZones (published)."""

from __future__ import annotations

from typing import Any

from vmimages.actions import Action, Context
from vmimages.catalog import Location
from vmimages.validation import STRING_ARRAY, Param, spec


async def describe_regions(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    wanted = params["regionIds"]
    found = await ctx.store.list_locations(
        region_ids=None if wanted is None else tuple(dict.fromkeys(wanted))
    )
    return {"regions": [{"regionId": loc.region_id, "regionName": loc.name} for loc in found]}


def zone_info(location: Location, version: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "zoneId": location.zone_id,
        "zoneName": location.name,
        "supportSecurityGroup": location.support_security_group,
        "supportNetworkType": location.support_network_type,
        "supportIpv6": location.support_ipv6,
        "supportCpuPassThrough": location.support_cpu_pass_through,
    }
    if version >= "2026-04-01":
        info["networkLineType"] = location.network_line_type
    return info


async def describe_zones(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    wanted = params["zoneIds"]
    found = await ctx.store.list_locations(
        zone_ids=None if wanted is None else tuple(dict.fromkeys(wanted))
    )
    return {"zoneSet": [zone_info(loc, ctx.version) for loc in found]}


SEED_ACTIONS = [
    Action(
        "DescribeRegions",
        spec(Param("regionIds", STRING_ARRAY, max_length=100, item_max_length=64)),
        describe_regions,
    ),
]

PUBLISHED_ACTIONS = [
    Action(
        "DescribeZones",
        spec(Param("zoneIds", STRING_ARRAY, max_length=100, item_max_length=64)),
        describe_zones,
    ),
]
