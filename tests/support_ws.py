"""WebSocket peers for tether's end-to-end tests (the `websockets` package).

python3 support_ws.py server PORT         echo server: every message back, prefixed "echo:"
python3 support_ws.py client URL N        sends N messages (text and a 1 MiB binary), checks
                                          each echo, prints "ok N" and exits 0, else exits 1
                                          (a wss:// URL is verified against $WS_CA)
"""
import asyncio
import sys

import websockets


async def serve(port):
    async def echo(ws):
        async for msg in ws:
            if isinstance(msg, bytes):
                await ws.send(b"echo:" + msg)
            else:
                await ws.send("echo:" + msg)

    async with websockets.serve(echo, "127.0.0.1", port, max_size=None):
        await asyncio.Future()


async def client(url, n):
    tls = None
    if url.startswith("wss://"):
        import os
        import ssl

        tls = ssl.create_default_context(cafile=os.environ["WS_CA"])
    async with websockets.connect(url, max_size=None, open_timeout=10, ssl=tls) as ws:
        for i in range(n):
            await ws.send(f"message {i}")
            got = await asyncio.wait_for(ws.recv(), 10)
            if got != f"echo:message {i}":
                print(f"bad echo {got!r}")
                return 1
        blob = bytes(range(256)) * 4096
        await ws.send(blob)
        got = await asyncio.wait_for(ws.recv(), 10)
        if got != b"echo:" + blob:
            print("bad binary echo")
            return 1
    print(f"ok {n}")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(serve(int(sys.argv[2])))
    else:
        sys.exit(asyncio.run(client(sys.argv[2], int(sys.argv[3]))))
