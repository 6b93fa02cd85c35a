#!/usr/bin/env python3
"""Twisted's HTTP client (twisted.web.client.Agent) over HTTPS against a server under test.

Usage: twisted_https_agent.py PORT CA_FILE

Connects to https://localhost:PORT/, trusting only the CA in CA_FILE (PEM), with
Twisted's browser-like policy (certificate chain and host name checked). Prints one line
per exchange: NAME STATUS BODY_HEX; or, if the TLS connection is refused, one line
`refused EXCEPTION_CLASSES`. The requests go one after another through a persistent
pool of one connection, so they share it. Exits 1 with a message on any other failure.
Needs Twisted's TLS extra (pip install 'twisted[tls]': pyOpenSSL, service_identity).
"""
import sys
from io import BytesIO

from twisted.internet import defer, reactor, ssl, task
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    FileBodyProducer,
    HTTPConnectionPool,
    ResponseNeverReceived,
    readBody,
)
from twisted.web.http_headers import Headers


@defer.inlineCallbacks
def run(port, ca_file):
    with open(ca_file, "rb") as f:
        trust = ssl.Certificate.loadPEM(f.read())
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 1
    agent = Agent(
        reactor,
        contextFactory=BrowserLikePolicyForHTTPS(trustRoot=trust),
        pool=pool,
        connectTimeout=10,
    )
    base = ("https://localhost:%d" % port).encode("ascii")

    @defer.inlineCallbacks
    def one(name, method, path, body=None):
        resp = yield agent.request(method, base + path, Headers({}), body)
        data = yield readBody(resp)
        print(name, resp.code, data.hex() or "-", flush=True)

    try:
        yield one("get1", b"GET", b"/")
    except ResponseNeverReceived as e:
        kinds = sorted({type(r.value).__name__ for r in e.reasons})
        print("refused", ",".join(kinds), flush=True)
        return
    yield one("get2", b"GET", b"/")
    yield one("post", b"POST", b"/echo", FileBodyProducer(BytesIO(bytes(range(256)) * 256)))
    yield one("missing", b"GET", b"/nowhere")
    yield pool.closeCachedConnections()


def main():
    failed = []

    def done(result):
        if reactor.running:
            reactor.stop()

    def fail(f):
        failed.append(f.getTraceback())
        done(None)

    d = run(int(sys.argv[1]), sys.argv[2])
    d.addCallbacks(done, fail)
    timeout = task.deferLater(reactor, 30, lambda: None)
    timeout.addCallback(lambda _: fail_timeout(failed))
    reactor.run()
    if failed:
        sys.stderr.write("twisted_https_agent: %s\n" % failed[0])
        sys.exit(1)


def fail_timeout(failed):
    failed.append("timed out after 30 s")
    if reactor.running:
        reactor.stop()


if __name__ == "__main__":
    main()
