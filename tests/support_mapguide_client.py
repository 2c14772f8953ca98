"""Many requests over one keep-alive connection per port, HTTP/1.1 (http.client) or h2c
(Python's `h2`, sequential streams), for tests/mapguide.rs.

usage: python3 support_mapguide_client.py h1|h2 < requests.json
requests.json: [[port, method, target, body or null], ...]; a body is sent as
application/x-www-form-urlencoded with its Content-Length.
Prints a JSON list of [status, body] in the same order. Bounded: sockets give up after 10 s.
"""
import http.client
import json
import socket
import sys

import h2.config
import h2.connection
import h2.events


def h1(reqs):
    conns, out = {}, []
    for port, method, target, body in reqs:
        c = conns.get(port) or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conns[port] = c
        headers = {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        c.request(method, target, body=body.encode() if body is not None else None, headers=headers)
        r = c.getresponse()
        out.append([r.status, r.read().decode("latin-1")])
    return out


class H2:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.port = port

    def request(self, method, target, body):
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":scheme", "http"),
                   (":authority", "127.0.0.1:%d" % self.port), (":path", target)]
        if body is not None:
            data = body.encode()
            headers += [("content-type", "application/x-www-form-urlencoded"),
                        ("content-length", str(len(data)))]
            self.conn.send_headers(sid, headers)
            self.conn.send_data(sid, data, end_stream=True)
        else:
            self.conn.send_headers(sid, headers, end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        status, got = None, b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise SystemExit("connection closed")
            done = False
            for ev in self.conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = int(dict(ev.headers)[b":status"])
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                    got += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)) and ev.stream_id == sid:
                    done = True
            self.sock.sendall(self.conn.data_to_send())
            if done:
                return [status, got.decode("latin-1")]


def h2c(reqs):
    conns, out = {}, []
    for port, method, target, body in reqs:
        c = conns.get(port) or H2(port)
        conns[port] = c
        out.append(c.request(method, target, body))
    return out


reqs = json.load(sys.stdin)
print(json.dumps(h1(reqs) if sys.argv[1] == "h1" else h2c(reqs)))
