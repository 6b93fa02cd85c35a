# The Twisted counterpart of examples/line_client.rs, for comparing lengths (the guide's
# table). Run: python3 line_client.py HOST:PORT LINE
import sys

from twisted.internet import defer, endpoints, task
from twisted.protocols.basic import LineReceiver


class Ask(LineReceiver):
    def __init__(self, question):
        self.question, self.answer = question, defer.Deferred()

    def connectionMade(self):
        self.sendLine(self.question.encode())

    def lineReceived(self, line):
        self.answer.callback(line.decode())
        self.transport.loseConnection()

    def connectionLost(self, reason):
        if not self.answer.called:
            self.answer.errback(reason)


async def main(reactor, target, question):
    host, port = target.rsplit(":", 1)
    endpoint = endpoints.TCP4ClientEndpoint(reactor, host, int(port), timeout=5)
    ask = await endpoints.connectProtocol(endpoint, Ask(question))
    print(await ask.answer)


if len(sys.argv) != 3:
    sys.exit("usage: line_client.py HOST:PORT LINE")
task.react(lambda reactor: defer.ensureDeferred(main(reactor, *sys.argv[1:])))
