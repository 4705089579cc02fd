"""A cached provider with SecFlow's rules: a value is fetched on a miss, after ``ttl_seconds`` (or
when its grant ends, whichever is first) and after ``invalidate()``; when a refresh fails the
provider fails closed (the error is raised, the old value dropped) except for retryable
request-level failures — the Link not answering, its authority unreachable, rate limiting — during
which a value expired less than ``stale_grace_seconds`` ago is still served. A denial, a revoked or
ended grant, a locked Link or a missing secret is never papered over with a stale value.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Dict, Optional, Protocol

from .aio import AsyncPiperClient
from .errors import PiperError, PiperSecretAcquisitionError
from .models import SecretResult

STALE_OK_CODES = frozenset({"link_not_running", "authority_unavailable", "rate_limited"})
"""Request-level failures during which a recently expired value may be served (SecFlow's "retryable request-level")."""


def stale_allowed(err: PiperError) -> bool:
    """True when ``err`` is a request-level failure (see ``STALE_OK_CODES``), directly or as the Link's part of ``secret_unavailable``."""
    if err.code in STALE_OK_CODES:
        return True
    cause = err.__cause__
    return isinstance(err, PiperSecretAcquisitionError) and isinstance(cause, PiperError) and cause.code in STALE_OK_CODES


class SecretSource(Protocol):
    """What the provider reads from: ``PiperClient`` or ``testing.MockPiperLink``."""

    def get_secret(self, variable: str, *, reason: Optional[str] = None) -> SecretResult: ...


@dataclass
class _Entry:
    value: str = field(repr=False)
    expires: float


def _expiry(result: SecretResult, ttl: float, now: float) -> float:
    until = now + ttl
    if result.expires_at is not None:
        grant_end = datetime.fromisoformat(result.expires_at.replace("Z", "+00:00")).timestamp()
        until = min(until, now + (grant_end - time.time()))
    return until


class SecretProvider:
    """``provider.get("NAME")`` -> the value, cached per variable (thread-safe). ``clock`` (seconds, monotonic) is for tests."""

    def __init__(self, client: SecretSource, *, ttl_seconds: float = 300.0, stale_grace_seconds: float = 0.0, reason: Optional[str] = None, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_seconds < 0 or stale_grace_seconds < 0:
            raise ValueError("ttl_seconds and stale_grace_seconds are seconds, 0 or more.")
        self._client = client
        self._ttl = ttl_seconds
        self._grace = stale_grace_seconds
        self._reason = reason
        self._clock = clock
        self._entries: Dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, variable: str) -> str:
        """The cached value while fresh, else a fresh one; raises the client's PiperError when the refresh fails (see the module docstring)."""
        with self._lock:
            now = self._clock()
            entry = self._entries.get(variable)
            if entry is not None and now < entry.expires:
                return entry.value
            try:
                result = self._client.get_secret(variable, reason=self._reason)
            except PiperError as err:
                if entry is not None and stale_allowed(err) and now < entry.expires + self._grace:
                    return entry.value
                self._entries.pop(variable, None)
                raise
            self._entries[variable] = _Entry(result.value, _expiry(result, self._ttl, now))
            return result.value

    def invalidate(self, variable: Optional[str] = None) -> None:
        """Forgets ``variable`` (or everything): the next ``get`` asks again."""
        with self._lock:
            if variable is None:
                self._entries.clear()
            else:
                self._entries.pop(variable, None)


class AsyncSecretProvider:
    """``await provider.get("NAME")``: ``SecretProvider`` for ``AsyncPiperClient`` (one refresh per variable at a time)."""

    def __init__(self, client: AsyncPiperClient, *, ttl_seconds: float = 300.0, stale_grace_seconds: float = 0.0, reason: Optional[str] = None, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_seconds < 0 or stale_grace_seconds < 0:
            raise ValueError("ttl_seconds and stale_grace_seconds are seconds, 0 or more.")
        self._client = client
        self._ttl = ttl_seconds
        self._grace = stale_grace_seconds
        self._reason = reason
        self._clock = clock
        self._entries: Dict[str, _Entry] = {}
        self._locks: Dict[str, asyncio.Lock] = {}

    async def get(self, variable: str) -> str:
        """See ``SecretProvider.get``."""
        lock = self._locks.setdefault(variable, asyncio.Lock())
        async with lock:
            now = self._clock()
            entry = self._entries.get(variable)
            if entry is not None and now < entry.expires:
                return entry.value
            try:
                result = await self._client.get_secret(variable, reason=self._reason)
            except PiperError as err:
                if entry is not None and stale_allowed(err) and now < entry.expires + self._grace:
                    return entry.value
                self._entries.pop(variable, None)
                raise
            self._entries[variable] = _Entry(result.value, _expiry(result, self._ttl, now))
            return result.value

    def invalidate(self, variable: Optional[str] = None) -> None:
        """See ``SecretProvider.invalidate``."""
        if variable is None:
            self._entries.clear()
        else:
            self._entries.pop(variable, None)
