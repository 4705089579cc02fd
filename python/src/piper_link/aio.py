"""``AsyncPiperClient``: the asyncio client, with the meaning of the TypeScript SDK's
``createPiperClient`` (packages/sdk/src/client.ts). ``get_secret`` resolves through the Link, waiting for the
person's approval when there is no grant yet, and falls back to environment variables with
pyper-sdk's rules; ``get_secrets`` asks for several with one approval card and partial results;
``call`` has the Link make an HTTPS request with secrets injected by name (the value never enters
this process); ``validate`` / ``metadata`` / ``permission_check`` answer without the value.

Timeouts are in seconds. Cancelling the task that awaits a method stops the wait (and a call's
upstream request); a cancelled ``get_secret`` never falls back to the environment.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
from datetime import datetime
from typing import Any, AsyncIterator, Callable, Dict, List, Mapping, Optional, Sequence, Union

from ._connection import Connection, InFlight
from .env import env_fallback_value, env_name_for
from .errors import (
    PiperBatchError,
    PiperConfigError,
    PiperError,
    PiperGrantNeededError,
    PiperSecretAcquisitionError,
    call_error_for,
    error_for,
)
from .models import (
    AgentGrant,
    CallResponse,
    GrantTerms,
    Headers,
    PermissionCheck,
    SecretMetadata,
    SecretResult,
    SecretsResult,
    Validation,
    from_ms,
)
from .protocol import MAX_RESOLVE_MANY, Frame

log = logging.getLogger("piper_link")

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
DEFAULT_APPROVAL_TIMEOUT = 120.0
"""How long ``get_secret`` waits for the person by default, in seconds (the Link's own default)."""
DEFAULT_CONNECT_TIMEOUT = 1.0
"""How long to try reaching the Link before ``link_not_running``, in seconds (the TypeScript SDK's)."""
_LATE_ANSWER_GRACE = 10.0
"""The Link answers ``timeout`` itself; this only guards against a Link that never answers (seconds)."""

OnPending = Callable[[Dict[str, Any]], object]
"""Called once when a request waits for the person: ``{"variable", "request_id"}`` (``get_secret``),
``{"variables", "request_ids", "batch_id"}`` (``get_secrets``) or ``{"request_id"}`` (``call``)."""

BodyArg = Union[str, bytes, None]


def _millis(seconds: float) -> int:
    return max(0, int(round(seconds * 1000)))


class AsyncCallStream:
    """A streamed call's answer: ``status_code``, ``headers`` and ``url`` at once; the body through
    ``aiter_bytes()`` as the upstream sends it; ``redacted`` and ``duration_ms`` once it has ended.
    ``aclose()`` (or leaving ``async with``) before the end cancels the upstream request."""

    def __init__(self, client: "AsyncPiperClient", request_id: str, flight: InFlight, head: Frame) -> None:
        self._client = client
        self._id = request_id
        self._flight = flight
        self.status_code: int = head["status"]
        self.reason_phrase: str = head["statusText"]
        self.headers = Headers([(str(k), str(v)) for k, v in head["headers"]])
        self.url: str = head["url"]
        self.redacted: bool = bool(head["redacted"])
        self.duration_ms: Optional[float] = None
        self._ended = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body's chunks (redacted) as they arrive; raises PiperError when the call fails midway."""
        try:
            while not self._ended:
                message = await self._flight.queue.get()
                if isinstance(message, PiperError):
                    self._ended = True
                    raise message
                if message["type"] == "call.chunk":
                    yield base64.b64decode(message["data"])
                elif message["type"] == "call.end":
                    self._ended = True
                    self.redacted = self.redacted or bool(message["redacted"])
                    self.duration_ms = float(message["durationMs"])
                elif message["type"] == "error":
                    self._ended = True
                    raise call_error_for(self.url, message["code"], message["message"], bool(message["retryable"]))
        finally:
            if self._ended:
                self._client._conn.done(self._id)

    async def aread(self) -> bytes:
        """The whole (rest of the) body."""
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def aclose(self) -> None:
        """Stops the call when its body has not ended (``cancel``: the Link aborts the upstream request)."""
        if not self._ended:
            self._ended = True
            self._client._conn.done(self._id)
            await self._client._conn.send({"type": "cancel", "id": self._id})

    async def __aenter__(self) -> "AsyncCallStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncPiperClient:
    """The asyncio client (see the module docstring). One persistent connection, opened on first use.

    Options (the TypeScript SDK's, in Python spelling): ``client_id`` (required: 1-128 letters,
    digits or ``. _ : @ -``; the person sees it in every prompt), ``name`` (display name),
    ``link_url`` (default: discovered), ``instance_id`` (``get_instance_id`` answers it without the
    Link), ``use_link`` (True), ``fallback_to_env`` (True), ``env_prefix`` (""), ``env_map``
    (``{variable: ENV_NAME}``, checked first), ``approval_timeout`` (120 s), ``connect_timeout``
    (1 s), ``env`` (default ``os.environ``, for discovery and fallback).

    Raises PiperConfigError ``invalid_client_id`` for a bad ``client_id``.
    """

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
        if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
            raise PiperConfigError("invalid_client_id", "clientId is required: 1-128 letters, digits or . _ : @ -.")
        self.client_id = client_id
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._instance_id = instance_id
        self._use_link = use_link
        self._fallback_to_env = fallback_to_env
        self._env_prefix = env_prefix
        self._env_map = dict(env_map or {})
        self._approval_timeout = approval_timeout
        self._conn = Connection(client_id=client_id, name=name, link_url=link_url, env=self._env, connect_timeout=connect_timeout)

    async def __aenter__(self) -> "AsyncPiperClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Ends the connection; calls in flight fail with ``closed``, and so do later ones."""
        await self._conn.close()

    async def get_instance_id(self) -> str:
        """This machine's instance ID (pyper-sdk's context). Raises PiperLinkNeededError when the Link cannot say."""
        if self._instance_id:
            return self._instance_id
        await self._conn.ensure_ready()
        return self._conn.instance_id or ""

    # -- secrets ---------------------------------------------------------------------------------

    def _sources_check(self) -> None:
        if not self._use_link and not self._fallback_to_env:
            raise PiperConfigError("no_sources", "Both use_link and fallback_to_env are off: there is nowhere to get secrets from.")

    async def get_secret(
        self,
        variable: str,
        *,
        reason: Optional[str] = None,
        wait: bool = True,
        timeout: Optional[float] = None,
        on_pending: Optional[OnPending] = None,
    ) -> SecretResult:
        """The value of ``variable``: from the Link (waiting up to ``timeout`` s for approval when
        ``wait``), else from the environment (pyper-sdk's names). Raises PiperConfigError
        (``invalid_variable``, ``no_sources``), PiperSecretAcquisitionError when every source failed
        (``attempts`` says what each said), or with ``fallback_to_env=False`` the Link's error itself
        (PiperForbiddenError ``denied``, PiperGrantNeededError ``grant_needed``/``timeout``,
        PiperLinkNeededError…). ``closed`` is raised as is (no fallback)."""
        if not isinstance(variable, str) or not variable.strip():
            raise PiperConfigError("invalid_variable", "getSecret needs a variable name.")
        self._sources_check()
        piper_error: Optional[BaseException] = None
        if self._use_link:
            try:
                return await self._resolve(variable, reason, wait, timeout, on_pending)
            except PiperError as err:
                if err.code == "closed":
                    raise
                piper_error = err
                log.info("piper: %s not available from Piper Link: %s (%s)", variable, type(err).__name__, err.code)
        entry = self._env_entry(variable, piper_error)
        if isinstance(entry, PiperError):
            raise entry
        return entry

    def _env_entry(self, variable: str, piper_error: Optional[BaseException]) -> Union[SecretResult, PiperError]:
        """The environment's answer for ``variable`` after the Link's ``piper_error`` (or none)."""
        attempts: Dict[str, str] = {}
        if piper_error is not None:
            attempts["piper"] = f"{type(piper_error).__name__} ({piper_error.code}): {piper_error.message}" if isinstance(piper_error, PiperError) else str(piper_error)
        if self._fallback_to_env:
            name = env_name_for(variable, self._env_prefix, self._env_map)
            value = env_fallback_value(self._env, name)
            if value is not None:
                return SecretResult(variable=variable, value=value, source="environment_variable")
            attempts["environment_variable"] = f"{name} is not set"
        if not self._fallback_to_env and isinstance(piper_error, PiperError):
            return piper_error
        return PiperSecretAcquisitionError(variable, attempts, piper_error)

    async def _resolve(self, variable: str, reason: Optional[str], wait: bool, timeout: Optional[float], on_pending: Optional[OnPending]) -> SecretResult:
        await self._conn.ensure_ready()
        seconds = self._approval_timeout if timeout is None else timeout
        request_id = self._conn.new_id("r")
        frame: Frame = {"type": "resolve", "id": request_id, "variable": variable, "wait": wait, "timeoutMs": _millis(seconds)}
        if reason:
            frame["reason"] = reason
        flight = await self._conn.open(request_id, frame, resend=True)
        pending_id: Optional[str] = None
        try:
            async with _deadline(seconds + _LATE_ANSWER_GRACE) as expired:
                while True:
                    message = await expired.wait(flight.queue.get())
                    if message is None:
                        raise PiperGrantNeededError("timeout", variable, pending_id, f"No answer for {variable} within {seconds:g} s.")
                    if isinstance(message, PiperError):
                        raise message
                    kind = message["type"]
                    if kind == "pending":
                        if pending_id is None and on_pending is not None:
                            on_pending({"variable": variable, "request_id": message["requestId"]})
                        pending_id = message["requestId"]
                        if not wait:
                            raise PiperGrantNeededError("grant_needed", variable, pending_id, f"{variable} needs approval in Piper Link (request {pending_id}).")
                    elif kind == "secret":
                        return SecretResult(variable=variable, value=message["value"], source="piper", grant_id=message["grantId"], expires_at=message["expiresAt"])
                    elif kind == "error":
                        raise error_for(variable, message["code"], message["message"], bool(message["retryable"]), pending_id)
        finally:
            self._conn.done(request_id)

    async def get_secrets(
        self,
        variables: Sequence[str],
        *,
        reason: Optional[str] = None,
        wait: bool = True,
        timeout: Optional[float] = None,
        on_pending: Optional[OnPending] = None,
    ) -> SecretsResult:
        """1-32 variables in one ask: ONE approval card for all that lack a grant. Partial results
        (SecFlow's ``resolve_many_partial``): ``resolved`` and ``failures`` by the names given, each
        failure a PiperError with ``code`` and ``retryable``. Each variable the Link could not give
        falls back to the environment like ``get_secret``. Raises only for bad arguments
        (``invalid_variable``, ``no_sources``) or a closed client."""
        names = list(variables) if not isinstance(variables, str) else []
        if not names or len(names) > MAX_RESOLVE_MANY or any(not isinstance(v, str) or not v.strip() for v in names):
            raise PiperConfigError("invalid_variable", "getSecrets needs 1-32 non-empty variable names.")
        self._sources_check()
        distinct = list(dict.fromkeys(names))
        from_link: Dict[str, Union[SecretResult, PiperError]] = {}
        link_error: Optional[PiperError] = None
        if self._use_link:
            try:
                from_link = await self._resolve_many(distinct, reason, wait, timeout, on_pending)
            except PiperError as err:
                if err.code == "closed":
                    raise
                link_error = err
                log.info("piper: %s not available from Piper Link: %s", ", ".join(distinct), err.code)
        resolved: Dict[str, SecretResult] = {}
        failures: Dict[str, PiperError] = {}
        for name in distinct:
            got = from_link.get(name)
            entry = got if isinstance(got, SecretResult) else self._env_entry(name, got if got is not None else link_error)
            if isinstance(entry, SecretResult):
                resolved[name] = entry
            else:
                failures[name] = entry
        return SecretsResult(resolved=resolved, failures=failures)

    async def resolve_many(
        self,
        variables: Sequence[str],
        *,
        reason: Optional[str] = None,
        wait: bool = True,
        timeout: Optional[float] = None,
        on_pending: Optional[OnPending] = None,
    ) -> Dict[str, SecretResult]:
        """All or nothing: every variable's result (one approval card), or PiperBatchError
        (``batch_incomplete``, ``failures`` by name) and no value at all."""
        got = await self.get_secrets(variables, reason=reason, wait=wait, timeout=timeout, on_pending=on_pending)
        if got.failures:
            raise PiperBatchError(got.failures)
        return got.resolved

    async def _resolve_many(self, variables: List[str], reason: Optional[str], wait: bool, timeout: Optional[float], on_pending: Optional[OnPending]) -> Dict[str, Union[SecretResult, PiperError]]:
        await self._conn.ensure_ready()
        seconds = self._approval_timeout if timeout is None else timeout
        request_id = self._conn.new_id("m")
        frame: Frame = {"type": "resolveMany", "id": request_id, "variables": variables, "wait": wait, "timeoutMs": _millis(seconds)}
        if reason:
            frame["reason"] = reason
        flight = await self._conn.open(request_id, frame, resend=True)
        request_ids: List[str] = []
        try:
            async with _deadline(seconds + _LATE_ANSWER_GRACE) as expired:
                while True:
                    message = await expired.wait(flight.queue.get())
                    if message is None:
                        first = request_ids[0] if request_ids else None
                        return {v: PiperGrantNeededError("timeout", v, first, f"No answer for {v} within {seconds:g} s.") for v in variables}
                    if isinstance(message, PiperError):
                        raise message
                    kind = message["type"]
                    if kind == "pending":
                        ids = list(message.get("requestIds") or [message["requestId"]])
                        if not request_ids and on_pending is not None:
                            on_pending({"variables": list(variables), "request_ids": ids, "batch_id": message.get("batchId")})
                        request_ids = ids
                    elif kind == "secrets":
                        results: Mapping[str, Any] = message["results"]
                        out: Dict[str, Union[SecretResult, PiperError]] = {}
                        first = request_ids[0] if request_ids else None
                        for v in variables:
                            r = results.get(v)
                            if not isinstance(r, dict):
                                out[v] = PiperError("internal_error", f"Piper Link sent no answer for {v}.")
                            elif "value" in r:
                                out[v] = SecretResult(variable=v, value=r["value"], source="piper", grant_id=r.get("grantId"), expires_at=r.get("expiresAt"))
                            else:
                                e = r.get("error") or {}
                                out[v] = error_for(v, str(e.get("code")), str(e.get("message")), bool(e.get("retryable")), first)
                        return out
                    elif kind == "error":
                        raise error_for(", ".join(variables), message["code"], message["message"], bool(message["retryable"]), request_ids[0] if request_ids else None)
        finally:
            self._conn.done(request_id)

    # -- checks without the value ----------------------------------------------------------------

    async def _ask(self, prefix: str, frame: Frame, answer_type: str, subject: str) -> Frame:
        await self._conn.ensure_ready()
        request_id = self._conn.new_id(prefix)
        frame["id"] = request_id
        flight = await self._conn.open(request_id, frame, resend=True)
        try:
            while True:
                message = await flight.queue.get()
                if isinstance(message, PiperError):
                    raise message
                if message["type"] == answer_type:
                    return message
                if message["type"] == "error":
                    raise error_for(subject, message["code"], message["message"], bool(message["retryable"]))
        finally:
            self._conn.done(request_id)

    async def validate(self, variable: str) -> Validation:
        """Is ``variable`` well formed, and is one of the person's secrets mapped to it? Never a value, never a prompt."""
        m = await self._ask("v", {"type": "validate", "variable": variable}, "validate.result", variable)
        return Validation(variable=m["variable"], normalized=m["normalized"], well_formed=bool(m["wellFormed"]), problem=m["problem"], mapped=bool(m["mapped"]), secret_name=m["secretName"])

    async def metadata(self, variable: str) -> SecretMetadata:
        """The mapped secret's name, hosts and dates; PiperError ``secret_not_found`` when none is mapped. Never the value."""
        m = await self._ask("d", {"type": "metadata", "variable": variable}, "metadata.result", variable)
        s = m["secret"]
        created, updated = _iso(s["createdAt"]), _iso(s["updatedAt"])
        return SecretMetadata(variable=m["variable"], name=s["name"], hosts=s["hosts"], created_at=created, updated_at=updated)

    async def permission_check(self, variable: str) -> PermissionCheck:
        """Does this program hold a live grant for ``variable`` (as ``get_secret`` would use it), and on what terms?"""
        m = await self._ask("p", {"type": "permissionCheck", "variable": variable}, "permissionCheck.result", variable)
        g = m["grant"]
        terms = (
            None
            if g is None
            else GrantTerms(grant_id=g["grantId"], secret_name=g["secretName"], binding=g["binding"], scope=g["scope"], mode=g["mode"], policy=g["policy"], expires_at=from_ms(g["expiresAt"]))
        )
        return PermissionCheck(variable=m["variable"], granted=bool(m["granted"]), grant=terms)

    async def list_grants(self) -> List[AgentGrant]:
        """This agent's live grants (names and modes, never a value)."""
        m = await self._ask("g", {"type": "grants"}, "grants.list", "grants")
        return [AgentGrant(variable=g["variable"], mode=g["mode"], expires_at=from_ms(g["expiresAt"])) for g in m["grants"]]

    # -- calls -----------------------------------------------------------------------------------

    async def _start_call(
        self,
        url: str,
        method: str,
        bearer: Optional[str],
        basic: Optional[str],
        header: Optional[Mapping[str, str]],
        query: Optional[Mapping[str, str]],
        body_field: Optional[Mapping[str, str]],
        form_field: Optional[Mapping[str, str]],
        headers: Optional[Mapping[str, str]],
        body: BodyArg,
        json_body: Any,
        reason: Optional[str],
        wait: bool,
        ask_if_refused: bool,
        approval_timeout: Optional[float],
        timeout: Optional[float],
        on_pending: Optional[OnPending],
    ) -> "tuple[str, InFlight, Frame]":
        auth: Dict[str, Any] = {}
        for key, value in (("bearer", bearer), ("basic", basic)):
            if value is not None:
                auth[key] = value
        for key, mapping in (("header", header), ("query", query), ("jsonField", body_field), ("formField", form_field)):
            if mapping:
                auth[key] = dict(mapping)
        if not auth:
            raise PiperConfigError("invalid_variable", "call needs at least one secret to inject: bearer=, basic=, header=, query=, body_field= or form_field=.")
        out_headers = {str(k): str(v) for k, v in (headers or {}).items()}
        for k in out_headers:
            if not _HEADER_NAME.match(k):
                raise PiperConfigError("bad_request", f"{k!r} is not a header name.")
        if json_body is not None:
            if body is not None:
                raise PiperConfigError("bad_request", "Give body= or json=, not both.")
            body = json.dumps(json_body)
            if not any(k.lower() == "content-type" for k in out_headers):
                out_headers["content-type"] = "application/json"
        await self._conn.ensure_ready()
        request_id = self._conn.new_id("c")
        frame: Frame = {"type": "call", "id": request_id, "method": method.upper(), "url": url, "auth": auth, "wait": wait}
        if out_headers:
            frame["headers"] = out_headers
        if isinstance(body, str):
            frame["body"] = {"text": body}
        elif isinstance(body, (bytes, bytearray)):
            frame["body"] = {"base64": base64.b64encode(bytes(body)).decode("ascii")}
        if ask_if_refused:
            frame["askIfRefused"] = True
        if reason:
            frame["reason"] = reason
        if approval_timeout is not None:
            frame["approvalTimeoutMs"] = _millis(approval_timeout)
        if timeout is not None:
            frame["timeoutMs"] = max(1, _millis(timeout))
        flight = await self._conn.open(request_id, frame, resend=False)
        pending_id: Optional[str] = None
        try:
            while True:
                message = await flight.queue.get()
                if isinstance(message, PiperError):
                    raise message
                kind = message["type"]
                if kind == "pending":
                    if pending_id is None and on_pending is not None:
                        on_pending({"request_id": message["requestId"]})
                    pending_id = message["requestId"]
                elif kind == "call.head":
                    return request_id, flight, message
                elif kind == "error":
                    raise call_error_for(url, message["code"], message["message"], bool(message["retryable"]))
        except BaseException:
            self._conn.done(request_id)
            # Harmless after the Link's own error; stops the call when the caller gave up waiting.
            await self._conn.send({"type": "cancel", "id": request_id})
            raise

    async def call(
        self,
        url: str,
        method: str = "GET",
        *,
        bearer: Optional[str] = None,
        basic: Optional[str] = None,
        header: Optional[Mapping[str, str]] = None,
        query: Optional[Mapping[str, str]] = None,
        body_field: Optional[Mapping[str, str]] = None,
        form_field: Optional[Mapping[str, str]] = None,
        headers: Optional[Mapping[str, str]] = None,
        body: BodyArg = None,
        json: Any = None,
        reason: Optional[str] = None,
        wait: bool = True,
        ask_if_refused: bool = False,
        approval_timeout: Optional[float] = None,
        timeout: Optional[float] = None,
        on_pending: Optional[OnPending] = None,
    ) -> CallResponse:
        """Has the Link make an HTTPS request with secrets injected by name, and returns the whole
        answer (redacted). Injection styles combine: ``bearer="NAME"``, ``basic="NAME"`` (stored as
        ``user:password``), ``header={"X-Api-Key": "NAME"}``, ``query={"key": "NAME"}``,
        ``body_field={"auth.token": "NAME"}`` (JSON body dot path), ``form_field={"token": "NAME"}``.
        Raises PiperError (``destination_not_allowed``, ``policy_violation``, ``denied``,
        ``upstream_unavailable`` (retryable), ``timeout``, ``bad_request``…). For a streamed body use
        ``stream_call``."""
        request_id, flight, head = await self._start_call(
            url, method, bearer, basic, header, query, body_field, form_field, headers, body, json, reason, wait, ask_if_refused, approval_timeout, timeout, on_pending
        )
        stream = AsyncCallStream(self, request_id, flight, head)
        try:
            data = await stream.aread()
        finally:
            await stream.aclose()
        return CallResponse(
            status_code=stream.status_code,
            reason_phrase=stream.reason_phrase,
            headers=stream.headers,
            body=data,
            redacted=stream.redacted,
            duration_ms=stream.duration_ms if stream.duration_ms is not None else 0.0,
            url=stream.url,
        )

    async def stream_call(
        self,
        url: str,
        method: str = "GET",
        *,
        bearer: Optional[str] = None,
        basic: Optional[str] = None,
        header: Optional[Mapping[str, str]] = None,
        query: Optional[Mapping[str, str]] = None,
        body_field: Optional[Mapping[str, str]] = None,
        form_field: Optional[Mapping[str, str]] = None,
        headers: Optional[Mapping[str, str]] = None,
        body: BodyArg = None,
        json: Any = None,
        reason: Optional[str] = None,
        wait: bool = True,
        ask_if_refused: bool = False,
        approval_timeout: Optional[float] = None,
        timeout: Optional[float] = None,
        on_pending: Optional[OnPending] = None,
    ) -> AsyncCallStream:
        """Like ``call`` (same arguments), returning when the upstream's headers arrive; iterate
        ``aiter_bytes()`` for the body as it streams (e.g. server-sent events)."""
        request_id, flight, head = await self._start_call(
            url, method, bearer, basic, header, query, body_field, form_field, headers, body, json, reason, wait, ask_if_refused, approval_timeout, timeout, on_pending
        )
        return AsyncCallStream(self, request_id, flight, head)

    # -- child processes -------------------------------------------------------------------------

    async def secret_env(self, secrets: Union[Sequence[str], Mapping[str, str]], *, reason: Optional[str] = None, base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        """A child environment: ``base`` (default ``os.environ``) plus each secret under its name
        (a list: the variable's own name; a mapping: ``{ENV_NAME: variable}``). All or nothing
        (``resolve_many``, one approval card); raises PiperBatchError."""
        wanted = dict(secrets) if isinstance(secrets, Mapping) else {v: v for v in secrets}
        got = await self.resolve_many(list(dict.fromkeys(wanted.values())), reason=reason)
        env = dict(os.environ if base is None else base)
        for env_name, variable in wanted.items():
            env[env_name] = got[variable].value
        return env

    async def spawn(self, cmd: Sequence[str], *, secrets: Union[Sequence[str], Mapping[str, str]], reason: Optional[str] = None, env: Optional[Mapping[str, str]] = None, **kwargs: Any) -> "asyncio.subprocess.Process":
        """Starts ``cmd`` (no shell) with the secrets in its environment only (see ``secret_env``); ``kwargs`` go to ``create_subprocess_exec``."""
        child_env = await self.secret_env(secrets, reason=reason, base=env)
        return await asyncio.create_subprocess_exec(*cmd, env=child_env, **kwargs)

    async def run(self, cmd: Sequence[str], *, secrets: Union[Sequence[str], Mapping[str, str]], reason: Optional[str] = None, env: Optional[Mapping[str, str]] = None, **kwargs: Any) -> int:
        """Runs ``cmd`` to its end with the secrets in its environment only; returns its exit code."""
        process = await self.spawn(cmd, secrets=secrets, reason=reason, env=env, **kwargs)
        return await process.wait()


class _Expiry:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.deadline = 0.0

    async def wait(self, awaitable: "Any") -> Any:
        """The awaitable's result, or None once the deadline passed."""
        left = self.deadline - self.loop.time()
        try:
            return await asyncio.wait_for(awaitable, max(0.0, left))
        except asyncio.TimeoutError:
            return None


class _deadline:
    """``async with _deadline(seconds) as d: await d.wait(x)``: waits that give up together at one deadline."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    async def __aenter__(self) -> _Expiry:
        expiry = _Expiry()
        expiry.deadline = expiry.loop.time() + self._seconds
        return expiry

    async def __aexit__(self, *exc: object) -> None:
        return None


def _iso(text: str) -> datetime:
    """An ISO 8601 time as the Link writes it (``…Z``); Python 3.10's parser wants ``+00:00``."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
