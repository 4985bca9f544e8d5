#!/usr/bin/env python3
"""Reference: Python's socketserver, written the way the classic tutorial
writes it (recv(1024), sendall(data.upper())), looped so that one
connection can carry many requests, and without .strip() so the reply is
exactly the uppercase protocol of the examples.

    ref_python.py --mode sync|threading|forking [--listen URL] [--quiet]

URL is tcp://HOST:PORT or unix:/path. Everything else is left at Python's
defaults (request_queue_size 5, ForkingMixIn.max_children 40, no
TCP_NODELAY), as a tutorial reader's server has them."""
import os
import signal
import socketserver
import sys


class MyTCPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(1024)
            if not data:
                break
            self.request.sendall(data.upper())


MIXINS = {
    "sync": (),
    "threading": (socketserver.ThreadingMixIn,),
    "forking": (socketserver.ForkingMixIn,),
}


def parse(argv):
    opts = {"mode": "sync", "listen": "tcp://127.0.0.1:9999"}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("--mode", "--listen") and args:
            opts[arg[2:]] = args.pop(0)
        elif arg != "--quiet":
            sys.exit("usage: ref_python.py --mode sync|threading|forking [--listen URL]")
    if opts["mode"] not in MIXINS:
        sys.exit("ref_python.py: unknown mode " + opts["mode"])
    return opts


def make_server(mode, url):
    if url.startswith("unix:"):
        base, address = socketserver.UnixStreamServer, url[len("unix:"):]
    elif url.startswith("tcp://"):
        host, _, port = url[len("tcp://"):].rpartition(":")
        base, address = socketserver.TCPServer, (host.strip("[]"), int(port))
        if ":" in host:
            base = type("TCP6Server", (base,), {"address_family": __import__("socket").AF_INET6})
    else:
        sys.exit("ref_python.py: unsupported URL " + url)
    cls = type("Server", MIXINS[mode] + (base,), {"allow_reuse_address": True})
    return cls(address, MyTCPHandler)


def on_stop(signum, frame):
    raise KeyboardInterrupt


def main():
    opts = parse(sys.argv[1:])
    server = make_server(opts["mode"], opts["listen"])
    if opts["listen"].startswith("unix:"):
        url = opts["listen"]
    else:
        host, port = server.server_address[:2]
        url = "tcp://%s:%d" % ("[%s]" % host if ":" in host else host, port)
    print("listening on " + url, flush=True)
    parent = os.getpid()
    signal.signal(signal.SIGTERM, on_stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if os.getpid() == parent:
            server.server_close()
            if opts["listen"].startswith("unix:"):
                os.unlink(url[len("unix:"):])


if __name__ == "__main__":
    main()
