"""The Twisted side of the HTTP benchmark: a `twisted.web.server.Site` whose root
resource answers `GET /` with `Hello, World!` (13 bytes, text/plain), on the epoll
reactor (Twisted's default on Linux). Other paths are 404 (`NoResource`).

    python3 twisted/http_server.py --port 0   # prints "listening on 127.0.0.1:PORT"

Access logging is off (a `Site` logs every request by default; the Rust servers log
nothing). Serves until killed. Without Twisted it prints the reason to stderr and exits
with status 3.
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
        from twisted.internet import reactor
        from twisted.web import resource, server
    except ImportError as e:
        print(f"http_server.py: Twisted is not available: {e}", file=sys.stderr)
        return 3

    class Hello(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            if request.path != b"/":
                request.setResponseCode(404)
                return b"Not Found"
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"Hello, World!"

    class QuietSite(server.Site):
        def log(self, request):
            pass

    site = QuietSite(Hello())
    port = reactor.listenTCP(args.port, site, backlog=args.backlog, interface=args.host)
    addr = port.getHost()
    print(f"listening on {addr.host}:{addr.port}", flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
