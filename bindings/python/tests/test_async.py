"""acquire_token_async: the library's async path, cancellation and timeouts."""

import asyncio
import threading
import time

import pytest

import mtlspop
from mtlspop import _client
from conftest import RESOURCE, wait_until


def run(coro):
    return asyncio.run(coro)


def pending_empty():
    with _client._pending_cond:
        return not _client._pending


def test_200_concurrent_acquisitions(emulator):
    async def main():
        loop = asyncio.get_running_loop()
        ticks = 0
        max_gap = 0.0
        last = time.monotonic()

        def tick():
            nonlocal ticks, max_gap, last
            now = time.monotonic()
            max_gap = max(max_gap, now - last)
            last = now
            ticks += 1

        async def ticker():
            while True:
                await asyncio.sleep(0.005)
                tick()

        with mtlspop.ManagedIdentityClient(mtls_pop=True) as client:
            tick_task = asyncio.create_task(ticker())
            last = t0 = time.monotonic()
            results = await asyncio.gather(
                *(client.acquire_token_async(f"api://async-{i}") for i in range(200)))
            cached = await client.acquire_token_async("api://async-0")
            tick()  # the stretch since the last tick counts too
            elapsed = time.monotonic() - t0
        tick_task.cancel()
        # No thread pool was involved: the loop never created its default executor.
        assert getattr(loop, "_default_executor", None) is None
        return results, cached, ticks, max_gap, elapsed

    results, cached, ticks, max_gap, elapsed = run(main())
    assert len(results) == 200
    assert all(r.token_type == "mtls_pop" for r in results)
    assert len({r.binding_certificate_thumbprint for r in results}) == 1  # one shared mint
    assert len({r.access_token for r in results}) == 200
    assert cached.token_source == "cache"
    # The loop kept running while the library worked: it never stalled for long, and the timer
    # ticked throughout (every 5 ms it was free to).
    print(f"200 concurrent acquisitions: {elapsed * 1000:.0f} ms, {ticks} ticks, "
          f"longest gap {max_gap * 1000:.1f} ms")
    assert max_gap < 0.25, f"the event loop stalled for {max_gap * 1000:.0f} ms"
    assert ticks >= min(10, elapsed / 0.005 / 4), f"{ticks} ticks in {elapsed * 1000:.0f} ms"
    assert wait_until(pending_empty, 5)


def test_completion_runs_on_the_loop_thread(emulator):
    async def main():
        seen = []
        with mtlspop.ManagedIdentityClient() as client:
            r = await client.acquire_token_async(RESOURCE)
            seen.append(threading.get_ident())
        return r, seen

    r, seen = run(main())
    assert seen == [threading.get_ident()]
    assert r.token_type == "Bearer"


def test_cancel_cancels_the_request_in_the_library(emulator, blackhole):
    async def main():
        with mtlspop.ManagedIdentityClient(imds_endpoint=blackhole, timeout=60) as client:
            task = asyncio.create_task(client.acquire_token_async(RESOURCE))
            await asyncio.sleep(0.2)
            assert not task.done()
            assert not pending_empty()
            t0 = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The completion ("canceled") arrives long before the 60 s timeout: the request
            # was canceled in the library, not abandoned.
            assert await asyncio.get_running_loop().run_in_executor(
                None, wait_until, pending_empty, 5)
            return time.monotonic() - t0

    assert run(main()) < 5


def test_wait_for_timeout_cancels(emulator, blackhole):
    async def main():
        with mtlspop.ManagedIdentityClient(imds_endpoint=blackhole, timeout=60) as client:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.acquire_token_async(RESOURCE), 0.2)

    run(main())
    assert wait_until(pending_empty, 5)


def test_library_timeout(emulator, blackhole):
    async def main():
        with mtlspop.ManagedIdentityClient(imds_endpoint=blackhole, timeout=60) as client:
            t0 = time.monotonic()
            with pytest.raises(mtlspop.RequestTimeoutError) as e:
                await client.acquire_token_async(RESOURCE, timeout=0.2)
            return e.value, time.monotonic() - t0

    err, elapsed = run(main())
    assert err.code == "request_timeout" and isinstance(err, TimeoutError)
    assert elapsed < 5


def test_close_while_in_flight(emulator, blackhole):
    async def main():
        client = mtlspop.ManagedIdentityClient(imds_endpoint=blackhole, timeout=60)
        tasks = [asyncio.create_task(client.acquire_token_async(f"api://inflight-{i}",
                                                                mtls_pop=bool(i % 2)))
                 for i in range(8)]
        await asyncio.sleep(0.2)
        client.close()
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = run(main())
    assert all(isinstance(o, mtlspop.CanceledError) and o.code == "canceled" for o in outcomes)


def test_async_errors(emulator, emulator_v1):
    async def main():
        with mtlspop.ManagedIdentityClient(imds_endpoint=emulator_v1.urls["imds"]) as client:
            with pytest.raises(mtlspop.PoPNotSupportedError) as e:
                await client.acquire_token_async(RESOURCE, mtls_pop=True)
            assert e.value.code == "mtls_pop_token_not_supported_in_imds_v1"
            with pytest.raises(mtlspop.InvalidArgumentError):  # refused at once
                await client.acquire_token_async("")
            with pytest.raises(mtlspop.InvalidArgumentError):
                await client.acquire_token_async("\x00")
        with pytest.raises(mtlspop.ClosedError):
            await client.acquire_token_async(RESOURCE)

    run(main())
    assert wait_until(pending_empty, 5)


def test_loop_closed_before_completion(emulator, blackhole):
    """A completion for a loop that is gone is dropped without harm."""
    client = mtlspop.ManagedIdentityClient(imds_endpoint=blackhole, timeout=60)
    loop = asyncio.new_event_loop()
    task = loop.create_task(client.acquire_token_async(RESOURCE))
    loop.run_until_complete(asyncio.sleep(0.1))
    loop.close()  # the task never finished; its future is left behind
    client.close()  # the library completes the request on its thread, with "canceled"
    assert wait_until(pending_empty, 5)
    del task
