"""The one WebSocket to the Link, owned by one asyncio event loop: ``hello`` once, ``context``
pushes tracked, frames routed to the request that waits for them (by ``id``), and reconnect with
backoff. Requests that are safe to repeat (``resolve``, ``resolveMany``, the checks) are sent again
after a reconnect and keep waiting (the Link joins them to the same pending request); calls are not
(a request may not be safe to repeat): they fail with ``link_not_running``.

Not thread-safe by itself: every method runs on the loop that created the connection. The sync
client keeps it on a loop of its own (client.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Union

import websockets.exceptions
from websockets.legacy.client import WebSocketClientProtocol, connect
from websockets.typing import Subprotocol

from ._version import VERSION
from .discovery import discover_link_url
from .errors import (
    LINK_NOT_RUNNING,
    NOT_SIGNED_IN_MESSAGE,
    PiperError,
    PiperLinkLockedError,
    PiperLinkNeededError,
)
from .protocol import AGENT_SUBPROTOCOL, PROTOCOL_VERSION, Frame, check_link_message


#: Seconds the Link may take to answer the hello once connected (the TypeScript SDK's ``helloTimeoutMs``).
HELLO_TIMEOUT = 10.0
log = logging.getLogger("piper_link")

Delivery = Union[Frame, PiperError]
"""What an in-flight request receives: a frame of the Link's, or the SDK-side error that ends it."""


@dataclass
class InFlight:
    """One request waiting for frames. ``frame`` is re-sent after a reconnect; None: never re-sent."""

    frame: Optional[str]
    queue: "asyncio.Queue[Delivery]" = field(default_factory=asyncio.Queue)


def _backoff(attempt: int) -> float:
    """Seconds before reconnect attempt ``attempt``: 0.25 s doubling to 5 s, with full jitter (src/shared/backoff.ts)."""
    return random.uniform(0, min(5.0, 0.25 * (2**attempt)))


class Connection:
    """The agent side of the protocol's connection (see the module docstring)."""

    def __init__(
        self,
        *,
        client_id: str,
        name: Optional[str],
        link_url: Optional[str],
        env: Mapping[str, str],
        connect_timeout: float,
    ) -> None:
        self._client_id = client_id
        self._name = name
        self._link_url = link_url
        self._env = env
        self._connect_timeout = connect_timeout
        self._ws: Optional[WebSocketClientProtocol] = None
        self._connecting: Optional["asyncio.Future[None]"] = None
        self._reader: Optional["asyncio.Task[None]"] = None
        self._reconnect: Optional["asyncio.Task[None]"] = None
        self._in_flight: Dict[str, InFlight] = {}
        self._next_id = 1
        self.instance_id: Optional[str] = None
        self._logged_out: Optional[PiperError] = None
        self.closed = False

    def new_id(self, prefix: str) -> str:
        """A request id unique on this connection (``r-1``, ``m-2``…)."""
        self._next_id += 1
        return f"{prefix}-{self._next_id}"

    async def ensure_ready(self) -> None:
        """Connects when needed; raises PiperError (``closed``, ``link_not_running``, ``not_logged_in``, ``locked``)."""
        if self.closed:
            raise PiperError("closed", "This Piper client was closed.")
        if self._ws is None:
            if self._connecting is None:
                self._connecting = asyncio.ensure_future(self._connect())
            connecting = self._connecting
            try:
                await asyncio.shield(connecting)
            finally:
                if connecting.done() and self._connecting is connecting:
                    self._connecting = None
        if self._logged_out is not None:
            raise self._logged_out
        if self.instance_id is None:
            raise PiperLinkNeededError("not_logged_in", NOT_SIGNED_IN_MESSAGE)

    async def _connect(self) -> None:
        found = discover_link_url(self._link_url, self._env)
        if found.url is None:
            profile = self._env.get("PIPER_LINK_PROFILE", "")
            raise PiperLinkNeededError("link_not_running", f"{LINK_NOT_RUNNING} (no Link of profile {profile} is running)")
        log.debug("piper: connecting to %s (%s)", found.url, found.source)
        try:
            ws = await asyncio.wait_for(
                # The asyncio client of websockets 10.4 (Debian bookworm's), still shipped by later versions.
                connect(
                    found.url,
                    subprotocols=[Subprotocol(AGENT_SUBPROTOCOL)],
                    compression=None,
                    open_timeout=self._connect_timeout,
                    max_size=None,
                    ping_interval=30,
                    ping_timeout=10,
                ),
                self._connect_timeout,
            )
        except asyncio.TimeoutError:
            raise PiperLinkNeededError("link_not_running", f"{LINK_NOT_RUNNING} (no answer from {found.url})") from None
        except (OSError, websockets.exceptions.WebSocketException) as err:
            raise PiperLinkNeededError("link_not_running", f"{LINK_NOT_RUNNING} ({err})") from err
        assert isinstance(ws, WebSocketClientProtocol)
        hello_id = self.new_id("hello")
        hello: Frame = {
            "type": "hello",
            "id": hello_id,
            "protocol": PROTOCOL_VERSION,
            "agent": {"clientId": self._client_id, **({"name": self._name} if self._name else {})},
            "sdk": {"name": "piper-link (python)", "version": VERSION},
        }
        try:
            await ws.send(json.dumps(hello))
            # Connected: the Link is there, and may take a while to answer the hello (it identifies
            # the program that connected, hashing its executable the first time it sees it).
            answer = await asyncio.wait_for(self._hello_answer(ws, hello_id), HELLO_TIMEOUT)
        except asyncio.TimeoutError:
            await ws.close()
            raise PiperLinkNeededError(
                "link_not_running",
                f"Piper Link at {found.url} accepted the connection but did not answer its hello within {HELLO_TIMEOUT:g} s; it may be overloaded. Try again.",
            ) from None
        except websockets.exceptions.ConnectionClosed as err:
            raise PiperLinkNeededError("link_not_running", f"{LINK_NOT_RUNNING} (connection closed)") from err
        if answer["type"] == "welcome":
            self.instance_id = answer["instanceId"]
            self._logged_out = None
        elif answer["code"] in ("not_logged_in", "locked"):
            self.instance_id = None
            self._logged_out = PiperLinkLockedError(answer["message"]) if answer["code"] == "locked" else PiperLinkNeededError("not_logged_in", answer["message"])
        else:
            await ws.close()
            raise PiperError(answer["code"], answer["message"], retryable=bool(answer["retryable"]))
        self._ws = ws
        self._reader = asyncio.ensure_future(self._read(ws))
        # Re-send what was waiting when the previous connection dropped.
        for flight in list(self._in_flight.values()):
            if flight.frame is not None:
                await ws.send(flight.frame)

    async def _hello_answer(self, ws: WebSocketClientProtocol, hello_id: str) -> Frame:
        while True:
            frame = self._decode(await ws.recv())
            if frame is None:
                continue
            if frame["type"] == "context":
                self._on_context(frame)
            elif frame.get("id") == hello_id and frame["type"] in ("welcome", "error"):
                return frame

    @staticmethod
    def _decode(data: Union[str, bytes]) -> Optional[Frame]:
        try:
            frame = check_link_message(json.loads(data))
        except ValueError:
            frame = None
        if frame is None:
            log.warning("piper: ignored a frame the SDK does not understand")
        return frame

    def _on_context(self, frame: Frame) -> None:
        self.instance_id = frame["instanceId"]
        if frame["state"] == "ready":
            self._logged_out = None
        elif frame.get("reason") == "locked":
            from .errors import LOCKED_MESSAGE

            self._logged_out = PiperLinkLockedError(LOCKED_MESSAGE)
        else:
            self._logged_out = PiperLinkNeededError("not_logged_in", NOT_SIGNED_IN_MESSAGE)

    async def _read(self, ws: WebSocketClientProtocol) -> None:
        try:
            async for data in ws:
                frame = self._decode(data)
                if frame is None:
                    continue
                if frame["type"] == "context":
                    self._on_context(frame)
                    continue
                flight = self._in_flight.get(str(frame.get("id")))
                if flight is not None:
                    flight.queue.put_nowait(frame)
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            self._dropped(ws)

    def _dropped(self, ws: WebSocketClientProtocol) -> None:
        if self._ws is not ws:
            return
        self._ws = None
        for key, flight in list(self._in_flight.items()):
            if flight.frame is None:
                del self._in_flight[key]
                flight.queue.put_nowait(PiperLinkNeededError("link_not_running", f"{LINK_NOT_RUNNING} (connection closed during a call)"))
        # Persistent: come back while requests are waiting (they are re-sent after hello).
        if not self.closed and self._in_flight and self._reconnect is None:
            self._reconnect = asyncio.ensure_future(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        attempt = 0
        try:
            while not self.closed and self._in_flight and self._ws is None:
                await asyncio.sleep(_backoff(attempt))
                attempt += 1
                try:
                    await self.ensure_ready()
                except PiperError as err:
                    if err.code in ("not_logged_in", "locked"):
                        # Answered, but nothing can be served: the waiting requests hear why.
                        for key, flight in list(self._in_flight.items()):
                            del self._in_flight[key]
                            flight.queue.put_nowait(err)
                        return
        finally:
            self._reconnect = None

    async def open(self, request_id: str, frame: Frame, *, resend: bool) -> InFlight:
        """Registers ``request_id`` and sends ``frame``; the caller reads the returned queue and calls ``done``."""
        text = json.dumps(frame)
        flight = InFlight(text if resend else None)
        self._in_flight[request_id] = flight
        ws = self._ws
        if ws is None:
            if resend and self._reconnect is None and not self.closed:
                self._reconnect = asyncio.ensure_future(self._reconnect_loop())
            elif not resend:
                del self._in_flight[request_id]
                raise PiperLinkNeededError("link_not_running", f"{LINK_NOT_RUNNING} (connection closed)")
            return flight
        try:
            await ws.send(text)
        except websockets.exceptions.ConnectionClosed:
            if not resend:
                self._in_flight.pop(request_id, None)
                raise PiperLinkNeededError("link_not_running", f"{LINK_NOT_RUNNING} (connection closed)") from None
        return flight

    def done(self, request_id: str) -> None:
        """Forgets ``request_id`` (its answer is complete, or its caller gave up)."""
        self._in_flight.pop(request_id, None)

    async def send(self, frame: Frame) -> None:
        """Sends a frame no answer is expected for (``cancel``); dropped when there is no connection."""
        ws = self._ws
        if ws is not None:
            try:
                await ws.send(json.dumps(frame))
            except websockets.exceptions.ConnectionClosed:
                pass

    async def close(self) -> None:
        """Closes the socket; every request in flight ends with ``closed``."""
        self.closed = True
        if self._reconnect is not None:
            self._reconnect.cancel()
        for key, flight in list(self._in_flight.items()):
            del self._in_flight[key]
            flight.queue.put_nowait(PiperError("closed", "This Piper client was closed."))
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close(1000)
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


def frame_id(frame: Mapping[str, Any]) -> str:
    """The id of a frame as the in-flight table keys it."""
    return str(frame.get("id"))
