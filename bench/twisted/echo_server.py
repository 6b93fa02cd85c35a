"""The Twisted side of the echo benchmark: a plain `twisted.internet.protocol` echo
server on the epoll reactor (Twisted's default on Linux), written as Twisted's own
`docs/core/examples/echoserv.py`.

    python3 twisted/echo_server.py --port 0   # prints "listening on 127.0.0.1:PORT"

Serves until killed (SIGINT/SIGTERM stop the reactor). Without Twisted it prints the
reason to stderr and exits with status 3.
"""

import argparse
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--backlog", type=int, default=1024,
                        help="listen backlog (Twisted's default is 50; the Rust servers use 1024)")
    args = parser.parse_args()
    try:
        from twisted.internet import epollreactor

        epollreactor.install()
        from twisted.internet import protocol, reactor
    except ImportError as e:
        print(f"echo_server.py: Twisted is not available: {e}", file=sys.stderr)
        return 3

    class Echo(protocol.Protocol):
        def dataReceived(self, data):
            self.transport.write(data)

    factory = protocol.Factory()
    factory.protocol = Echo
    port = reactor.listenTCP(args.port, factory, backlog=args.backlog, interface=args.host)
    addr = port.getHost()
    print(f"listening on {addr.host}:{addr.port}", flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
