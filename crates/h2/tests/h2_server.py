"""A real HTTP/2 server (Python's `h2` package, h2c with prior knowledge) for the client
tests of tether-h2 (crates/h2/tests/client_real_server.rs).

usage: python3 h2_server.py MAX_CONCURRENT_STREAMS [CERT_PEM KEY_PEM]
Prints the port it listens on (127.0.0.1), serves ONE connection, then exits. With a
certificate and key it speaks TLS and insists on ALPN `h2` (anything else: it exits).

  GET  /hello     200 text/plain "hello from python h2" (x-method: the method)
  POST /echo      200 with the request body echoed, x-received-length and
                  x-received-sha256 of what arrived (window updates only as data arrives,
                  its body sent within the client's windows)
  POST /trailers  200 application/grpc "payload", then trailers grpc-status: 0 and
                  x-echo-trailer: the request's x-checksum trailer
  GET  /goaway    200 "bye", then GOAWAY with this stream as the last one processed:
                  streams the client opened after it are never answered

Everything is bounded: the socket times out after 30 s of silence.
"""
import hashlib
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


def main():
    max_streams = int(sys.argv[1])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(30)
    print(srv.getsockname()[1], flush=True)
    sock, _ = srv.accept()
    sock.settimeout(30)
    if len(sys.argv) > 3:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        ctx.set_alpn_protocols(["h2"])
        sock = ctx.wrap_socket(sock, server_side=True)
        if sock.selected_alpn_protocol() != "h2":
            print("ALPN was not h2:", sock.selected_alpn_protocol(), file=sys.stderr, flush=True)
            sock.close()
            return
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    conn.local_settings = h2.settings.Settings(
        client=False,
        initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams},
    )
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    requests = {}  # stream id -> {"headers", "body", "trailers"}
    pending = {}  # stream id -> [body left to send, trailers or None]
    closing = False

    def respond(sid):
        nonlocal closing
        r = requests.pop(sid)
        h = r["headers"]
        path, method = h[b":path"], h[b":method"]
        if path == b"/hello":
            conn.send_headers(
                sid, [(b":status", b"200"), (b"content-type", b"text/plain"), (b"x-method", method)]
            )
            pending[sid] = [b"hello from python h2", None]
        elif path == b"/echo":
            body = bytes(r["body"])
            conn.send_headers(
                sid,
                [
                    (b":status", b"200"),
                    (b"x-received-length", str(len(body)).encode()),
                    (b"x-received-sha256", hashlib.sha256(body).hexdigest().encode()),
                ],
            )
            pending[sid] = [body, None]
        elif path == b"/trailers":
            conn.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/grpc")])
            trailers = [
                (b"grpc-status", b"0"),
                (b"x-echo-trailer", r["trailers"].get(b"x-checksum", b"none")),
            ]
            pending[sid] = [b"payload", trailers]
        elif path == b"/goaway":
            conn.send_headers(sid, [(b":status", b"200")])
            conn.send_data(sid, b"bye", end_stream=True)
            conn.close_connection(error_code=0, last_stream_id=sid)
            closing = True
        else:
            conn.send_headers(sid, [(b":status", b"404")], end_stream=True)

    def send_pending():
        for sid in list(pending):
            body, trailers = pending[sid]
            while body:
                n = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size, len(body))
                if n <= 0:
                    break
                conn.send_data(sid, body[:n])
                body = body[n:]
            pending[sid][0] = body
            if not body:
                if trailers:
                    conn.send_headers(sid, trailers, end_stream=True)
                else:
                    conn.end_stream(sid)
                del pending[sid]

    while True:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        if not data:
            break
        if closing:
            continue
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            print("protocol error:", e, file=sys.stderr, flush=True)
            sock.sendall(conn.data_to_send())
            break
        for ev in events:
            if closing:
                break
            if isinstance(ev, h2.events.RequestReceived):
                requests[ev.stream_id] = {
                    "headers": dict(ev.headers),
                    "body": bytearray(),
                    "trailers": {},
                }
            elif isinstance(ev, h2.events.DataReceived):
                requests[ev.stream_id]["body"] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                requests[ev.stream_id]["trailers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.StreamEnded):
                if ev.stream_id in requests:
                    respond(ev.stream_id)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                closing = True
        if not closing:
            send_pending()
        sock.sendall(conn.data_to_send())
    sock.close()


if __name__ == "__main__":
    main()
