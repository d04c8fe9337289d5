"""Interpreter exit with work in flight: no crash, no hang, whatever is still running."""

import subprocess
import sys
import textwrap

import pytest

SCENARIOS = {
    # Async requests pending on a silent IMDS, never awaited, loop never closed.
    "pending async": """
        import asyncio, sys, mtlspop
        client = mtlspop.ManagedIdentityClient(imds_endpoint=sys.argv[1], timeout=60)
        loop = asyncio.new_event_loop()
        tasks = [loop.create_task(client.acquire_token_async(f"api://x{i}")) for i in range(50)]
        loop.run_until_complete(asyncio.sleep(0.2))
    """,
    # A daemon thread blocked in a call into the library.
    "blocked daemon thread": """
        import sys, threading, time, mtlspop
        client = mtlspop.ManagedIdentityClient(imds_endpoint=sys.argv[1], timeout=60)
        threading.Thread(target=client.acquire_token, args=("api://x",), daemon=True).start()
        time.sleep(0.2)
    """,
    # Debug logging on, records in flight, asyncio completions racing the exit.
    "logging and completions": """
        import asyncio, logging, mtlspop
        logging.basicConfig(level=logging.DEBUG, stream=open("/dev/null", "w"))
        async def main():
            client = mtlspop.ManagedIdentityClient(mtls_pop=True)
            for i in range(100):
                asyncio.ensure_future(client.acquire_token_async(f"api://exit-{i}"))
            await asyncio.sleep(0.05)
        asyncio.run(main())
    """,
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_exit_with_work_in_flight(emulator, blackhole, name):
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCENARIOS[name]), blackhole],
        capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    assert b"Fatal Python error" not in proc.stderr
    assert b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")[-2000:]
