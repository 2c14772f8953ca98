"""gRPC through tether, with grpcio on both sides and no protoc: generic handlers with
bytes (de)serializers.

  support_grpc.py server PORT [MAX [AGE_MS [CERT KEY]]]
                                       a test service t.T on PORT (h2c) until killed,
                                       announcing MAX_CONCURRENT_STREAMS = MAX (1000); with
                                       AGE_MS (0: never), each connection gets a GOAWAY at
                                       that age; with CERT KEY, over TLS (ALPN h2)
  support_grpc.py client PORT MODE     calls through tether on PORT; prints a result line
                                       per check, exits 1 on a failed one

MODE: calls (unary, server/client/bidi streaming, 16 MiB each way), many (200 concurrent
unary calls; prints the backend connections they used), channels:N (N client connections
with 20 concurrent calls each; prints the backend connections), unavailable, deadline,
sessions:N (N sessions created with an id in the answer's metadata, each used by 10
calls that send it back: all at home, the backend sees the untagged id; prints how many
servers made sessions), users:N (N users' calls, 6 each, with `x-user` metadata: each
user on one server; prints how many servers served), slow:PID (a consumer that stops reading a 200 MiB stream: prints how much the server
could produce meanwhile and how much PID's RSS grew), die (a server stream whose server
process dies after 3 messages, then 6 unary calls).
"""
import hashlib
import os
import sys
import threading
import time
from concurrent import futures

import grpc

BIG = 64 * 1024 * 1024
OPTS = [("grpc.max_send_message_length", BIG), ("grpc.max_receive_message_length", BIG)]
ident = lambda b: b


def serve(port, max_streams, age_ms, tls=None):
    peers = set()
    lock = threading.Lock()

    def note(ctx):
        with lock:
            peers.add(ctx.peer())

    def unary(req, ctx):
        note(ctx)
        if req.startswith(b"sleep:"):
            time.sleep(float(req[6:]))
        return b"echo:" + req if len(req) < 1024 else req[::-1]

    def peers_count(req, ctx):
        with lock:
            return str(len(peers)).encode()

    def server_stream(req, ctx):
        note(ctx)
        for i in range(int(req)):
            yield b"msg-%d" % i

    def client_stream(reqs, ctx):
        note(ctx)
        h = hashlib.sha256()
        n = 0
        for r in reqs:
            h.update(r)
            n += 1
        return b"%d:%s" % (n, h.hexdigest().encode())

    produced = [0]

    def flood(req, ctx):
        chunk = b"z" * (1024 * 1024)
        for _ in range(int(req)):
            with lock:
                produced[0] += 1
            yield chunk

    def produced_count(req, ctx):
        with lock:
            return str(produced[0]).encode()

    def early(reqs, ctx):
        # Answers after the first message, while the client still streams.
        first = next(reqs)
        return b"early:" + first

    def whoami(req, ctx):
        return str(port).encode()

    made = [0]

    def session(req, ctx):
        # b"create": a new session id in the answer's initial metadata (x-session), as an
        # application's login call would; anything else: which server answered and the
        # x-session metadata it received.
        if req == b"create":
            with lock:
                made[0] += 1
                sid = "s%d-%d" % (port, made[0])
            ctx.send_initial_metadata((("x-session", sid),))
            return str(port).encode()
        got = dict(ctx.invocation_metadata()).get("x-session", "")
        return ("%d|%s" % (port, got)).encode()

    def die(req, ctx):
        for i in range(3):
            yield b"%d:%d" % (port, i)
        time.sleep(0.3)
        os._exit(1)

    def bidi(reqs, ctx):
        note(ctx)
        for r in reqs:
            yield b"re:" + r

    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, ident, ident),
        "Peers": grpc.unary_unary_rpc_method_handler(peers_count, ident, ident),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, ident, ident),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, ident, ident),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi, ident, ident),
        "Early": grpc.stream_unary_rpc_method_handler(early, ident, ident),
        "Whoami": grpc.unary_unary_rpc_method_handler(whoami, ident, ident),
        "Die": grpc.unary_stream_rpc_method_handler(die, ident, ident),
        "Session": grpc.unary_unary_rpc_method_handler(session, ident, ident),
        "Flood": grpc.unary_stream_rpc_method_handler(flood, ident, ident),
        "Produced": grpc.unary_unary_rpc_method_handler(produced_count, ident, ident),
    }
    opts = OPTS + [("grpc.max_concurrent_streams", max_streams)]
    if age_ms:
        opts += [("grpc.max_connection_age_ms", age_ms), ("grpc.max_connection_age_grace_ms", 10000)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=300), options=opts)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", handlers),))
    if tls:
        # TLS (ALPN h2, as grpcio always negotiates): tether's `protocol = "h2"`.
        with open(tls[0], "rb") as c, open(tls[1], "rb") as k:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        server.add_secure_port("127.0.0.1:%d" % port, creds)
    else:
        server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    server.wait_for_termination()


def client(port, mode):
    ch = grpc.insecure_channel("127.0.0.1:%d" % port, options=OPTS)
    uu = lambda m: ch.unary_unary("/t.T/" + m, ident, ident)
    ok = True

    def check(name, cond, detail=""):
        nonlocal ok
        print("%s %s %s" % (name, "ok" if cond else "FAILED", detail), flush=True)
        ok = ok and cond

    if mode == "calls":
        r = uu("Unary")(b"hello", timeout=20)
        check("unary", r == b"echo:hello", r[:40])
        got = list(ch.unary_stream("/t.T/ServerStream", ident, ident)(b"50", timeout=20))
        check("server_stream", got == [b"msg-%d" % i for i in range(50)], len(got))
        parts = [bytes([i]) * 1000 for i in range(100)]
        r = ch.stream_unary("/t.T/ClientStream", ident, ident)(iter(parts), timeout=20)
        want = b"100:" + hashlib.sha256(b"".join(parts)).hexdigest().encode()
        check("client_stream", r == want, r[:40])
        # Bidi: each answer read before the next message is sent (both ways at once).
        q = []
        cv = threading.Condition()

        def gen():
            for i in range(20):
                yield b"m%d" % i
                with cv:
                    cv.wait_for(lambda: len(q) > i, timeout=10)

        answers = []
        for a in ch.stream_stream("/t.T/Bidi", ident, ident)(gen(), timeout=30):
            answers.append(a)
            with cv:
                q.append(a)
                cv.notify_all()
        check("bidi", answers == [b"re:m%d" % i for i in range(20)], len(answers))
        big = bytes((i * 7 + (i >> 10)) & 0xFF for i in range(16 * 1024 * 1024))
        r = uu("Unary")(big, timeout=60)
        check("16MiB", r == big[::-1], "%d bytes" % len(r))
    elif mode.startswith("channels:"):
        # N client connections (own subchannel each: never shared inside grpcio), 20
        # concurrent calls on each: tether shares its upstream connections among them.
        n = int(mode.split(":")[1])
        chans = [grpc.insecure_channel("127.0.0.1:%d" % port,
                                       options=OPTS + [("grpc.use_local_subchannel_pool", 1),
                                                       ("t.channel", i)])
                 for i in range(n)]
        fs = [c.unary_unary("/t.T/Unary", ident, ident).future(b"sleep:0.5", timeout=30)
              for c in chans for _ in range(20)]
        res = [f.result() for f in fs]
        check("channels", all(r == b"echo:sleep:0.5" for r in res), len(res))
        print("peers %s" % uu("Peers")(b"", timeout=10).decode(), flush=True)
    elif mode == "many":
        fs = [uu("Unary").future(b"sleep:0.5", timeout=30) for _ in range(200)]
        res = [f.result() for f in fs]
        check("many", all(r == b"echo:sleep:0.5" for r in res), len(res))
        print("peers %s" % uu("Peers")(b"", timeout=10).decode(), flush=True)
    elif mode.startswith("slow:"):
        pid = mode[5:]

        def rss():
            with open("/proc/%s/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
            return 0

        before = rss()
        call = ch.unary_stream("/t.T/Flood", ident, ident)(b"200", timeout=60)
        first = next(call)
        time.sleep(3)  # the consumer reads nothing more
        other = grpc.insecure_channel("127.0.0.1:%d" % port)
        n = int(other.unary_unary("/t.T/Produced", ident, ident)(b"", timeout=10))
        grown = rss() - before
        print("produced %d rss_growth_kib %d" % (n, grown), flush=True)
        check("slow", len(first) == 1024 * 1024 and n < 200, n)
        # Reading again, the stream completes: nothing was lost while it waited.
        rest = sum(1 for _ in call)
        check("slow_rest", rest == 199, rest)
    elif mode == "early":
        # Calls answered before their request stream ends, one after another: each must
        # give its upstream stream back (the backend takes 2 at a time).
        def endless():
            yield b"a"
            for _ in range(200):
                time.sleep(0.01)
                yield b"more"

        answers = [ch.stream_unary("/t.T/Early", ident, ident)(endless(), timeout=10) for _ in range(6)]
        check("early", answers == [b"early:a"] * 6, answers)
        check("after", uu("Unary")(b"x", timeout=10) == b"echo:x")
    elif mode == "die":
        got, code = [], None
        try:
            for m in ch.unary_stream("/t.T/Die", ident, ident)(b"", timeout=20):
                got.append(m)
        except grpc.RpcError as e:
            code, details = e.code(), e.details()
        check("died", len(got) == 3 and code == grpc.StatusCode.UNAVAILABLE, "%s %s %s" % (got, code, code and details))
        dead = got[0].split(b":")[0] if got else b"?"
        ports = [uu("Whoami")(b"", timeout=20) for _ in range(6)]
        check("survivor", all(p == ports[0] and p != dead for p in ports), "dead %s then %s" % (dead, ports))
    elif mode == "load":
        # 2,000 calls, 50 at a time, for 4 s or more: the backend's GOAWAYs (connection
        # age) land while calls are under way. (Under 1,000 calls a second: grpcio sends a
        # WINDOW_UPDATE per new stream, which tether's front counts against its flood
        # limit of 1,000 control frames a second.)
        failures = []
        for _ in range(40):
            fs = [uu("Unary").future(b"sleep:0.1", timeout=30) for _ in range(50)]
            for f in fs:
                try:
                    if f.result() != b"echo:sleep:0.1":
                        failures.append("wrong answer")
                except grpc.RpcError as e:
                    failures.append("%s %s" % (e.code(), e.details()))
        check("load", not failures, "failures=%d %s" % (len(failures), failures[:3]))
        print("peers %s" % uu("Peers")(b"", timeout=10).decode(), flush=True)
    elif mode.startswith("sessions:"):
        # N sessions created through tether (session_id policy, session_header =
        # "x-session"): the id comes back tagged in the metadata; 10 calls that send it
        # reach the server that made it, which sees its own untagged id.
        n = int(mode.split(":")[1])
        homes = set()
        for _ in range(n):
            home, call = uu("Session").with_call(b"create", timeout=20)
            tagged = dict(call.initial_metadata()).get("x-session", "")
            seen = set()
            for _ in range(10):
                r = uu("Session")(b"use", metadata=(("x-session", tagged),), timeout=20)
                seen.add(r.decode())
            home = home.decode()
            want = "s%s-" % home
            ok_all = len(seen) == 1 and all(
                x.split("|")[0] == home and x.split("|")[1].startswith(want) for x in seen)
            check("session", ok_all and tagged != "" and not tagged.startswith(want),
                  "home=%s tagged=%s seen=%s" % (home, tagged, sorted(seen)))
            homes.add(home)
        print("homes %d" % len(homes), flush=True)
    elif mode.startswith("users:"):
        # N users, each sending 6 calls with its `x-user` metadata (hash_key =
        # "header:x-user"): each user's calls reach one server; prints how many served.
        n = int(mode.split(":")[1])
        homes = set()
        for u in range(n):
            md = (("x-user", "user-%d" % u),)
            seen = {uu("Session")(b"use", metadata=md, timeout=20).decode().split("|")[0]
                    for _ in range(6)}
            check("user", len(seen) == 1, "user-%d on %s" % (u, sorted(seen)))
            homes |= seen
        print("homes %d" % len(homes), flush=True)
    elif mode == "unavailable":
        try:
            uu("Unary")(b"x", timeout=20)
            check("unavailable", False, "answered")
        except grpc.RpcError as e:
            check("unavailable", e.code() == grpc.StatusCode.UNAVAILABLE, "%s %s" % (e.code(), e.details()))
    elif mode == "limited":
        # A limit of 1 request a minute (burst 0): the first call is served, the next
        # ones are refused by tether as gRPC answers, RESOURCE_EXHAUSTED.
        first = uu("Unary")(b"one", timeout=20)
        check("first", first == b"echo:one", repr(first))
        for i in range(3):
            try:
                uu("Unary")(b"again", timeout=20)
                check("limited", False, "answered")
            except grpc.RpcError as e:
                check("limited", e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED,
                      "%s %s" % (e.code(), e.details()))
        print("limited ok", flush=True)
    elif mode == "deadline":
        # The client's deadline (grpc-timeout: 1 s) bounds tether's wait for the backend.
        try:
            uu("Unary")(b"sleep:5", timeout=1)
            check("deadline", False, "answered")
        except grpc.RpcError as e:
            check("deadline", e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, "%s %s" % (e.code(), e.details()))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        max_streams = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
        tls = sys.argv[5:7] if len(sys.argv) > 6 else None
        serve(int(sys.argv[2]), max_streams, int(sys.argv[4]) if len(sys.argv) > 4 else 0, tls)
    else:
        client(int(sys.argv[2]), sys.argv[3])
