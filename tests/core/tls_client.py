#!/usr/bin/env python3
"""A TLS client made of Python's ssl module, for tests/core/test_tls.c.

    tls_client.py ADDRESS MODE [options]

ADDRESS is HOST:PORT or unix:PATH; --proxy-header LINE sends a PROXY
protocol v1 header first, as a balancer in front would. It prints what it saw on stdout, one
line per fact, and exits 0; a TLS or socket failure prints
"ERROR <class>: <text>" and exits 1. Every wait is bounded (--timeout).

Modes:
  lines       a handshake, then each --line sent and one reply line read
              and printed; --close-notify ends with close_notify
  plain       an HTTP request in clear text; prints "closed" at EOF
  garbage     4 KiB of random bytes; prints "closed" at EOF
  truncated   the first half of a real ClientHello, then our end of the
              connection shut; prints "closed" at EOF
  stall       the first half of a ClientHello, then nothing; prints
              "closed after MS" when the server closes
  silent      nothing at all; prints "closed after MS"
  midrecord   a handshake, then part of a record, then close
  idle        a handshake, then nothing; prints "closed after MS"
  goodbye     a handshake, each --line and its reply, then nothing; prints
              how the server ended the connection: "end close_notify" (its
              close_notify alert, RFC 8446 6.1), "end eof" (a bare end of
              the connection), "end reset" or "end timeout"
  vanish      a handshake, "big\\n", then a reset while the reply comes
  listen      a handshake, then two lines read before anything is sent
              (the server writes from another thread), then "bye\\n"
  oneflight   a handshake whose last client flight (Finished) goes out in
              one write with the --line lines; prints "replies N" and
              "last LINE" as pipeline does
  pipeline    a handshake, then --count lines of --size bytes (the
              newline included), one record each, sent back to back in
              one write while the replies are read; prints "replies N"
              (lines received before the server closed or --timeout) and
              "last LINE"
"""
import argparse
import os
import socket
import ssl
import struct
import sys
import threading
import time


def connect(address, timeout):
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address[5:])
        return sock
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(args.ca)
    ctx.check_hostname = args.sni is not None
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    if args.version:
        v = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[args.version]
        ctx.minimum_version = ctx.maximum_version = v
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn.split(","))
    return ctx


def read_line(tls):
    line = b""
    while not line.endswith(b"\n"):
        chunk = tls.recv(1)
        if not chunk:
            break
        line += chunk
    return line.decode(errors="replace").rstrip("\n")


def wait_close(sock, started):
    """Reads until the server closes; returns the milliseconds since started."""
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, ssl.SSLError):
        pass
    return int((time.monotonic() - started) * 1000)


def client_hello(ctx):
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def handshake_in_memory(sock, ctx, with_finished=()):
    """A handshake through memory BIOs, so a test can cut records itself;
    the lines with_finished go in the same write as the client's last
    flight."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            incoming.write(chunk)
    for line in with_finished:
        obj.write(line.encode() + b"\n")
    sock.sendall(outgoing.read())
    return obj, incoming, outgoing


def mode_lines(sock, args):
    tls = context(args).wrap_socket(sock, server_hostname=args.sni)
    print("version", tls.version())
    for line in args.line:
        tls.sendall(line.encode() + b"\n")
        print("reply", read_line(tls))
    if args.close_notify:
        tls.unwrap()
    tls.close()


def mode_raw(sock, args):
    started = time.monotonic()
    if args.mode == "plain":
        sock.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
    elif args.mode == "garbage":
        sock.sendall(os.urandom(4096))
    elif args.mode in ("truncated", "stall"):
        hello = client_hello(context(args))
        sock.sendall(hello[: len(hello) // 2])
        if args.mode == "truncated":
            sock.shutdown(socket.SHUT_WR)
    ms = wait_close(sock, started)
    print("closed" if args.mode not in ("stall", "silent") else "closed after %d" % ms)


def mode_midrecord(sock, args):
    obj, _, outgoing = handshake_in_memory(sock, context(args))
    if obj.version() == "TLSv1.3":
        sock.recv(65536)  # the server's session tickets: its handshake is over
    obj.write(b"hello\n")
    record = outgoing.read()
    sock.sendall(record[:-3])
    sock.close()
    print("sent part of a record")


def mode_idle(sock, args):
    tls = context(args).wrap_socket(sock, server_hostname=args.sni)
    started = time.monotonic()
    print("closed after %d" % wait_close(tls, started))


def mode_goodbye(sock, args):
    tls = context(args).wrap_socket(sock, server_hostname=args.sni, suppress_ragged_eofs=False)
    for line in args.line:
        tls.sendall(line.encode() + b"\n")
        print("reply", read_line(tls), flush=True)
    try:
        while tls.recv(4096):
            pass
        print("end close_notify")  # recv returns b"" only after the alert
    except ssl.SSLEOFError:
        print("end eof")
    except ConnectionResetError:
        print("end reset")
    except socket.timeout:
        print("end timeout")


def mode_vanish(sock, args):
    tls = context(args).wrap_socket(sock, server_hostname=args.sni)
    tls.sendall(b"big\n")
    tls.recv(1)  # the reply has begun
    tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    tls.close()  # no close_notify: wrap_socket's close sends none
    print("reset")


def mode_listen(sock, args):
    tls = context(args).wrap_socket(sock, server_hostname=args.sni)
    print("first", read_line(tls))
    print("second", read_line(tls))
    tls.sendall(b"bye\n")
    print("last", read_line(tls))
    tls.close()


def pipelined_records(obj, outgoing, count, size):
    """count lines of size bytes ("x..." and a newline), one record each."""
    for i in range(count):
        body = b"%d" % i
        obj.write(body + b"x" * (size - len(body) - 1) + b"\n")
    return outgoing.read()


def read_replies(sock, obj, incoming, count):
    """Reply lines until count, the server's close or the timeout."""
    replies, last, partial = 0, b"", b""
    try:
        while replies < count:
            try:
                data = obj.read(65536)
                if not data:
                    break  # the server's close_notify
                partial += data
            except ssl.SSLWantReadError:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                incoming.write(chunk)
                continue
            *lines, partial = partial.split(b"\n")
            replies += len(lines)
            last = lines[-1] if lines else last
    except (socket.timeout, ConnectionResetError, ssl.SSLError):
        pass
    return replies, last


def mode_oneflight(sock, args):
    obj, incoming, _ = handshake_in_memory(sock, context(args), args.line)
    replies, last = read_replies(sock, obj, incoming, len(args.line))
    print("replies %d" % replies)
    print("last %s" % last.decode(errors="replace"))


def mode_pipeline(sock, args):
    obj, incoming, outgoing = handshake_in_memory(sock, context(args))
    records = pipelined_records(obj, outgoing, args.count, args.size)
    sender = threading.Thread(target=sock.sendall, args=(records,), daemon=True)
    sender.start()  # the replies are read meanwhile: neither side's buffers fill
    replies, last = read_replies(sock, obj, incoming, args.count)
    print("replies %d" % replies)
    print("last %s" % last.decode(errors="replace"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("address")
    p.add_argument("mode")
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--version", choices=["1.2", "1.3"])
    p.add_argument("--alpn")
    p.add_argument("--sni", default="localhost")
    p.add_argument("--no-sni", dest="sni", action="store_const", const=None)
    p.add_argument("--line", action="append", default=[])
    p.add_argument("--close-notify", action="store_true")
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--size", type=int, default=6)
    p.add_argument("--proxy-header", help="a PROXY v1 line sent first, without its CRLF")
    p.add_argument("--timeout", type=float, default=15)
    args = p.parse_args()
    modes = {"lines": mode_lines, "midrecord": mode_midrecord, "idle": mode_idle,
             "goodbye": mode_goodbye, "vanish": mode_vanish, "listen": mode_listen,
             "pipeline": mode_pipeline, "oneflight": mode_oneflight}
    try:
        sock = connect(args.address, args.timeout)
        if args.proxy_header:  # a balancer's header comes before the handshake
            sock.sendall(args.proxy_header.encode() + b"\r\n")
        modes.get(args.mode, mode_raw)(sock, args)
    except (OSError, ssl.SSLError, ConnectionError) as e:
        print("ERROR %s: %s" % (type(e).__name__, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
