"""The requests in flight: in_flight and turns (vmimages.loop)."""

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
        assert in_flight._timer is None  # nothing runs: the timer has stopped
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


def test_the_loop_is_busy_after_a_turn_that_started_several_requests() -> None:
    in_flight = InFlight(10)
    seen: list[bool] = []

    async def request() -> None:
        seen.append(in_flight.busy)
        in_flight.finish(in_flight.start())

    async def main() -> None:
        await request()  # alone
        await asyncio.sleep(0)  # the turn ends
        await request()  # alone again: the last turn started one
        await asyncio.sleep(0)
        await asyncio.gather(request(), request(), request())  # three in one turn
        await asyncio.sleep(0)
        await request()  # the turn before started three
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        await request()  # the turn before started one

    asyncio.run(main())
    assert seen == [False, False, False, False, False, True, False]
