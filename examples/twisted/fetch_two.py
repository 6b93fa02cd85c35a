# The Twisted counterpart of examples/fetch_two.rs, for comparing lengths (the guide's
# table). Run: python3 fetch_two.py URL URL
import sys

from twisted.internet import defer, task
from twisted.web.client import Agent, readBody


async def main(reactor, *urls):
    agent = Agent(reactor)
    ds = [agent.request(b"GET", url.encode()).addCallback(readBody) for url in urls]
    bodies = await defer.gatherResults(ds, consumeErrors=True).addTimeout(10, reactor)
    for url, body in zip(urls, bodies):
        print("%s: %d bytes" % (url, len(body)))


task.react(lambda reactor: defer.ensureDeferred(main(reactor, *sys.argv[1:])))
