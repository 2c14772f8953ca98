"""One HTTP/2 GET over h2c (prior knowledge) with Python's `h2` package, for tether's
end-to-end tests (tests/header_rules.rs).

usage: python3 support_h2_get.py PORT PATH [NAME=VALUE ...]
Prints one JSON object: {"status": int, "headers": [[name, value], ...], "body": text}.
Bounded: the socket gives up after 10 s.
"""
import json
import socket
import sys

import h2.config
import h2.connection
import h2.events


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    extra = [tuple(a.split("=", 1)) for a in sys.argv[3:]]
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    headers = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "h2.example:%d" % port),
        (":path", path),
    ] + [(n.lower(), v) for n, v in extra]
    conn.send_headers(1, headers, end_stream=True)
    sock.sendall(conn.data_to_send())
    status, got, body, done = None, [], b"", False
    while not done:
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                for n, v in ev.headers:
                    n, v = n.decode(), v.decode()
                    if n == ":status":
                        status = int(v)
                    else:
                        got.append([n, v])
            elif isinstance(ev, h2.events.DataReceived):
                body += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        sock.sendall(conn.data_to_send())
    print(json.dumps({"status": status, "headers": got, "body": body.decode("latin-1")}))


main()
