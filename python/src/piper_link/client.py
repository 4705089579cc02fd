"""``PiperClient``: the synchronous client, safe to share across threads. Debian's websockets 10.4
has no sync client, so this one runs an ``AsyncPiperClient`` on an event loop of its own in a
background (daemon) thread, started on first use; every method hands its coroutine to that loop
and waits for the result. All connection state lives on that one loop, so threads never touch it
directly; many threads may wait at once (each request has its own id and queue).

``on_pending`` callbacks run on the background thread: keep them short (print, log, notify).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
import threading
from typing import Any, Awaitable, Dict, Iterator, List, Mapping, Optional, Sequence, TypeVar, Union

from .aio import DEFAULT_APPROVAL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, AsyncCallStream, AsyncPiperClient, BodyArg, OnPending
from .errors import PiperError
from .models import AgentGrant, CallResponse, Headers, PermissionCheck, SecretMetadata, SecretResult, SecretsResult, Validation

T = TypeVar("T")


class CallStream:
    """A streamed call's answer (sync): ``status_code``, ``headers``, ``url`` at once; ``iter_bytes()``
    for the body; ``redacted`` / ``duration_ms`` once it ended; ``close()`` (or ``with``) cancels."""

    def __init__(self, client: "PiperClient", inner: AsyncCallStream) -> None:
        self._client = client
        self._inner = inner
        self.status_code: int = inner.status_code
        self.reason_phrase: str = inner.reason_phrase
        self.headers: Headers = inner.headers
        self.url: str = inner.url

    @property
    def redacted(self) -> bool:
        """True when any echo of an injected value was redacted (final once the body ended)."""
        return self._inner.redacted

    @property
    def duration_ms(self) -> Optional[float]:
        """The Link's time for the whole exchange, once the body ended."""
        return self._inner.duration_ms

    def iter_bytes(self) -> Iterator[bytes]:
        """The body's chunks as they arrive."""
        chunks = self._inner.aiter_bytes()
        while True:
            try:
                yield self._client._run(chunks.__anext__())
            except StopAsyncIteration:
                return

    def read(self) -> bytes:
        """The whole (rest of the) body."""
        return b"".join(self.iter_bytes())

    def close(self) -> None:
        """Cancels the call when its body has not ended."""
        self._client._run(self._inner.aclose())

    def __enter__(self) -> "CallStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PiperClient:
    """The sync client: the same options and methods as ``AsyncPiperClient``, without ``await``.
    Plus ``run`` / ``spawn`` on ``subprocess``. Use one per process and share it between threads;
    ``close()`` (or ``with``) ends the connection and the background thread."""

    def __init__(
        self,
        client_id: str,
        *,
        name: Optional[str] = None,
        link_url: Optional[str] = None,
        instance_id: Optional[str] = None,
        use_link: bool = True,
        fallback_to_env: bool = True,
        env_prefix: str = "",
        env_map: Optional[Mapping[str, str]] = None,
        approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        env: Optional[Mapping[str, str]] = None,
    ) -> None:
        # Validates the options now (invalid_client_id), in the caller's thread.
        self._aio = AsyncPiperClient(
            client_id,
            name=name,
            link_url=link_url,
            instance_id=instance_id,
            use_link=use_link,
            fallback_to_env=fallback_to_env,
            env_prefix=env_prefix,
            env_map=env_map,
            approval_timeout=approval_timeout,
            connect_timeout=connect_timeout,
            env=env,
        )
        self.client_id = client_id
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise PiperError("closed", "This Piper client was closed.")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="piper-link", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _run(self, awaitable: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await awaitable

        coroutine = wrapped()
        try:
            loop = self._ensure_loop()
        except PiperError:
            coroutine.close()
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result()
        except (KeyboardInterrupt, concurrent.futures.CancelledError):
            # The caller stopped waiting: stop the request on the loop too (no environment fallback).
            future.cancel()
            raise

    def __enter__(self) -> "PiperClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Ends the connection and the background thread; later calls raise PiperError ``closed``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._aio.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def get_instance_id(self) -> str:
        """See ``AsyncPiperClient.get_instance_id``."""
        return self._run(self._aio.get_instance_id())

    def get_secret(self, variable: str, *, reason: Optional[str] = None, wait: bool = True, timeout: Optional[float] = None, on_pending: Optional[OnPending] = None) -> SecretResult:
        """See ``AsyncPiperClient.get_secret``."""
        return self._run(self._aio.get_secret(variable, reason=reason, wait=wait, timeout=timeout, on_pending=on_pending))

    def get_secrets(self, variables: Sequence[str], *, reason: Optional[str] = None, wait: bool = True, timeout: Optional[float] = None, on_pending: Optional[OnPending] = None) -> SecretsResult:
        """See ``AsyncPiperClient.get_secrets``."""
        return self._run(self._aio.get_secrets(variables, reason=reason, wait=wait, timeout=timeout, on_pending=on_pending))

    def resolve_many(self, variables: Sequence[str], *, reason: Optional[str] = None, wait: bool = True, timeout: Optional[float] = None, on_pending: Optional[OnPending] = None) -> Dict[str, SecretResult]:
        """See ``AsyncPiperClient.resolve_many``."""
        return self._run(self._aio.resolve_many(variables, reason=reason, wait=wait, timeout=timeout, on_pending=on_pending))

    def validate(self, variable: str) -> Validation:
        """See ``AsyncPiperClient.validate``."""
        return self._run(self._aio.validate(variable))

    def metadata(self, variable: str) -> SecretMetadata:
        """See ``AsyncPiperClient.metadata``."""
        return self._run(self._aio.metadata(variable))

    def permission_check(self, variable: str) -> PermissionCheck:
        """See ``AsyncPiperClient.permission_check``."""
        return self._run(self._aio.permission_check(variable))

    def list_grants(self) -> List[AgentGrant]:
        """See ``AsyncPiperClient.list_grants``."""
        return self._run(self._aio.list_grants())

    def call(self, url: str, method: str = "GET", **kwargs: Any) -> CallResponse:
        """See ``AsyncPiperClient.call`` (the same keyword arguments)."""
        return self._run(self._aio.call(url, method, **kwargs))

    def stream_call(self, url: str, method: str = "GET", **kwargs: Any) -> CallStream:
        """See ``AsyncPiperClient.stream_call``; iterate ``iter_bytes()``."""
        return CallStream(self, self._run(self._aio.stream_call(url, method, **kwargs)))

    def secret_env(self, secrets: Union[Sequence[str], Mapping[str, str]], *, reason: Optional[str] = None, base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        """See ``AsyncPiperClient.secret_env``."""
        return self._run(self._aio.secret_env(secrets, reason=reason, base=base))

    def run(self, cmd: Sequence[str], *, secrets: Union[Sequence[str], Mapping[str, str]], reason: Optional[str] = None, env: Optional[Mapping[str, str]] = None, **kwargs: Any) -> "subprocess.CompletedProcess[Any]":
        """``subprocess.run(cmd, **kwargs)`` (no shell) with the secrets in the child's environment only (all or nothing)."""
        return subprocess.run(list(cmd), env=self.secret_env(secrets, reason=reason, base=env), **kwargs)

    def spawn(self, cmd: Sequence[str], *, secrets: Union[Sequence[str], Mapping[str, str]], reason: Optional[str] = None, env: Optional[Mapping[str, str]] = None, **kwargs: Any) -> "subprocess.Popen[Any]":
        """``subprocess.Popen(cmd, **kwargs)`` (no shell) with the secrets in the child's environment only."""
        return subprocess.Popen(list(cmd), env=self.secret_env(secrets, reason=reason, base=env), **kwargs)


__all__ = ["CallStream", "PiperClient", "BodyArg"]
