"""A real gRPC server and client (grpcio) for the proxy's gRPC tests.

No generated code: the one service, sluice.test.Echo, takes and returns
raw bytes through grpcio's generic handlers.

  peer.py server NAME [--tls CERT KEY]
      Serves on 127.0.0.1 (a free port), prints "listening PORT", and
      runs until killed.
      Say(x)      -> b"NAME: x"; x == b"missing" aborts with NOT_FOUND.
      Count(n)    -> n messages b"NAME 1" .. b"NAME n" (server streaming).
  peer.py client TARGET AUTHORITY METHOD MESSAGE
      Calls through TARGET (host:port, plaintext h2c) with :authority
      AUTHORITY; prints one line per reply, or "status CODE_NAME DETAILS".
"""

import sys
from concurrent import futures

import grpc

SERVICE = "sluice.test.Echo"


def serve(name, tls):
    def say(request, context):
        if request == b"missing":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        return name.encode() + b": " + request

    def count(request, context):
        for i in range(1, int(request.decode()) + 1):
            yield f"{name} {i}".encode()

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Say": grpc.unary_unary_rpc_method_handler(say),
            "Count": grpc.unary_stream_rpc_method_handler(count),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    if tls:
        with open(tls[0], "rb") as c, open(tls[1], "rb") as k:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening {port}", flush=True)
    # Until the test kills it.
    server.wait_for_termination()


def call(target, authority, method, message):
    options = [("grpc.default_authority", authority)]
    with grpc.insecure_channel(target, options=options) as channel:
        path = f"/{SERVICE}/{method}"
        try:
            if method == "Count":
                stub = channel.unary_stream(path)
                for reply in stub(message.encode(), timeout=20):
                    print(reply.decode(), flush=True)
            else:
                stub = channel.unary_unary(path)
                print(stub(message.encode(), timeout=20).decode(), flush=True)
        except grpc.RpcError as e:
            print(f"status {e.code().name} {e.details()}", flush=True)


def main():
    args = sys.argv[1:]
    if args[:1] == ["server"]:
        tls = args[3:5] if args[2:3] == ["--tls"] else None
        serve(args[1], tls)
    elif args[:1] == ["client"] and len(args) == 5:
        call(*args[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
