"""fork(): a child process gets a clean ForkedError, never a hang."""

import multiprocessing
import os
import warnings

import pytest

import mtlspop
from conftest import RESOURCE

# Set before forking; the child sees the parent's client.
_inherited = None


def _use_inherited_client():
    try:
        _inherited.acquire_token(RESOURCE)
    except mtlspop.MtlsPopError as e:
        return type(e).__name__, e.code
    return "no error", None


def _create_client():
    try:
        mtlspop.ManagedIdentityClient()
    except mtlspop.MtlsPopError as e:
        return type(e).__name__, e.code
    return "no error", None


def _raise_in_child():
    _inherited.acquire_token(RESOURCE, mtls_pop=True)


def _versions():
    return mtlspop.__version__, mtlspop.ABI_VERSION


def test_fork_child_gets_forked_error(emulator):
    global _inherited
    _inherited = mtlspop.ManagedIdentityClient()
    try:
        assert _inherited.acquire_token(RESOURCE).token_type == "Bearer"  # runtime in use
        ctx = multiprocessing.get_context("fork")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
            with ctx.Pool(1) as pool:
                # Bounded: a hang fails the test instead of stalling the suite.
                assert pool.apply_async(_use_inherited_client).get(timeout=30) == (
                    "ForkedError", "forked")
                assert pool.apply_async(_create_client).get(timeout=30) == (
                    "ForkedError", "forked")
                assert pool.apply_async(_versions).get(timeout=30) == (
                    mtlspop.__version__, mtlspop.ABI_VERSION)
                with pytest.raises(mtlspop.ForkedError) as e:  # pickled back with its code
                    pool.apply_async(_raise_in_child).get(timeout=30)
                assert e.value.code == "forked"
        # The parent is unaffected.
        assert _inherited.acquire_token(RESOURCE).token_source == "cache"
    finally:
        _inherited.close()
        _inherited = None


def test_plain_fork_child_exits_cleanly(emulator):
    """A child that forks, uses the library and exits normally (atexit included) ends."""
    with mtlspop.ManagedIdentityClient() as client:
        client.acquire_token(RESOURCE)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # child
            code = 3
            try:
                client.acquire_token(RESOURCE)
            except mtlspop.ForkedError:
                code = 0
            except BaseException:  # noqa: BLE001
                code = 4
            os._exit(code)
        import time

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        assert os.waitstatus_to_exitcode(status) == 0
