"""WebSockets over HTTP/2 (RFC 8441 extended CONNECT) for tether's end-to-end tests, with
Python's `h2` state machine as the HTTP/2 client and WebSocket frames made by hand.

python3 support_h2_ws.py echo PORT PATH N   h2c to 127.0.0.1:PORT; CONNECT PATH with
                                            :protocol websocket; N text messages and one
                                            100 KiB binary, each echo checked ("echo:" +
                                            the message, tests/support_ws.py's server);
                                            a close frame answered; prints "ok N"
python3 support_h2_ws.py feed PORT PATH     the broker's feed: prints "first X" for the
                                            first message, "next Y" for the second, then
                                            closes; prints "status S" for a refusal
python3 support_h2_ws.py status PORT PATH   prints "status S": the answer to the CONNECT
python3 support_h2_ws.py feed-drain PORT PATH   the feed until tether closes it: prints
                                            "first X", "close CODE", "ended"
Everything is bounded: each wait is at most WAIT seconds; a failure prints "error ..." and
exits 1.
"""
import os
import socket
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

WAIT = 15.0


def ws_frame(opcode, payload):
    """A client frame: FIN, masked (RFC 6455 5.3)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def ws_parse(buf):
    """(opcode, payload, rest) for the first whole server frame in buf, or None."""
    if len(buf) < 2:
        return None
    opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
    at = 2
    if n == 126:
        if len(buf) < 4:
            return None
        (n,) = struct.unpack("!H", buf[2:4])
        at = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        (n,) = struct.unpack("!Q", buf[2:10])
        at = 10
    if len(buf) < at + n:
        return None
    return opcode, buf[at : at + n], buf[at + n :]


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.send()
        self.stream = None
        self.status = None
        self.data = b""
        self.ended = False
        self.connect_protocol = False

    def send(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def pump(self):
        """Read once and handle the events; False at EOF."""
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        for e in self.conn.receive_data(chunk):
            if isinstance(e, h2.events.RemoteSettingsChanged):
                s = e.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
                if s is not None and s.new_value == 1:
                    self.connect_protocol = True
            elif isinstance(e, h2.events.ResponseReceived) and e.stream_id == self.stream:
                self.status = int(dict(e.headers)[b":status"])
            elif isinstance(e, h2.events.DataReceived) and e.stream_id == self.stream:
                self.data += e.data
                self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, h2.events.StreamEnded) and e.stream_id == self.stream:
                self.ended = True
            elif isinstance(e, h2.events.StreamReset) and e.stream_id == self.stream:
                self.ended = True
        self.send()
        return True

    def wait(self, done, what):
        end = time.monotonic() + WAIT
        while not done():
            if time.monotonic() > end:
                fail(f"timed out waiting for {what}")
            if not self.pump():
                if done():
                    return
                fail(f"connection closed waiting for {what}")

    def open(self, path):
        self.wait(lambda: self.connect_protocol, "SETTINGS_ENABLE_CONNECT_PROTOCOL")
        self.stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            self.stream,
            [
                (b":method", b"CONNECT"),
                (b":protocol", b"websocket"),
                (b":scheme", b"http"),
                (b":path", path.encode()),
                (b":authority", b"127.0.0.1"),
                (b"sec-websocket-version", b"13"),
            ],
        )
        self.send()
        self.wait(lambda: self.status is not None or self.ended, "the response")
        return self.status

    def write(self, frame):
        # Bounded by the windows: send what they allow, read (WINDOW_UPDATEs) meanwhile.
        end = time.monotonic() + WAIT
        while frame:
            room = min(
                self.conn.local_flow_control_window(self.stream),
                self.conn.max_outbound_frame_size,
            )
            if room <= 0:
                if time.monotonic() > end or not self.pump():
                    fail("the window stayed closed")
                continue
            self.conn.send_data(self.stream, frame[:room])
            frame = frame[room:]
            self.send()

    def message(self):
        """The next whole server frame: (opcode, payload)."""
        got = []

        def whole():
            r = ws_parse(self.data)
            if r:
                got.append(r)
            return bool(r) or self.ended

        self.wait(whole, "a WebSocket frame")
        if not got:
            fail("the stream ended without a frame")
        opcode, payload, self.data = got[0]
        return opcode, payload


def fail(why):
    print(f"error {why}", flush=True)
    sys.exit(1)


def echo(port, path, n):
    c = Client(port)
    status = c.open(path)
    if status != 200:
        fail(f"status {status}")
    for i in range(n):
        c.write(ws_frame(0x1, f"message {i}".encode()))
        op, got = c.message()
        if (op, got) != (0x1, f"echo:message {i}".encode()):
            fail(f"bad echo {op} {got[:60]!r}")
    blob = bytes(range(256)) * 400
    c.write(ws_frame(0x2, blob))
    op, got = c.message()
    if (op, got) != (0x2, b"echo:" + blob):
        fail(f"bad binary echo {op} {len(got)}")
    c.write(ws_frame(0x8, struct.pack("!H", 1000)))
    op, _ = c.message()
    if op != 0x8:
        fail(f"no close frame back: opcode {op}")
    c.wait(lambda: c.ended, "the end of the stream")
    print(f"ok {n}", flush=True)


def feed(port, path):
    c = Client(port)
    status = c.open(path)
    if status != 200:
        print(f"status {status}", flush=True)
        return
    op, first = c.message()
    print(f"first {first.decode()}", flush=True)
    op, nxt = c.message()
    print(f"next {nxt.decode()}", flush=True)
    c.write(ws_frame(0x8, struct.pack("!H", 1000)))
    c.message()


def feed_drain(port, path):
    """The feed until tether closes it: "first X", then "close CODE" and "ended"."""
    c = Client(port)
    status = c.open(path)
    if status != 200:
        fail(f"status {status}")
    op, first = c.message()
    print(f"first {first.decode()}", flush=True)
    while True:
        op, payload = c.message()
        if op == 0x8:
            (code,) = struct.unpack("!H", payload[:2])
            print(f"close {code}", flush=True)
            break
    c.wait(lambda: c.ended, "the end of the stream")
    print("ended", flush=True)


def main():
    mode, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode == "echo":
        echo(port, path, int(sys.argv[4]))
    elif mode == "feed":
        feed(port, path)
    elif mode == "status":
        print(f"status {Client(port).open(path)}", flush=True)
    elif mode == "feed-drain":
        feed_drain(port, path)
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
