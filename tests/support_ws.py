"""WebSocket peers for tether's end-to-end tests (the `websockets` package).

python3 support_ws.py server PORT         echo server: every message back, prefixed "echo:";
                                          a plain GET /wait?n=N is answered once N
                                          messages were echoed (at most 15 s)
python3 support_ws.py client URL N        sends N messages (text and a 1 MiB binary), checks
                                          each echo, prints "ok N" and exits 0, else exits 1
                                          (a wss:// URL is verified against $WS_CA)
"""
import asyncio
import sys
from http import HTTPStatus

import websockets


async def serve(port):
    echoed = [0]

    async def echo(ws):
        async for msg in ws:
            if isinstance(msg, bytes):
                await ws.send(b"echo:" + msg)
            else:
                await ws.send("echo:" + msg)
            echoed[0] += 1

    async def plain_http(connection, request):
        # `GET /wait?n=N` without an upgrade: answered once N messages were echoed (at most
        # 15 s), so a page that loads it has its load event after its WebSocket's echo.
        path, _, query = request.path.partition("?")
        if path == "/wait" and "upgrade" not in request.headers:
            want = int(query[2:]) if query.startswith("n=") else 1
            for _ in range(1500):
                if echoed[0] >= want:
                    return connection.respond(HTTPStatus.OK, "echoed\n")
                await asyncio.sleep(0.01)
            return connection.respond(HTTPStatus.GATEWAY_TIMEOUT, "no echo\n")
        return None

    async with websockets.serve(
        echo, "127.0.0.1", port, max_size=None, process_request=plain_http
    ):
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
