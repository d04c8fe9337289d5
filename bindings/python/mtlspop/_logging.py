"""Library log records, forwarded to the ``logging`` module under the ``mtlspop`` logger.

The library's log callback is process-wide and off by default. It is switched on, at the lowest
level the ``mtlspop`` logger lets through, whenever a client is created, and each client asks the
library for records from that level up (its "log_level"): configure logging first, then create
clients. Records arrive one at a time on a thread of the library; the library never puts tokens,
keys, CSRs, assertions or response bodies in them.

Each record's structured fields (a JSON object in the C API, e.g. {"source": "imdsv2"}) are
appended to the message and attached to the LogRecord as ``mtlspop_fields`` (a dict).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Dict, Optional

from . import _ffi

logger = logging.getLogger("mtlspop")

_TO_PYTHON = {
    _ffi.LOG_DEBUG: logging.DEBUG,
    _ffi.LOG_INFO: logging.INFO,
    _ffi.LOG_WARN: logging.WARNING,
    _ffi.LOG_ERROR: logging.ERROR,
}
_NAMES = {
    _ffi.LOG_DEBUG: "debug",
    _ffi.LOG_INFO: "info",
    _ffi.LOG_WARN: "warn",
    _ffi.LOG_ERROR: "error",
    _ffi.LOG_OFF: "off",
}

_lock = threading.Lock()
_installed = _ffi.LOG_OFF  # the level the library's callback is set to


def _on_log(_user: Optional[int], level: int, message: Optional[bytes],
            fields: Optional[bytes]) -> None:
    # Runs on a library thread; must never raise into it.
    try:
        msg = message.decode("utf-8", "replace") if message else ""
        raw = fields.decode("utf-8", "replace") if fields else "{}"
        try:
            parsed: Dict[str, Any] = json.loads(raw)
        except ValueError:
            parsed = {}
        if parsed:
            logger.log(_TO_PYTHON.get(level, logging.ERROR), "%s %s", msg, raw,
                       extra={"mtlspop_fields": parsed})
        else:
            logger.log(_TO_PYTHON.get(level, logging.ERROR), "%s", msg,
                       extra={"mtlspop_fields": parsed})
    except BaseException:  # noqa: BLE001 - nothing may escape into the library's thread
        pass


# The callback object lives as long as the library (for ever): module teardown at interpreter
# exit must not free a function pointer the library might still hold.
CALLBACK = _ffi.LOG_FN(_on_log)
_ffi.keep_alive(CALLBACK)


def wanted_level() -> int:
    """The library level matching what the ``mtlspop`` logger lets through now."""
    if logger.disabled:
        return _ffi.LOG_OFF
    for c_level in (_ffi.LOG_DEBUG, _ffi.LOG_INFO, _ffi.LOG_WARN, _ffi.LOG_ERROR):
        if logger.isEnabledFor(_TO_PYTHON[c_level]):
            return c_level
    return _ffi.LOG_OFF


def sync() -> str:
    """Points the library's callback at the logger's current level; returns that level's name
    for a client's "log_level"."""
    global _installed
    want = wanted_level()
    with _lock:
        if want != _installed:
            if want == _ffi.LOG_OFF:
                _ffi.lib.mtlspop_set_log_callback(_ffi.LOG_FN(), None, _ffi.LOG_OFF)
            else:
                _ffi.lib.mtlspop_set_log_callback(CALLBACK, None, want)
            _installed = want
    return _NAMES[want]


def stop() -> None:
    """Turns the callback off and waits out a record being delivered (interpreter exit)."""
    global _installed
    with _lock:
        if _installed != _ffi.LOG_OFF:
            _ffi.lib.mtlspop_set_log_callback(_ffi.LOG_FN(), None, _ffi.LOG_OFF)
            _installed = _ffi.LOG_OFF


def after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
