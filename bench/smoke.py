#!/usr/bin/env python3
"""bench/run.sh --quick: a few seconds of every piece of the suite, so it
cannot rot. Fails (exit 1) on any error, mismatch, lost datagram, starved
or never-connected connection, or server that does not stop cleanly.

  - loadgen refuses non-loopback targets;
  - loadgen's verifier catches a server that does not uppercase (echo);
  - loadgen's PROXY headers (--proxy-v1, --proxy-v2) are what the
    specification says, checked by a Python server (bench/proxy_check.py);
  - uppercase_server in every --mode it accepts, over TCP (persistent and
    connect-per-request), Unix and UDP when that mode serves them;
  - the PROXY servers (--proxy-protocol) with v2 and v1 headers, and
    refusing a connection without one;
  - the TLS servers (bench/ref_tls.c, and uppercase_server on tls:// in
    the TLS_MODES when it has TLS): persistent, a full handshake per
    request (none resumed) and per request with resumption (resumed), and
    loadgen's TLS client refused by a plain server;
  - each reference server once (Python's only if python3 is there);
  - a server stopped in the middle of a pipelined run: each connection it
    closed counts one error, and the replies received before are checked
    as a prefix (no mismatch)."""
import os
import shutil
import subprocess
import signal
import sys
import tempfile
import threading
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import matrix  # noqa: E402
import proxy_check  # noqa: E402

OPTS = SimpleNamespace(duration=0.4, warmup=0.15)
FAIL_KEYS = ["errors", "mismatches", "lost", "starved", "unconnected", "connect_errors"]


class Tally:
    def __init__(self):
        self.passed = self.failed = 0

    def record(self, what, ok, detail):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print("%s %-44s %s" % ("ok  " if ok else "FAIL", what, detail), flush=True)


def judge(row, clean_stop):
    if "failure" in row:
        return False, row["failure"]
    bad = ["%s=%s" % (k, row[k]) for k in FAIL_KEYS if row.get(k, "0") != "0"]
    if int(row["requests"]) == 0:
        bad.append("no requests answered")
    if clean_stop and row["stop_status"] != "0":
        bad.append("server stop status %s" % row["stop_status"])
    return not bad, " ".join(bad) or "%.0f req/s" % float(row["rps"])


def refuses(loadgen, tally):
    for url in ["tcp://192.0.2.1:9", "tcp://10.0.0.1:80", "udp://[2001:db8::1]:9"]:
        rc = subprocess.run([loadgen, "--target", url, "-d", "0.1", "-w", "0"],
                            capture_output=True, timeout=10).returncode
        tally.record("loadgen refuses " + url, rc == 2, "exit %d" % rc)


def catches_echo(build, loadgen, tally):
    """echo_server does not uppercase: loadgen --strict must say so."""
    servers = {"echo": [os.path.join(build, "examples", "echo_server")]}
    with tempfile.TemporaryFile() as logf:
        row = matrix.run_cell(loadgen, servers, "echo", ["-c", "1"], OPTS, logf)
    ok = "failure" not in row and int(row["mismatches"]) > 0 and int(row["requests"]) == 0
    tally.record("loadgen catches a wrong reply (echo)", ok,
                 "mismatches=%s" % row.get("mismatches", row.get("failure")))


def checks_proxy_headers(loadgen, tally):
    """Every connection's header is checked against the spec and the
    connection's real endpoints; a wrong one gets no reply (loadgen errors)."""
    for version in (1, 2):
        with proxy_check.Checker(version) as ck:
            out = subprocess.run([loadgen, "--target", ck.url, "--per-request", "-c", "2",
                                  "-d", str(OPTS.duration), "-w", str(OPTS.warmup),
                                  "--proxy-v%d" % version, "--quiet"],
                                 capture_output=True, text=True, timeout=30)
        row = matrix.parse_line(out.stdout) or {"failure": out.stderr.strip()[-200:]}
        ok, detail = judge(row, False)
        ok = ok and ck.bad == 0 and ck.good > 0
        tally.record("loadgen --proxy-v%d headers as the spec says" % version, ok,
                     "%s; %d headers checked, %d wrong %s" % (detail, ck.good, ck.bad, ck.why))


# Persistent connections per mode, within what each mode documents it
# serves at once (sync: one; pool: at least 8 workers; forking: 40
# children), so any starvation here is a bug, not the design. The issue's
# 100/1000-connection targets are measured by the full matrix.
CONNS = {"sync": 1, "pool": 4, "forking": 10, "threading": 10}


def ss_cases(mode, tmp):
    many = ["-c", str(CONNS.get(mode, 4))]
    cases = [("tcp", "tcp://127.0.0.1:0", many),
             ("tcp per-request", "tcp://127.0.0.1:0", ["--per-request", "-c", "10"])]
    if mode == "threading":
        cases.append(("tcp 100 conns", "tcp://127.0.0.1:0", ["-c", "100"]))
    cases.append(("unix", "unix:" + os.path.join(tmp, mode + ".sock"), many))
    if sys.platform.startswith("linux"):  # loadgen once took "@name" for a file path
        cases.append(("unix abstract", "unix:@%s-%s" % (os.path.basename(tmp), mode), many))
    cases.append(("udp", "udp://127.0.0.1:0", ["-c", "4"]))
    return cases


def run_ss(build, loadgen, servers, tally, tmp):
    for name in [s for s in servers if s.startswith("ss-") and not matrix.is_proxy_server(s)
                 and not matrix.is_tls_server(s)]:
        for what, url, args in ss_cases(name[3:], tmp):
            with tempfile.TemporaryFile() as logf:
                if not url.startswith("tcp") and not matrix.try_start(servers[name], url, logf):
                    print("skip %-44s (this mode does not serve %s yet)" % (name + " " + what,
                                                                            url.split(":")[0]))
                    continue
                row = matrix.run_cell(loadgen, servers, name, args, OPTS, logf, url)
            tally.record("%s %s %s" % (name, what, " ".join(args)), *judge(row, True))


# The PROXY servers: headers of both versions (the full matrix measures
# only v2, per request), and a connection without a header, which must be
# refused: no reply, no mismatch (never guessed to be a direct client).
PROXY_CASES = {
    "ss-pool-proxy": [("tcp per-request", ["--per-request", "-c", "10", "--proxy-v2"]),
                      ("tcp", ["-c", "4", "--proxy-v1"]),
                      ("tcp without a header", ["-c", "2"])],
    "ss-threading-proxy": [("tcp per-request", ["--per-request", "-c", "10", "--proxy-v2"])],
}


def refused(row):
    if "failure" in row:
        return False, row["failure"]
    ok = int(row["requests"]) == 0 and int(row["errors"]) > 0 and row["mismatches"] == "0"
    return ok, "requests=%s errors=%s mismatches=%s" % (row["requests"], row["errors"],
                                                       row["mismatches"])


def run_proxy(loadgen, servers, tally):
    for name, cases in PROXY_CASES.items():
        if name not in servers:  # the examples take --proxy-protocol: a regression
            tally.record(name, False, "uppercase_server did not start with %s"
                         % " ".join(matrix.PROXY_FLAGS))
            continue
        for what, args in cases:
            with tempfile.TemporaryFile() as logf:
                row = matrix.run_cell(loadgen, servers, name, args, OPTS, logf)
            verdict = refused(row) if "without" in what else judge(row, True)
            tally.record("%s %s %s" % (name, what, " ".join(args)), *verdict)


# name -> [(what, loadgen arguments, resumed handshakes expected)]
TLS_CASES = {
    "epoll-tls": [("persistent", ["-c", "4", "-s", "4096"], False),
                  ("per-request resumed", ["--per-request", "-c", "4", "--tls-resume"], True)],
    "ss-pool-tls": [("persistent", ["-c", "4"], False),
                    ("per-request", ["--per-request", "-c", "4"], False),
                    ("per-request resumed", ["--per-request", "-c", "4", "--tls-resume"], True)],
    "ss-threading-tls": [("persistent", ["-c", "10", "-s", "4096"], False),
                         ("per-request resumed", ["--per-request", "-c", "4", "--tls-resume"],
                          True)],
}


def judge_tls(row, clean_stop, resumed):
    """judge(), and the handshakes resumed (or not) as the case asks."""
    ok, detail = judge(row, clean_stop)
    if not ok:
        return ok, detail
    n, conns = int(row.get("resumed", "0")), int(row["connects"])
    if (n > 0) != resumed or row.get("tls") != "1":
        return False, "tls=%s resumed %d of %d handshakes" % (row.get("tls"), n, conns)
    return True, "%s, resumed %d of %d handshakes" % (detail, n, conns)


def lib_has_tls(build):
    """uppercase_server names --tls-cert in its --help when TLS is built in."""
    upper = os.path.join(build, "examples", "uppercase_server")
    try:
        text = subprocess.run([upper, "--help"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--tls-cert" in text.stdout + text.stderr


def run_tls(build, loadgen, servers, tally):
    if "epoll-tls" not in servers:
        print("skip %-44s (no OpenSSL or no openssl tool)" % "TLS servers")
        return
    with tempfile.TemporaryFile() as logf:  # TLS client against a plain server
        row = matrix.run_cell(loadgen, servers, "epoll", ["-c", "2"], OPTS, logf,
                              talk_tls=True)
    ok = "failure" not in row and row["requests"] == "0" and row["connect_errors"] != "0"
    tally.record("loadgen's TLS client refused by plain epoll", ok,
                 "requests=%s connect_errors=%s" % (row.get("requests"),
                                                    row.get("connect_errors", row.get("failure"))))
    for name, cases in TLS_CASES.items():
        if name not in servers:
            if lib_has_tls(build):  # TLS is built in: the server must serve it
                tally.record(name, False, "uppercase_server did not start on tls://")
            else:
                print("skip %-44s (uppercase_server has no TLS)" % name)
            continue
        for what, args, resumed in cases:
            with tempfile.TemporaryFile() as logf:
                row = matrix.run_cell(loadgen, servers, name, args, OPTS, logf)
            tally.record("%s %s %s" % (name, what, " ".join(args)),
                         *judge_tls(row, name.startswith("ss-"), resumed))


def run_refs(loadgen, servers, tally):
    for name, args in [("epoll", ["-c", "10"]), ("threads", ["-c", "10"]),
                       ("libuv", ["-c", "10"]), ("libevent", ["-c", "10"]),
                       ("py-threading", ["-c", "2"])]:
        if name not in servers:
            print("skip %-44s (not built or no python3)" % name)
            continue
        with tempfile.TemporaryFile() as logf:
            row = matrix.run_cell(loadgen, servers, name, args, OPTS, logf)
        tally.record("reference %s %s" % (name, " ".join(args)), *judge(row, False))


def counts_a_stopped_server_once(build, loadgen, tally, runs=5):
    """SIGTERM the server while 10 connections pipeline 4 requests each:
    every connection fails once (errors <= 10) and nothing is a mismatch
    (the bytes received are a prefix of the replies). Before, a failed send
    while pumping counted an error, then the buffered replies a mismatch."""
    server = [os.path.join(build, "examples", "uppercase_server"), "--mode", "pool",
              "--drain", "0"]
    for run in range(runs):
        with tempfile.TemporaryFile() as logf:
            proc, url = matrix.start_server(server, "tcp://127.0.0.1:0", logf)
            if proc is None:
                tally.record("loadgen: server stopped mid-run", False, "server did not start")
                return
            timer = threading.Timer(0.8, proc.send_signal, [signal.SIGTERM])
            timer.start()
            out = subprocess.run([loadgen, "--target", url, "-c", "10", "--pipeline", "4",
                                  "-d", "1.5", "-w", "0", "--quiet"], capture_output=True,
                                 text=True, timeout=30)
            timer.join()
            matrix.stop_server(proc)
        row = matrix.parse_line(out.stdout)
        ok = row is not None and int(row["errors"]) <= 10 and row["mismatches"] == "0"
        detail = ("errors=%s mismatches=%s" % (row["errors"], row["mismatches"])
                  if row is not None else out.stderr.strip()[-200:])
        tally.record("loadgen: server stopped mid-run (%d)" % (run + 1), ok, detail)


def runs_fiber_switch(build, tally):
    """The fiber-switch microbenchmark runs and prints both figures (a
    build without fibers has none)."""
    path = os.path.join(build, "bench", "fiber_switch")
    if not os.access(path, os.X_OK):
        print("skip %-44s (no fibers in this build)" % "fiber_switch")
        return
    try:
        out = subprocess.run([path, "-n", "20000", "-r", "3"], capture_output=True, text=True,
                             timeout=30)
        ok = out.returncode == 0 and "swapcontext / fiber" in out.stdout
        detail = out.stdout.strip().splitlines()[-1] if ok else out.stderr.strip()[-200:]
    except subprocess.TimeoutExpired:
        ok, detail = False, "timed out"
    tally.record("fiber_switch -n 20000 -r 3", ok, detail)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(HERE),
                                                               "build-bench")
    loadgen = os.path.join(build, "bench", "loadgen")
    tally = Tally()
    tmp = tempfile.mkdtemp(prefix="ss-bench-")
    try:
        with tempfile.TemporaryFile() as logf:
            servers = matrix.discover_servers(build, logf, tls_flags=matrix.make_test_cert(tmp))
        print("bench smoke: modes %s" % " ".join(s[3:] for s in servers if s.startswith("ss-")))
        refuses(loadgen, tally)
        catches_echo(build, loadgen, tally)
        checks_proxy_headers(loadgen, tally)
        run_ss(build, loadgen, servers, tally, tmp)
        run_proxy(loadgen, servers, tally)
        run_tls(build, loadgen, servers, tally)
        run_refs(loadgen, servers, tally)
        counts_a_stopped_server_once(build, loadgen, tally)
        runs_fiber_switch(build, tally)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("bench: %d passed, %d failed" % (tally.passed, tally.failed))
    return 1 if tally.failed or tally.passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
