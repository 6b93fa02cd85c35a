#!/usr/bin/env python3
"""A twisted.web server for our HTTP client to talk to.

Usage: twisted_web_server.py

Listens on 127.0.0.1, a free port, and prints "listening on 127.0.0.1:PORT" once it
accepts connections. Routes: GET / (a fixed text), POST /echo (the body back),
GET /stream (a chunked response: written in pieces, no Content-Length),
GET /big (1 MiB with Content-Length), anything else 404. Serves until killed.
"""
from twisted.internet import reactor
from twisted.web import resource, server


class Root(resource.Resource):
    isLeaf = False

    def getChild(self, name, request):
        if name == b"":
            return self
        return resource.Resource.getChild(self, name, request)

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        request.setHeader(b"x-peer", b"twisted")
        return b"hello from twisted.web\n"


class Echo(resource.Resource):
    isLeaf = True

    def render_POST(self, request):
        request.setHeader(b"content-type", b"application/octet-stream")
        return request.content.read()


class Stream(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        # No Content-Length: twisted.web answers HTTP/1.1 with chunked encoding.
        pieces = [b"one ", b"two ", b"three\n"]

        def more():
            if pieces:
                request.write(pieces.pop(0))
                reactor.callLater(0.001, more)
            else:
                request.finish()

        more()
        return server.NOT_DONE_YET


class Big(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        return bytes(range(256)) * 4096


def main():
    root = Root()
    root.putChild(b"echo", Echo())
    root.putChild(b"stream", Stream())
    root.putChild(b"big", Big())
    port = reactor.listenTCP(0, server.Site(root), interface="127.0.0.1")
    addr = port.getHost()
    reactor.callWhenRunning(lambda: print("listening on %s:%d" % (addr.host, addr.port), flush=True))
    reactor.run()


if __name__ == "__main__":
    main()
