"""A test upstream for tether's end-to-end tests (HTTP/1.1, keep-alive).

GET /whoami        -> "port=<client port of this connection> n=<requests on it>"
GET /chunked?n=K   -> a chunked response of K chunks "chunk-i\n"
GET /close         -> a body delimited by closing the connection (no length)
POST /echo         -> the request body back (Content-Length or chunked request)
GET /head          -> the request head as received
GET /slow?ms=N     -> waits N ms, then answers "slow"
usage: python3 support_upstream.py PORT [CERT KEY]   (with CERT and KEY: HTTPS)
"""
import http.server
import sys
import time
import urllib.parse


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, body, ctype="text/plain"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n)

    def do_GET(self):
        self.server.count[self.client_address] = self.server.count.get(self.client_address, 0) + 1
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/whoami":
            n = self.server.count[self.client_address]
            self.send_body(f"port={self.client_address[1]} n={n}".encode())
        elif url.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(int(q.get("n", ["3"])[0])):
                data = f"chunk-{i}\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"until close\n" * 100)
            self.close_connection = True
        elif url.path == "/head":
            body = (self.requestline + "\r\n" + str(self.headers)).encode()
            self.send_body(body)
        elif url.path == "/slow":
            time.sleep(int(q.get("ms", ["1000"])[0]) / 1000)
            self.send_body(b"slow")
        else:
            self.send_error(404)

    def do_POST(self):
        body = self.read_body()
        self.send_body(body, "application/octet-stream")


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True
    count = {}


server = Server(("127.0.0.1", int(sys.argv[1])), Handler)
if len(sys.argv) > 3:
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
