"""gRPC servers with the standard health service (grpcio-health-checking), for
tests/grpc_health.rs; no protoc (generic handlers with bytes (de)serializers).

  support_grpc_health.py server PORT NAME   serves on PORT (h2c) until killed:
                                            t.T/Name answers NAME; t.T/Set sets the health
                                            of "" and "t.T" to the request (SERVING or
                                            NOT_SERVING); grpc.health.v1.Health (both start
                                            SERVING)
  support_grpc_health.py set PORT STATUS    calls t.T/Set on PORT directly
  support_grpc_health.py names PORT N       N calls of t.T/Name through PORT, one line:
                                            name=count for each name, "failed=k" for the
                                            failed calls
"""
import collections
import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

ident = lambda b: b


def serve(port, name):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    servicer = health.HealthServicer()
    for svc in ("", "t.T"):
        servicer.set(svc, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)

    def name_of(req, ctx):
        return name.encode()

    def set_status(req, ctx):
        status = health_pb2.HealthCheckResponse.ServingStatus.Value(req.decode())
        for svc in ("", "t.T"):
            servicer.set(svc, status)
        return b"ok"

    handlers = {
        "Name": grpc.unary_unary_rpc_method_handler(name_of, ident, ident),
        "Set": grpc.unary_unary_rpc_method_handler(set_status, ident, ident),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", handlers),))
    server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    server.wait_for_termination()


def call(port, method, req):
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        return ch.unary_unary("/t.T/" + method, ident, ident)(req, timeout=5)


def names(port, n):
    counts = collections.Counter()
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        f = ch.unary_unary("/t.T/Name", ident, ident)
        for _ in range(n):
            try:
                counts[f(b"", timeout=5).decode()] += 1
            except grpc.RpcError:
                counts["failed"] += 1
    print(" ".join("%s=%d" % kv for kv in sorted(counts.items())))


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "server":
        serve(port, sys.argv[3])
    elif mode == "set":
        print(call(port, "Set", sys.argv[3].encode()).decode())
    elif mode == "names":
        names(port, int(sys.argv[3]))
