#!/usr/bin/env python3
"""Twisted's HTTP client (twisted.web.client.Agent) against a server under test.

Usage: twisted_agent_client.py HOST:PORT

Prints one line per exchange, as http_client.py: NAME STATUS BODY_HEX HEADERS.
The requests go one after another through a persistent connection pool, so the two
/peer requests share a connection. Exits 1 with a message on any failure.
"""
import sys
from io import BytesIO

from twisted.internet import defer, reactor, task
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH


class UnknownLengthProducer(FileBodyProducer):
    """A body whose length the Agent does not know: it is sent chunked."""

    def __init__(self, data):
        FileBodyProducer.__init__(self, BytesIO(data), readSize=7)
        self.length = UNKNOWN_LENGTH


@defer.inlineCallbacks
def run(base):
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 1
    agent = Agent(reactor, pool=pool, connectTimeout=10)

    @defer.inlineCallbacks
    def one(name, method, path, body=None, headers=None):
        resp = yield agent.request(method, base + path, Headers(headers or {}), body)
        data = yield readBody(resp)
        pairs = []
        for k, vs in resp.headers.getAllRawHeaders():
            for v in vs:
                pairs.append("%s=%s" % (k.decode("latin-1").lower(), v.hex()))
        # Agent keeps Content-Length (a connection-control field) out of resp.headers
        # and reports it as resp.length; print it under its own name.
        if resp.length is not UNKNOWN_LENGTH:
            pairs.append("agent.length=%s" % str(resp.length).encode("ascii").hex())
        print(name, resp.code, data.hex() or "-", ",".join(pairs) or "-", flush=True)

    yield one("peer1", b"GET", b"/peer")
    yield one("peer2", b"GET", b"/peer")
    yield one("get", b"GET", b"/")
    body = bytes(range(256)) * 64
    yield one("post", b"POST", b"/echo", FileBodyProducer(BytesIO(body)))
    yield one("chunked", b"POST", b"/echo", UnknownLengthProducer(b"twisted chunked upload"))
    yield one("head", b"HEAD", b"/")
    yield one("missing", b"GET", b"/nowhere")
    yield pool.closeCachedConnections()


def main():
    base = ("http://" + sys.argv[1]).encode("ascii")
    failed = []

    def done(result):
        if isinstance(result, Exception) or hasattr(result, "getTraceback"):
            failed.append(result)
            sys.stderr.write(result.getTraceback() if hasattr(result, "getTraceback") else str(result))
        reactor.stop()

    def start():
        d = run(base)
        d.addBoth(done)

    reactor.callWhenRunning(start)
    reactor.run()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
