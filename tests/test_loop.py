"""The requests in flight and their deadlines (vmimages.loop)."""

from __future__ import annotations

import asyncio

from vmimages.loop import InFlight


def test_a_request_past_its_deadline_is_cancelled_and_others_are_not() -> None:
    in_flight = InFlight(0.05)
    outcomes: dict[str, str] = {}

    async def request(name: str, seconds: float) -> None:
        task = in_flight.start()
        try:
            await asyncio.sleep(seconds)
            outcomes[name] = "done"
        except asyncio.CancelledError:
            outcomes[name] = "timed out" if in_flight.expired(task) else "cancelled"
        finally:
            in_flight.finish(task)

    async def main() -> None:
        await asyncio.gather(request("slow", 5), request("quick", 0.01))
        other = asyncio.ensure_future(request("cancelled by someone else", 5))
        await asyncio.sleep(0.01)
        other.cancel()
        await other

    asyncio.run(main())
    asyncio.run(main())  # a second loop: the in_flight follow it
    assert outcomes == {
        "slow": "timed out",
        "quick": "done",
        "cancelled by someone else": "cancelled",
    }
