"""HTTP/2 protocol attacks for tether's end-to-end tests (tests/http2_attacks.rs).

usage: python3 support_h2.py ATTACK PORT
ATTACK: continuation | continuation_big | hpack_bomb | ping_flood | settings_flood |
        even_id | reused_id | lower_id | data_idle | zero_window | good
        | drain (20 slow streams; prints "sent" first, so the test can reload meanwhile)
        | affinity (one stream, then 10 with the Set-Cookie it got, then 10 without)

Frames are built with Python's `hyperframe` and `hpack` (both come with the `h2` package);
the client is hand-driven because each attack breaks a rule the `h2` state machine would
refuse to break. What tether answered is printed as one JSON object:
  {"goaway": [codes], "rst": {"stream": code}, "status": {"stream": status},
   "body": {"stream": text}, "headers": {"stream": ["name: value"]}, "eof": bool, "ms": elapsed ms from the attack to the end}
Everything is bounded: the socket reads for at most WAIT seconds (15) after the attack.
"""
import json
import socket
import sys
import threading
import time

import h2.settings  # noqa: F401  (the package the tests need installed: h2, hpack, hyperframe)
from hpack import Decoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
WAIT = 15.0


def hpack_int(value, prefix_bits, first):
    """An HPACK integer with `first`'s high bits as the flags (RFC 7541 5.1)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name_index, value, indexing=False):
    """A literal field with a static-table name, without (or with) indexing, no Huffman."""
    head = hpack_int(name_index, 6, 0x40) if indexing else hpack_int(name_index, 4, 0x00)
    return head + hpack_int(len(value), 7, 0x00) + value


def literal_new_name(name, value, indexing):
    head = b"\x40" if indexing else b"\x00"
    return head + hpack_int(len(name), 7, 0) + name + hpack_int(len(value), 7, 0) + value


def get_block(path, cookie=None):
    """GET `path` over http at localhost: :method GET, :scheme http, :path, :authority."""
    block = b"\x82\x86" + literal(4, path) + literal(1, b"localhost")
    if cookie:
        block += literal(32, cookie)
    return block


def headers(stream, block, end_stream=True, end_headers=True):
    f = HeadersFrame(stream)
    f.data = block
    if end_headers:
        f.flags.add("END_HEADERS")
    if end_stream:
        f.flags.add("END_STREAM")
    return f.serialize()


class Client:
    def __init__(self, port, settings=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        s = SettingsFrame(0)
        for k, v in (settings or {}).items():
            s.settings[k] = v
        self.sock.sendall(PREFACE + s.serialize())
        self.buf = b""
        self.eof = False
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        deadline = time.monotonic() + 3 * WAIT
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            with self.lock:
                self.buf += chunk
        self.eof = True

    def send(self, data):
        """Send, ignoring a peer that already closed (its GOAWAY is what counts)."""
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def frames(self):
        with self.lock:
            data = self.buf
        out, at = [], 0
        while at + 9 <= len(data):
            f, length = Frame.parse_frame_header(memoryview(data[at : at + 9]))
            if at + 9 + length > len(data):
                break
            f.parse_body(memoryview(data[at + 9 : at + 9 + length]))
            out.append(f)
            at += 9 + length
        return out

    def wait(self, cond, limit=WAIT):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.eof or cond(self.frames()):
                return
            time.sleep(0.02)

    def report(self, started):
        # After a GOAWAY the server closes the connection; the FIN may trail the frame, so
        # wait for it (bounded) rather than report a race.
        if has(GoAwayFrame)(self.frames()):
            deadline = time.monotonic() + WAIT
            while not self.eof and time.monotonic() < deadline:
                time.sleep(0.02)
        dec = Decoder()
        r = {"goaway": [], "rst": {}, "status": {}, "body": {}, "headers": {}, "eof": self.eof}
        for f in self.frames():
            if isinstance(f, GoAwayFrame):
                r["goaway"].append(f.error_code)
            elif isinstance(f, RstStreamFrame):
                r["rst"][str(f.stream_id)] = f.error_code
            elif isinstance(f, HeadersFrame):
                for name, value in dec.decode(f.data, raw=True):
                    line = (name + b": " + value).decode("latin-1")
                    r["headers"].setdefault(str(f.stream_id), []).append(line)
                    if name == b":status":
                        r["status"][str(f.stream_id)] = int(value)
            elif isinstance(f, DataFrame):
                key = str(f.stream_id)
                r["body"][key] = r["body"].get(key, "") + f.data.decode("latin-1")
        r["ms"] = int((time.monotonic() - started) * 1000)
        return r


def has(kind):
    return lambda frames: any(isinstance(f, kind) for f in frames)


def ended(stream):
    """The stream's answer ended (DATA or HEADERS with END_STREAM) or it was reset."""

    def cond(frames):
        for f in frames:
            if f.stream_id == stream:
                if isinstance(f, RstStreamFrame) or "END_STREAM" in f.flags:
                    return True
        return False

    return cond


def main():
    attack, port = sys.argv[1], int(sys.argv[2])
    settings = {}
    if attack == "zero_window":
        settings = {SettingsFrame.INITIAL_WINDOW_SIZE: 0}
    c = Client(port, settings)
    started = time.monotonic()
    if attack == "continuation":
        # CVE-2024-27316: a header block that never ends, in many small frames.
        c.send(headers(1, get_block(b"/files/a.txt"), end_headers=False))
        for i in range(2000):
            f = ContinuationFrame(1)
            f.data = literal(58, b"x" * 8)  # user-agent
            c.send(f.serialize())
            if c.eof:
                break
        c.wait(has(GoAwayFrame))
    elif attack == "continuation_big":
        # The same in a few big frames: the block's bytes are capped, not only its frames.
        c.send(headers(1, get_block(b"/files/a.txt"), end_headers=False))
        for i in range(16):
            f = ContinuationFrame(1)
            f.data = literal(58, b"y" * 16000)
            c.send(f.serialize())
        c.wait(has(GoAwayFrame))
    elif attack == "hpack_bomb":
        # One 4000-byte entry put in the dynamic table (index 62), then referenced 1000
        # times in a block of ~1 KiB: ~4 MB once decoded.
        bomb = literal_new_name(b"x-bomb", b"b" * 4000, indexing=True)
        block = get_block(b"/files/a.txt") + bomb + b"\xbe" * 1000
        c.send(headers(1, block))
        c.wait(ended(1))
        # The same connection serves the next stream.
        c.send(headers(3, get_block(b"/files/a.txt")))
        c.wait(ended(3))
    elif attack == "ping_flood":
        pings = b"".join(PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize() for i in range(3000))
        c.send(pings)
        c.wait(has(GoAwayFrame))
    elif attack == "settings_flood":
        c.send(SettingsFrame(0).serialize() * 3000)
        c.wait(has(GoAwayFrame))
    elif attack == "even_id":
        c.send(headers(2, get_block(b"/files/a.txt")))
        c.wait(has(GoAwayFrame))
    elif attack == "reused_id":
        # Stream 1 answered and closed, then HEADERS on stream 1 again.
        c.send(headers(1, get_block(b"/files/a.txt")))
        c.wait(ended(1))
        c.send(headers(1, get_block(b"/files/a.txt")))
        c.wait(has(GoAwayFrame))
    elif attack == "lower_id":
        # Stream 5 opened, then stream 3 (lower than one already opened, never used).
        c.send(headers(5, get_block(b"/files/a.txt")))
        c.wait(ended(5))
        c.send(headers(3, get_block(b"/files/a.txt")))
        c.wait(has(GoAwayFrame))
    elif attack == "data_idle":
        # DATA on a stream never opened.
        f = DataFrame(7)
        f.data = b"hello"
        c.send(f.serialize())
        c.wait(has(GoAwayFrame))
    elif attack == "zero_window":
        # INITIAL_WINDOW_SIZE 0 and never a WINDOW_UPDATE: the answer's DATA cannot go.
        c.send(headers(1, get_block(b"/files/big.bin")))
        c.wait(has(RstStreamFrame), limit=WAIT)
    elif attack == "drain":
        ids = range(1, 41, 2)
        c.send(b"".join(headers(i, get_block(b"/slow?ms=2000")) for i in ids))
        print("sent", flush=True)
        c.wait(lambda fs: all(ended(i)(fs) for i in ids))
        # Then the connection closes (GOAWAY was sent with the drain).
        deadline = time.monotonic() + 10
        while not c.eof and time.monotonic() < deadline:
            time.sleep(0.02)
    elif attack == "affinity":
        c.send(headers(1, get_block(b"/whoami")))
        c.wait(ended(1))
        cookie = None
        for f in c.frames():
            if isinstance(f, HeadersFrame) and f.stream_id == 1:
                for name, value in Decoder().decode(f.data, raw=True):
                    if name == b"set-cookie":
                        cookie = value.split(b";")[0]
        pinned = range(3, 23, 2)
        c.send(b"".join(headers(i, get_block(b"/whoami", cookie)) for i in pinned))
        c.wait(lambda fs: all(ended(i)(fs) for i in pinned))
        free = range(23, 43, 2)
        c.send(b"".join(headers(i, get_block(b"/whoami")) for i in free))
        c.wait(lambda fs: all(ended(i)(fs) for i in free))
    elif attack == "good":
        c.send(headers(1, get_block(b"/files/a.txt")))
        c.wait(ended(1))
    else:
        sys.exit(f"unknown attack {attack}")
    print(json.dumps(c.report(started)))
    try:
        c.sock.close()
    except OSError:
        pass


if __name__ == "__main__":
    main()
