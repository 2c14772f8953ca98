#!/usr/bin/env python3
"""A real SMTP server for the tests (aiosmtpd): every message it accepts is appended to a
file as one JSON line {"from": ..., "to": [...], "data": "<the raw message>"}.

    python3 tests/support_smtp.py --port 0 --out mails.jsonl

Prints "listening on PORT" once it accepts connections (port 0: the kernel picks one).
Stops on SIGTERM / SIGINT / kill.
"""

import argparse
import asyncio
import json
import signal
import sys

from aiosmtpd.smtp import SMTP


class AppendToFile:
    def __init__(self, path):
        self.path = path

    async def handle_DATA(self, server, session, envelope):
        data = envelope.content
        if isinstance(data, bytes):
            data = data.decode("utf-8", errors="replace")
        line = json.dumps({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "data": data})
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        return "250 Message accepted for delivery"


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    handler = AppendToFile(args.out)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="sink.test"), args.host, args.port)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {port}", flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
