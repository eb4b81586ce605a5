"""IMAP benchmark (issue 4): a 5,000-message folder on the real store, served by the real
listeners in a separate process, driven by imaplib over IMAPS.

Measures: LOGIN + SELECT; UID FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE) the first time
(summaries computed from the decrypted messages and cached sealed, as for mail delivered
by SMTP) and the second time (from the sealed cache); UID FETCH 1:* (BODY.PEEK[]) of all;
N concurrent clients each doing LOGIN, SELECT, the header FETCH and LOGOUT.

    .venv/bin/python bench/imap.py --messages 5000 --clients 50 --backend sqlite --backend postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import imaplib
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

# This file is named like the ``imap`` package: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from gateway.accounts.pros import add_hosted_domain, add_pro, pro_by_address  # noqa: E402
from gateway.app.context import Location, open_services  # noqa: E402
from gateway.mailstore.messages import append_message  # noqa: E402
from gateway.testing import pg  # noqa: E402
from gateway.testing.live import make_home  # noqa: E402
from gateway.testing.ports import listen_env, wait_port  # noqa: E402

USER, PASSWORD = "bench@clinic.test", "bench password"
ATTACHMENT = b"JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoK\r\n" * 40


def sample(i: int) -> bytes:
    head = (f"From: Labo {i} <labo{i}@hopital.example>\r\nTo: {USER}\r\nSubject: =?utf-8?q?R=C3=A9sultat_{i}?=\r\n"
            f"Date: Mon, 02 Mar 2026 10:00:00 +0100\r\nMessage-ID: <bench-{i}@hopital.example>\r\n").encode()
    if i % 3:
        return head + b"\r\n" + b"Bonjour, voici le compte rendu.\r\n" * 20
    return head + (b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
                   b"Content-Type: text/plain; charset=utf-8\r\n\r\nR\xc3\xa9sultats joints.\r\n--B\r\n"
                   b"Content-Type: application/pdf; name=r.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                   + ATTACHMENT + b"--B--\r\n")


def fill(home: Path, count: int) -> None:
    svc = open_services(Location(home / "gateway.toml", home, True))
    try:
        with svc.db.write() as session:
            add_pro(session, svc.keys, USER, add_hosted_domain(session, "clinic.test"), password=PASSWORD)
        for start in range(0, count, 500):
            with svc.db.write() as session:
                pro = pro_by_address(session, USER)
                assert pro is not None
                for i in range(start, min(count, start + 500)):
                    append_message(session, svc.keys, pro.mailbox_id, "INBOX", sample(i))  # as SMTP delivers
    finally:
        svc.close()


def serve(home: str) -> None:
    """Child process: run the IMAP listeners of ``home`` until SIGTERM."""
    from gateway.app.listeners import start_imap, start_imaps
    from gateway.app.server import start

    async def main() -> None:
        svc = open_services(Location(Path(home) / "gateway.toml", Path(home), True))
        gw = await start(svc, [start_imap, start_imaps])
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await gw.close()
        svc.close()

    asyncio.run(main())


def client(port: int, ca: str) -> imaplib.IMAP4_SSL:
    return imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ssl.create_default_context(cafile=ca), timeout=600)


def timed(fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started


def run(backend: str, url: str | None, messages: int, clients: int, root: Path) -> dict[str, str]:
    home = make_home(root / backend / "home", storage_url=url)
    started = time.perf_counter()
    fill(home, messages)
    fill_time = time.perf_counter() - started
    env = {**os.environ, **listen_env(("imap", "imaps"))}
    port = int(env["GATEWAY__LISTEN__IMAPS"].rsplit(":", 1)[1])
    ca = str(home / "tls" / "ca.pem")
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(home)], env=env)  # noqa: S603
    try:
        assert wait_port("127.0.0.1", port, 60), "IMAP listener did not start"
        c = client(port, ca)
        login_select = timed(lambda: (c.login(USER, PASSWORD), c.select("INBOX")))
        header_items = "(FLAGS RFC822.SIZE ENVELOPE)"
        first = timed(lambda: c.uid("FETCH", "1:*", header_items))
        second = timed(lambda: c.uid("FETCH", "1:*", header_items))
        holder: dict[str, int] = {}

        def bodies() -> None:
            _, data = c.uid("FETCH", "1:*", "(BODY.PEEK[])")
            holder["bytes"] = sum(len(d[1]) for d in data if isinstance(d, tuple))

        body_time = timed(bodies)
        c.logout()
        per_client: list[float] = []
        lock = threading.Lock()

        def one() -> None:
            t0 = time.perf_counter()
            k = client(port, ca)
            k.login(USER, PASSWORD)
            k.select("INBOX", readonly=True)
            k.uid("FETCH", "1:*", header_items)
            k.logout()
            with lock:
                per_client.append(time.perf_counter() - t0)

        threads = [threading.Thread(target=one) for _ in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        concurrent = time.perf_counter() - t0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    per_client.sort()
    return {
        "backend": backend, "messages": f"{messages:,}", "fill": f"{fill_time:.1f} s",
        "login+select": f"{login_select * 1000:.0f} ms", "headers 1st": f"{first:.2f} s",
        "headers cached": f"{second:.2f} s",
        "BODY[] all": f"{body_time:.2f} s ({holder.get('bytes', 0) / 1e6:.1f} MB)",
        f"{clients} clients": f"{concurrent:.1f} s (p50 {statistics.median(per_client):.1f} s, "
                              f"max {per_client[-1]:.1f} s)",
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    rows = []
    with ExitStack() as stack:
        root = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hmg-imap-bench-")))
        for backend in args.backend or ["sqlite"]:
            url = stack.enter_context(pg.temporary_database("hmg_bench")) if backend == "postgresql" else None
            rows.append(run(backend, url, args.messages, args.clients, root))
    print(f"# {dt.date.today()} {' '.join(sys.argv)}")
    print("| " + " | ".join(rows[0]) + " |")
    print("| " + " | ".join("---" for _ in rows[0]) + " |")
    for row in rows:
        print("| " + " | ".join(row.values()) + " |")


if __name__ == "__main__":
    main()
