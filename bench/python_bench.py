"""The Python side of bench/python.ts: measures the installed piper_link against bare baselines in
this same process and prints one JSON line. Asks for approval by printing {"pending": id} (the TS
side approves over the control channel).

usage: python_bench.py LINK_URL UPSTREAM_ORIGIN CA_FILE ITERATIONS
"""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import statistics
import sys
import threading
import time
from typing import Any, Callable, Dict, List
from urllib.parse import urlparse

import websockets.exceptions
from websockets.legacy.client import connect
from websockets.legacy.server import WebSocketServerProtocol, serve

from piper_link import PiperClient


def announce(info: Dict[str, Any]) -> None:
    print(json.dumps({"pending": info["request_id"]}), flush=True)


def measure(n: int, op: Callable[[], None]) -> Dict[str, float]:
    """p50 / p99 latency (ms) and this process's CPU per operation (ms) over n operations."""
    samples: List[float] = []
    cpu0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        op()
        samples.append((time.perf_counter() - t0) * 1000)
    cpu = (time.process_time() - cpu0) * 1000 / n
    samples.sort()
    return {"p50": statistics.median(samples), "p99": samples[min(len(samples) - 1, int(0.99 * len(samples)))], "cpuMs": cpu}


class EchoLoop:
    """A bare websockets echo server and a client of it, on a background loop (as the sync client runs)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.ws: Any = asyncio.run_coroutine_threadsafe(self._open(), self.loop).result()

    async def _open(self) -> Any:
        async def echo(ws: WebSocketServerProtocol, _path: str) -> None:
            try:
                async for message in ws:
                    await ws.send(message)
            except websockets.exceptions.ConnectionClosed:
                pass

        self.server = await serve(echo, "127.0.0.1", 0, compression=None)
        port = self.server.sockets[0].getsockname()[1]
        return await connect(f"ws://127.0.0.1:{port}", compression=None)

    def round_trip(self) -> None:
        async def once() -> None:
            await self.ws.send('{"type":"resolve","id":"e-1","variable":"BENCH_CALL_KEY","wait":true}')
            await self.ws.recv()

        asyncio.run_coroutine_threadsafe(once(), self.loop).result()


def main() -> None:
    link_url, origin, ca_file, iterations = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    out: Dict[str, Any] = {}
    with PiperClient("bench_py", link_url=link_url, fallback_to_env=False, env={}) as piper:
        piper.get_secret("BENCH_CALL_KEY", on_pending=announce)
        piper.call(f"{origin}/json", bearer="BENCH_CALL_KEY", on_pending=announce, ask_if_refused=True)
        echo = EchoLoop()
        host = urlparse(origin)
        direct = http.client.HTTPSConnection(host.hostname or "127.0.0.1", host.port, context=ssl.create_default_context(cafile=ca_file))

        def direct_get() -> None:
            direct.request("GET", "/json", headers={"authorization": "Bearer x"})
            direct.getresponse().read()

        warm = max(50, iterations // 5)
        for _ in range(warm):
            piper.get_secret("BENCH_CALL_KEY")
            echo.round_trip()
            piper.call(f"{origin}/json", bearer="BENCH_CALL_KEY")
            direct_get()
        rounds: Dict[str, List[Dict[str, float]]] = {"getSecret": [], "echo": [], "call": [], "direct": []}
        per_round = max(20, iterations // 5)
        for _ in range(5):
            rounds["getSecret"].append(measure(per_round, lambda: piper.get_secret("BENCH_CALL_KEY")))
            rounds["echo"].append(measure(per_round, echo.round_trip))
            rounds["call"].append(measure(per_round, lambda: piper.call(f"{origin}/json", bearer="BENCH_CALL_KEY")))
            rounds["direct"].append(measure(per_round, direct_get))
        for name, values in rounds.items():
            out[name] = sorted(values, key=lambda s: s["p50"])[2]
        out["iterations"] = per_round * 5
    print(json.dumps({"result": out}), flush=True)


if __name__ == "__main__":
    main()
