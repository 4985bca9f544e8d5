"""A checker for loadgen's PROXY headers, for bench/smoke.py: a small
uppercase server (Python, no library code) that reads the header every
connection must open with, checks it byte for byte against the
specification published with HAProxy (doc/proxy-protocol.txt) and against
the connection's real endpoints, then answers the requests. A connection
whose header is wrong is closed without a reply, so loadgen counts an
error; the checker also counts it (`bad`, with the reason in `why`)."""
import ipaddress
import socket
import struct
import threading

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107


class Unused(Exception):
    """The client closed before sending a byte (loadgen stopping)."""


def _read_exact(conn, n, first=False):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk and first and not data:
            raise Unused()
        if not chunk:
            raise ValueError("stream ended after %d of %d header bytes" % (len(data), n))
        data += chunk
    return data


def _read_v1_line(conn):
    """The text line, CRLF included, read a byte at a time so nothing past
    it is consumed."""
    line = b""
    while not line.endswith(b"\r\n"):
        if len(line) >= V1_MAX:
            raise ValueError("v1 line longer than %d bytes" % V1_MAX)
        line += _read_exact(conn, 1, first=not line)
    return line


def _expect_v1(conn, src, dst):
    line = _read_v1_line(conn)
    want = "PROXY TCP4 %s %s %d %d\r\n" % (src[0], dst[0], src[1], dst[1])
    if line != want.encode():
        raise ValueError("v1 line %r, expected %r" % (line, want))


def _expect_v2(conn, src, dst):
    fixed = _read_exact(conn, 16, first=True)
    if fixed[:12] != V2_SIGNATURE:
        raise ValueError("v2 signature %r" % fixed[:12])
    if fixed[12] != 0x21 or fixed[13] != 0x11:
        raise ValueError("v2 version/command 0x%02x, family/protocol 0x%02x (want 0x21, 0x11)"
                         % (fixed[12], fixed[13]))
    length = struct.unpack("!H", fixed[14:16])[0]
    if length != 12:
        raise ValueError("v2 length %d for AF_INET (want 12)" % length)
    s_ip, d_ip, s_port, d_port = struct.unpack("!4s4sHH", _read_exact(conn, 12))
    got = ((str(ipaddress.IPv4Address(s_ip)), s_port), (str(ipaddress.IPv4Address(d_ip)), d_port))
    if got != (src, dst):
        raise ValueError("v2 addresses %r, expected %r" % (got, (src, dst)))


class Checker:
    """Listens on 127.0.0.1:<ephemeral>; serve() in a thread until stop()."""

    def __init__(self, version, size=64):
        self.version, self.size = version, size
        self.good = self.bad = 0
        self.why = ""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.url = "tcp://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(timeout=10)
        self.sock.close()

    def serve(self):
        while not self.stopping.is_set():
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(2.0)
                self.one(conn, peer)

    def one(self, conn, peer):
        try:
            expect = _expect_v1 if self.version == 1 else _expect_v2
            expect(conn, peer, conn.getsockname())
        except Unused:
            return
        except (ValueError, OSError) as e:
            self.bad += 1
            self.why = str(e)
            return
        self.good += 1
        try:  # then the uppercase protocol, until the client closes
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data.upper())
        except OSError:
            return
