#!/usr/bin/env python3
"""Python's http.server (as `python3 -m http.server`) for our HTTP client to talk to.

Usage: python_http_server.py DIRECTORY

Serves DIRECTORY as `python3 -m http.server --bind 127.0.0.1 0` does (HTTP/1.0, one
request per connection), plus POST /echo (the body back, with Content-Length) and
GET /nolength (a body ended by closing the connection). Prints
"listening on 127.0.0.1:PORT" once it accepts connections, then serves until killed.
"""
import functools
import http.server
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/nolength":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"no length, ended by close\n")
            return
        super().do_GET()

    def do_POST(self):
        if self.path != "/echo":
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    handler = functools.partial(Handler, directory=sys.argv[1])
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    host, port = httpd.server_address[:2]
    print("listening on %s:%d" % (host, port), flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
