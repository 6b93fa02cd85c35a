#!/usr/bin/env python3
"""Python's http.client against a server under test.

Usage: http_client.py HOST:PORT

Prints one line per exchange: NAME STATUS BODY_HEX HEADERS, where HEADERS is
name=hex(value) pairs joined by commas (names lower-cased); "-" for an empty field.
The first two exchanges go over one HTTPConnection (keep-alive).
"""
import http.client
import sys


def line(name, resp, body):
    headers = ",".join(
        "%s=%s" % (k.lower(), v.encode("latin-1").hex()) for k, v in resp.getheaders()
    )
    print(name, resp.status, body.hex() or "-", headers or "-", flush=True)


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    # Keep-alive: two requests on one connection; /peer answers the client's address.
    for name in ("peer1", "peer2"):
        conn.request("GET", "/peer")
        resp = conn.getresponse()
        line(name, resp, resp.read())
    conn.request("GET", "/")
    resp = conn.getresponse()
    line("get", resp, resp.read())
    body = bytes(range(256)) * 64
    conn.request("POST", "/echo", body=body, headers={"Content-Type": "application/octet-stream"})
    resp = conn.getresponse()
    line("post", resp, resp.read())
    conn.request("HEAD", "/")
    resp = conn.getresponse()
    line("head", resp, resp.read())
    # An iterable body with encode_chunked: a chunked upload.
    conn.request("POST", "/echo", body=iter([b"abc", b"", b"defgh", b"ij"]), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked"})
    resp = conn.getresponse()
    line("chunked", resp, resp.read())
    conn.request("GET", "/nowhere")
    resp = conn.getresponse()
    line("missing", resp, resp.read())
    conn.close()


if __name__ == "__main__":
    main()
