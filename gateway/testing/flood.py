"""A bounded connection flood on loopback, for tests and benchmarks (issue 15).

``python -m gateway.testing.flood --port P`` opens ``--per-address`` connections from each of
``--addresses`` loopback addresses (127.1.x.y, bound before connecting), at most
``--in-flight`` at a time, and stops after ``--seconds`` whatever happened. A connection the
server greets (``220``, ``* OK``) is held open and idle, as the attack of issue 15 did; a
refused or failed one is closed. Prints one JSON line: how many were held, refused (with
the first reply seen), reset, timed out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from collections import Counter


def addresses(count: int) -> list[str]:
    return [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(count)]


async def _one(source: str, port: int, held: list[socket.socket], outcome: Counter[str], wait: float) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    try:
        sock.bind((source, 0))
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), wait)
        first = await asyncio.wait_for(loop.sock_recv(sock, 256), wait)
    except TimeoutError:
        outcome["timeout"] += 1
        sock.close()
        return
    except OSError as exc:
        outcome[f"error:{type(exc).__name__}"] += 1
        sock.close()
        return
    if first.startswith((b"220", b"* OK")):
        held.append(sock)
        outcome["held"] += 1
        return
    outcome["refused:" + first[:40].decode("ascii", "replace").strip()] += 1
    sock.close()


async def flood(port: int, count: int, per_address: int, in_flight: int, seconds: float,
                hold: float, wait: float = 5.0) -> dict[str, object]:
    held: list[socket.socket] = []
    outcome: Counter[str] = Counter()
    limit = asyncio.Semaphore(in_flight)
    deadline = time.monotonic() + seconds
    start = time.monotonic()

    async def bounded(source: str) -> None:
        async with limit:
            if time.monotonic() < deadline:
                await _one(source, port, held, outcome, wait)

    try:
        tasks = [asyncio.create_task(bounded(a)) for _ in range(per_address) for a in addresses(count)]
        await asyncio.wait(tasks, timeout=max(seconds, 0.1))
        for task in tasks:
            task.cancel()
        elapsed = time.monotonic() - start
        await asyncio.sleep(max(0.0, min(hold, deadline - time.monotonic())))
    finally:
        for sock in held:
            sock.close()
    return {"attempts": sum(outcome.values()), "seconds": round(elapsed, 2), **dict(outcome)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--addresses", type=int, default=1000)
    p.add_argument("--per-address", type=int, default=20)
    p.add_argument("--in-flight", type=int, default=400)
    p.add_argument("--seconds", type=float, default=60.0, help="stop opening connections after this long")
    p.add_argument("--hold", type=float, default=0.0, help="keep the greeted connections this long afterwards")
    args = p.parse_args(argv)
    if not 1 <= args.addresses <= 62_500:
        p.error("--addresses: 1 to 62500")
    result = asyncio.run(flood(args.port, args.addresses, args.per_address, args.in_flight, args.seconds, args.hold))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
