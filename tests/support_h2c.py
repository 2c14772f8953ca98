"""An h2c server (Python's `h2` package, prior knowledge), one thread per connection, for
tests/h2_upstream.rs: tether's HTTP/2 upstreams seen from a plain HTTP/2 server.

usage: support_h2c.py PORT
  GET  /hello     200 text/plain "hello from h2c" (x-method, x-port, x-conn: this connection's
                  number, x-authority: the :authority received, x-te: the te received)
  POST /echo      200 with the request body echoed (sent within the client's windows),
                  x-received-length
  POST /trailers  200 "payload" then trailers grpc-status: 0, x-trailer: yes, and
                  x-echo-trailer: the request's x-checksum trailer (or "none")
  GET  /headers   200 text/plain, the request's fields one "name: value" line each (pseudo
                  fields too), and x-internal-debug: 1 in the answer
  GET  /goaway    200 "bye" (x-conn), then GOAWAY naming this stream the last one
                  processed: streams above it are never answered, and the connection
                  closes
Sockets time out after 30 s of silence.
"""
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events

COUNT = [0]
LOCK = threading.Lock()


def serve(sock, number):
    sock.settimeout(30)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    heads, bodies, pending, trailers = {}, {}, {}, {}

    def push(sid):
        data = pending.get(sid)
        if data is None:
            return
        while data:
            n = min(len(data), conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if n <= 0:
                break
            conn.send_data(sid, data[:n])
            data = data[n:]
        if data:
            pending[sid] = data
        else:
            del pending[sid]
            conn.end_stream(sid)

    def respond(sid):
        h = dict(heads.pop(sid))
        body = bytes(bodies.pop(sid, b""))
        path = h.get(b":path", b"").split(b"?")[0]
        if path == b"/hello":
            conn.send_headers(sid, [(b":status", b"200"), (b"content-type", b"text/plain"),
                                    (b"x-method", h.get(b":method", b"")),
                                    (b"x-conn", str(number).encode()),
                                    (b"x-port", sys.argv[1].encode()),
                                    (b"x-authority", h.get(b":authority", b"-")),
                                    (b"x-te", h.get(b"te", b"-"))])
            conn.send_data(sid, b"hello from h2c", end_stream=True)
        elif path == b"/headers":
            listed = b"".join(n + b": " + v + b"\n" for n, v in h.items())
            conn.send_headers(sid, [(b":status", b"200"), (b"content-type", b"text/plain"),
                                    (b"x-internal-debug", b"1"),
                                    (b"content-length", str(len(listed)).encode())])
            conn.send_data(sid, listed, end_stream=True)
        elif path == b"/echo":
            conn.send_headers(sid, [(b":status", b"200"), (b"x-received-length", str(len(body)).encode())])
            pending[sid] = body
            push(sid)
        elif path == b"/goaway":
            conn.send_headers(sid, [(b":status", b"200"), (b"x-conn", str(number).encode())])
            conn.send_data(sid, b"bye", end_stream=True)
            conn.close_connection(last_stream_id=sid)
            return True
        elif path == b"/trailers":
            conn.send_headers(sid, [(b":status", b"200"), (b"content-type", b"text/plain")])
            conn.send_data(sid, b"payload")
            echo = dict(trailers.pop(sid, [])).get(b"x-checksum", b"none")
            conn.send_headers(sid, [(b"grpc-status", b"0"), (b"x-trailer", b"yes"),
                                    (b"x-echo-trailer", echo)], end_stream=True)
        else:
            conn.send_headers(sid, [(b":status", b"404")], end_stream=True)

    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for e in conn.receive_data(data):
                if isinstance(e, h2.events.RequestReceived):
                    heads[e.stream_id] = e.headers
                    bodies[e.stream_id] = bytearray()
                elif isinstance(e, h2.events.DataReceived):
                    bodies.setdefault(e.stream_id, bytearray()).extend(e.data)
                    conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                elif isinstance(e, h2.events.TrailersReceived):
                    trailers[e.stream_id] = e.headers
                elif isinstance(e, h2.events.StreamEnded):
                    if respond(e.stream_id):
                        sock.sendall(conn.data_to_send())
                        return
                elif isinstance(e, h2.events.WindowUpdated):
                    for sid in list(pending):
                        push(sid)
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
    except (OSError, h2.exceptions.ProtocolError):
        return
    finally:
        sock.close()


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(sys.argv[1])))
    srv.listen(64)
    while True:
        s, _ = srv.accept()
        with LOCK:
            COUNT[0] += 1
            n = COUNT[0]
        threading.Thread(target=serve, args=(s, n), daemon=True).start()


if __name__ == "__main__":
    import h2.exceptions  # noqa: F401
    main()
