# The Twisted counterpart of examples/kv_server.rs, for comparing lengths (the guide's
# table). Run: python3 kv_server.py --port 7200; test: trial kv_server.py
import argparse

from twisted.internet import protocol, reactor, task
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import LineReceiver
from twisted.trial import unittest


class Kv(LineReceiver):
    def __init__(self, store, clock):
        self.store, self.clock = store, clock

    def lineReceived(self, line):
        parts = line.decode().split(" ", 2)
        if parts[0] == "SET" and len(parts) == 3:
            self.store[parts[1]] = parts[2]
            self.sendLine(b"OK")
        elif parts[0] == "GET" and len(parts) == 2:
            d = task.deferLater(self.clock, 0.01, self.store.get, parts[1], "NOT FOUND")
            d.addCallback(lambda value: self.sendLine(value.encode()))
        else:
            self.sendLine(b"ERR")


class KvFactory(protocol.Factory):
    def __init__(self, clock):
        self.store, self.clock = {}, clock

    def buildProtocol(self, addr):
        return Kv(self.store, self.clock)


class KvTest(unittest.TestCase):
    def test_get_answers_when_the_timer_fires(self):
        clock = task.Clock()
        p, t = KvFactory(clock).buildProtocol(None), StringTransport()
        p.makeConnection(t)
        p.dataReceived(b"SET a 1\r\nGET a\r\nGET b\r\n")
        self.assertEqual(t.value(), b"OK\r\n")
        clock.advance(0.01)
        self.assertEqual(t.value(), b"OK\r\n1\r\nNOT FOUND\r\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=7200)
    port = reactor.listenTCP(parser.parse_args().port, KvFactory(reactor), interface="127.0.0.1")
    print("listening on %s:%d" % (port.getHost().host, port.getHost().port), flush=True)
    reactor.run()
