//! tether-http: HTTP/1.1 heads and body framing. Pure: no sockets.
