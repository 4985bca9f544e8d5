#!/usr/bin/env python3
"""Runs the benchmark matrix: every server x every cell x N runs, a fresh
server per run, bench/loadgen as the client. Writes the raw runs and the
medians to CSV, the table with ratios and targets to Markdown, and the
plot to PNG. Called by bench/run.sh, which builds everything first.

Standard library only. Every child has a time limit; every server is
started in its own session and its whole process group is ended after the
run, so nothing outlives the matrix."""
import argparse
import datetime
import os
import platform
import re
import resource
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import report  # noqa: E402  (bench/report.py: table, targets, plot)

# name -> (loadgen arguments, what it is for)
CELLS = {
    "p1": (["-c", "1"], "persistent, 1 connection, 64 B"),
    "p10": (["-c", "10"], "persistent, 10 connections, 64 B"),
    "p100": (["-c", "100"], "persistent, 100 connections, 64 B"),
    "p1000": (["-c", "1000"], "persistent, 1000 connections, 64 B"),
    "4k10": (["-c", "10", "-s", "4096"], "persistent, 10 connections, 4 KiB"),
    "4k100": (["-c", "100", "-s", "4096"], "persistent, 100 connections, 4 KiB"),
    "cpr1": (["--per-request", "-c", "1"], "connect-per-request, 1 connection"),
    "cpr50": (["--per-request", "-c", "50"], "connect-per-request, 50 connections"),
    "cpr50p": (["--per-request", "-c", "50", "--proxy-v2"],
               "cpr50 with a PROXY v2 header opening every connection (PROXY servers only)"),
    "idle1000": (["-c", "1000", "--think", "1000"], "1000 connections, 1 request/s each"),
    "idle10000": (["-c", "10000", "--think", "1000"], "10000 connections, 1 request/s each"),
    # TLS (issue 15): run against the -tls servers only, which run only these
    "tls10": (["-c", "10"], "TLS, persistent, 10 connections, 64 B"),
    "tls100": (["-c", "100"], "TLS, persistent, 100 connections, 64 B"),
    "tls4k10": (["-c", "10", "-s", "4096"], "TLS, persistent, 10 connections, 4 KiB"),
    "tls4k100": (["-c", "100", "-s", "4096"], "TLS, persistent, 100 connections, 4 KiB"),
    "tlscpr50": (["--per-request", "-c", "50"],
                 "TLS, connect-per-request, 50 at a time, a full handshake each"),
    "tlsres50": (["--per-request", "-c", "50", "--tls-resume"],
                 "TLS, connect-per-request, 50 at a time, each resuming its slot's last session"),
}
# Cells measured for memory, not speed: their warm-up is long enough for
# every connection to be made (10000 connects take a few seconds on 2 busy
# cores), so the window sees them all idle between their requests.
IDLE_WARMUP = {"idle10000": 5.0}
# Each TLS cell's twin without TLS: the same load on the same server's plain twin.
TLS_TWIN = {"tls10": "p10", "tls100": "p100", "tls4k10": "4k10", "tls4k100": "4k100",
            "tlscpr50": "cpr50", "tlsres50": "cpr50"}
MODE_CANDIDATES = ["sync", "threading", "forking", "pool", "prefork"]  # prefork: issue 17
# Servers that serve one connection at a time: starvation there is by design.
ONE_AT_A_TIME = {"ss-sync", "py-sync"}
# The modes also measured behind the PROXY protocol filter, as server
# "ss-MODE-proxy": every connection must open with a header from a trusted
# source. loadgen connects from all of 127.0.0.0/8 (a source address per
# connection slot), so that is the range trusted.
PROXY_MODES = ["pool", "threading"]
PROXY_FLAGS = ["--proxy-protocol", "--proxy-from", "127.0.0.0/8"]
# The modes also measured over TLS, as server "ss-MODE-tls" (tls:// URL,
# --tls-cert and --tls-key), beside bench/ref_tls.c as "epoll-tls".
TLS_MODES = ["pool", "threading"]


def is_proxy_server(name):
    return name.endswith("-proxy")


def is_proxy_cell(cell):
    return any(a.startswith("--proxy-v") for a in CELLS[cell][0])


def is_tls_server(name):
    return name.endswith("-tls")


def is_tls_cell(cell):
    return cell in TLS_TWIN


def serves(name, cell):
    """A PROXY server refuses a connection without a header, and a plain
    server would take the header for request bytes: each gets its own cells;
    so do TLS servers."""
    return is_proxy_server(name) == is_proxy_cell(cell) and is_tls_server(name) == is_tls_cell(cell)


def listen_url(name):
    return "tls://127.0.0.1:0" if is_tls_server(name) else "tcp://127.0.0.1:0"


def make_test_cert(directory):
    """A throwaway self-signed certificate for localhost (ECDSA P-256, a
    day) made with the openssl tool; returns the flags that give it to a
    server, or None without the tool."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    tool = shutil.which("openssl")
    cmd = [tool or "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
           "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost",
           "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert]
    if tool is None or subprocess.run(cmd, capture_output=True, timeout=30).returncode != 0:
        log("bench: no openssl tool to make a test certificate: no TLS servers")
        return None
    return ["--tls-cert", cert, "--tls-key", key]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- servers -------------------------------------------------------------

def start_server(cmd, url, logf, timeout=10.0):
    """Starts cmd --listen url in its own session; returns (proc, real URL)."""
    proc = subprocess.Popen(cmd + ["--listen", url, "--quiet"], stdout=subprocess.PIPE,
                            stderr=logf, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            break
    m = re.match(rb"listening on (\S+)", line)
    if not m:
        stop_server(proc)
        return None, None
    return proc, m.group(1).decode()


def stop_server(proc, grace=5.0):
    """SIGTERM, then SIGKILL to the server's own process group (its forked
    children included). Returns the exit status, or None if it was killed."""
    status = None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        status = proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group we created for it
    except ProcessLookupError:
        pass
    if status is None:
        proc.wait()
    proc.stdout.close()
    return status


def try_start(cmd, url, logf):
    proc, real = start_server(cmd, url, logf, timeout=5.0)
    if proc is None:
        return False
    stop_server(proc)
    return True


def discover_modes(binary, logf):
    """The --mode values uppercase_server accepts: the candidates plus any
    named in its --help, each kept only if a trial start listens."""
    names = list(MODE_CANDIDATES)
    try:
        text = subprocess.run([binary, "--help"], capture_output=True, text=True,
                              timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        text = ""
    m = re.search(r"--mode MODE\s+[^:\n]*:\s*([^\n]+)", text)
    for word in re.findall(r"[a-z][a-z_-]+", m.group(1) if m else ""):
        if word not in names:
            names.append(word)
    return [n for n in names if try_start([binary, "--mode", n], "tcp://127.0.0.1:0", logf)]


def tls_servers(build, modes, upper, tls_flags, logf):
    """The TLS servers: ref_tls, and uppercase_server in TLS_MODES when it
    starts on a tls:// URL with the certificate."""
    servers = {}
    ref = os.path.join(build, "bench", "ref_tls")
    if os.access(ref, os.X_OK):
        servers["epoll-tls"] = [ref] + tls_flags
    else:
        log("bench: ref_tls not built (OpenSSL is not installed): skipped")
    for mode in [m for m in TLS_MODES if m in modes]:
        cmd = [upper, "--mode", mode] + tls_flags
        if try_start(cmd, "tls://127.0.0.1:0", logf):
            servers["ss-%s-tls" % mode] = cmd
        else:
            log("bench: uppercase_server does not serve tls:// (built without TLS?): "
                "no ss-%s-tls" % mode)
    return servers


def discover_servers(build, logf, want_python=True, tls_flags=None):
    """name -> command (without --listen). With tls_flags (--tls-cert,
    --tls-key), the TLS servers too."""
    servers = {}
    upper = os.path.join(build, "examples", "uppercase_server")
    modes = discover_modes(upper, logf)
    for mode in modes:
        servers["ss-" + mode] = [upper, "--mode", mode]
    for mode in [m for m in PROXY_MODES if m in modes]:
        cmd = [upper, "--mode", mode] + PROXY_FLAGS
        if try_start(cmd, "tcp://127.0.0.1:0", logf):
            servers["ss-%s-proxy" % mode] = cmd
        else:
            log("bench: uppercase_server does not take %s: no PROXY servers" % PROXY_FLAGS[0])
            break
    for ref in ["epoll", "threads", "libuv", "libevent"]:
        path = os.path.join(build, "bench", "ref_" + ref)
        if os.access(path, os.X_OK):
            servers[ref] = [path]
        else:
            log("bench: ref_%s not built (its library is not installed): skipped" % ref)
    if tls_flags:
        servers.update(tls_servers(build, modes, upper, tls_flags, logf))
    python = shutil.which("python3")
    if want_python and python:
        for mode in ["sync", "threading", "forking"]:
            servers["py-" + mode] = [python, os.path.join(HERE, "ref_python.py"), "--mode", mode]
    return servers


# ---- runs ----------------------------------------------------------------

def parse_line(text):
    for line in text.splitlines():
        if line.startswith("label="):
            return dict(kv.split("=", 1) for kv in line.split())
    return None


def run_cell(loadgen, servers, name, cell_args, opts, logf, url=None, talk_tls=False):
    """One run of one cell on a fresh server. talk_tls: loadgen speaks TLS to
    a tcp:// server (the smoke's check that it is refused)."""
    proc, real = start_server(servers[name], url or listen_url(name), logf)
    if proc is None:
        return {"server": name, "failure": "did not start"}
    warmup = max(opts.warmup, IDLE_WARMUP.get(cell_name(cell_args), 0))
    if talk_tls:
        real = real.replace("tcp://", "tls://", 1)
    cmd = [loadgen, "--target", real, "--server-pid", str(proc.pid), "--label", name,
           "-d", str(opts.duration), "-w", str(warmup), "--quiet"] + cell_args
    try:
        out = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=warmup + opts.duration + 40)
        row = parse_line(out.stdout) or {"failure": "loadgen: " + out.stderr.strip()[-200:]}
    except subprocess.TimeoutExpired:
        row = {"failure": "loadgen timed out"}
    row["server"] = name
    row["stop_status"] = str(stop_server(proc))
    return row


def cell_name(cell_args):
    return next((c for c, (args, _) in CELLS.items() if args == cell_args), None)


def raise_fd_limit():
    """The soft limit on open files up to the hard one, for this process and
    so for every server and loadgen it starts: idle10000 needs 10000
    sockets on each side (plus the server's listener, pipes and epoll)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < 10100:
        log("bench: open-file limit %d: idle10000 will be short of sockets "
            "(raise the hard limit, e.g. ulimit -Hn 20000)" % hard)


def load_average():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def run_matrix(loadgen, servers, cells, opts, logf):
    rows = []
    total = opts.runs * sum(serves(s, c) for s in servers for c in cells)
    done = 0
    for rep in range(opts.runs):
        for cell in cells:
            for name in [s for s in servers if serves(s, cell)]:
                row = run_cell(loadgen, servers, name, CELLS[cell][0], opts, logf)
                row.update(cell=cell, run=str(rep + 1), loadavg=load_average())
                rows.append(row)
                done += 1
                log("[%d/%d] run %d %-6s %-12s %s" % (done, total, rep + 1, cell, name,
                                                       summary(row)))
    return rows


def summary(row):
    if "failure" in row:
        return "FAILED: " + row["failure"]
    return "%9.0f req/s  p99 %7.0f us  cpu %6.2f us/req  starved %s/%s  err %s/%s" % (
        float(row["rps"]), float(row["p99_us"]), float(row["cpu_us_per_req"]),
        row["starved"], row["unconnected"], row["errors"], row["mismatches"])


# ---- aggregation -----------------------------------------------------------

MEDIAN_KEYS = ["rps", "p50_us", "p99_us", "p999_us", "cpu_us_per_req", "server_rss_kb",
               "server_pss_kb", "server_threads", "server_procs", "client_cpu_pct"]
MAX_KEYS = ["errors", "mismatches", "lost", "starved", "unconnected", "connect_errors"]


def aggregate(rows):
    """(server, cell) -> medians of MEDIAN_KEYS, maxima of MAX_KEYS."""
    groups = {}
    for row in rows:
        groups.setdefault((row["server"], row["cell"]), []).append(row)
    agg = {}
    for key, runs in groups.items():
        ok = [r for r in runs if "failure" not in r]
        a = {"runs": len(ok), "failed_runs": len(runs) - len(ok)}
        for k in MEDIAN_KEYS:
            vals = [float(r[k]) for r in ok]
            a[k] = statistics.median(vals) if vals else None
        for k in MAX_KEYS:
            a[k] = max((int(r[k]) for r in ok), default=None)
        a["starved_total"] = max((int(r["starved"]) + int(r["unconnected"]) for r in ok),
                                 default=None)
        rps = [float(r["rps"]) for r in ok]
        a["spread_pct"] = (100 * (max(rps) - min(rps)) / a["rps"]) if rps and a["rps"] else None
        agg[key] = a
    return agg


def write_csv(path, rows, keys):
    with open(path, "w") as f:
        f.write(",".join(keys) + "\n")
        for row in rows:
            f.write(",".join(fmt(row.get(k)) for k in keys) + "\n")


def fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return "%.2f" % v
    return str(v).replace(",", ";")


RAW_KEYS = ["server", "cell", "run", "rps", "p50_us", "p99_us", "p999_us", "max_us", "requests",
            "errors", "mismatches", "lost", "starved", "unconnected", "connects",
            "connect_errors", "resumed", "server_cpu_s", "cpu_us_per_req", "server_rss_kb",
            "server_pss_kb", "server_threads", "server_procs", "client_cpu_pct", "window_s",
            "stop_status", "loadavg", "failure"]


def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.+)", f.read())
            model = m.group(1).strip() if m else model
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = "?"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": "%s, %d cores, %s, Linux %s" % (model, os.cpu_count() or 0,
                                                   memory_text(), platform.release()),
        "commit": commit or "?",
    }


def memory_text():
    try:
        with open("/proc/meminfo") as f:
            kb = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
        return "%.0f GiB" % (kb / 1024 / 1024)
    except (OSError, AttributeError):
        return "? GiB"


# ---- main ----------------------------------------------------------------

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--servers", default="", help="comma-separated subset (default: all found)")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=COMMAND",
                    help="one more server, e.g. a build of another commit side by side: "
                         "'ss-pool-old=build-old/examples/uppercase_server --mode pool' "
                         "(repeatable; kept whatever --servers says)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--plot", default=os.path.join(ROOT, "docs", "bench.png"))
    ap.add_argument("--readme", default=os.path.join(HERE, "README.md"))
    ap.add_argument("--report-only", action="store_true",
                    help="make the tables and plot again from OUT/latest-runs.csv")
    ap.add_argument("--replace-from", metavar="DIR",
                    help="with --report-only: the servers measured in DIR (a later run "
                         "with --out DIR) replace theirs in OUT, run for run, and the "
                         "report says so")
    return ap.parse_args()


def measure(opts):
    """Runs the matrix; returns (rows, info, servers, cells) and keeps the
    run's facts in latest-info.txt so the report can be made again."""
    loadgen = os.path.join(opts.build, "bench", "loadgen")
    with tempfile.TemporaryFile() as logf, tempfile.TemporaryDirectory() as certs:
        servers = discover_servers(opts.build, logf, tls_flags=make_test_cert(certs))
        if opts.servers:
            keep = opts.servers.split(",")
            servers = {k: v for k, v in servers.items() if k in keep}
        for extra in opts.also:
            name, _, command = extra.partition("=")
            servers[name] = shlex.split(command)
        cells = [c for c in opts.cells.split(",") if c in CELLS]
        log("bench: servers %s" % " ".join(servers))
        log("bench: cells %s; %d run(s) of %.1f s + %.1f s warm-up each" % (
            " ".join(cells), opts.runs, opts.duration, opts.warmup))
        info = machine_info()
        info.update(runs=opts.runs, duration=opts.duration, warmup=opts.warmup,
                    load_before=load_average())
        rows = run_matrix(loadgen, servers, cells, opts, logf)
        info["load_after"] = load_average()
    write_csv(os.path.join(opts.out, "latest-runs.csv"), rows, RAW_KEYS)
    with open(os.path.join(opts.out, "latest-info.txt"), "w") as f:
        f.writelines("%s=%s\n" % kv for kv in info.items())
    return rows, info, list(servers), cells


def load_previous(out):
    """The rows and facts of the last run, for --report-only."""
    with open(os.path.join(out, "latest-runs.csv")) as f:
        lines = f.read().splitlines()
    keys = lines[0].split(",")
    rows = [{k: v for k, v in zip(keys, line.split(",")) if v != ""} for line in lines[1:]]
    with open(os.path.join(out, "latest-info.txt")) as f:
        info = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    for k in ("runs",):
        info[k] = int(info[k])
    for k in ("duration", "warmup"):
        info[k] = float(info[k])
    servers = list(dict.fromkeys(r["server"] for r in rows))
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    return rows, info, servers, cells


def replace_rows(opts, rows, info):
    """Rows of the servers measured in opts.replace_from take the place of
    the same server, cell and run in rows; writes the merged runs back."""
    newer, newer_info, newer_servers, _ = load_previous(opts.replace_from)
    key = lambda r: (r["server"], r["cell"], r["run"])  # noqa: E731
    by_key = {key(r): r for r in newer}
    merged = [by_key.pop(key(r), r) for r in rows]
    merged += [r for r in newer if key(r) in by_key]  # servers or cells new to OUT
    write_csv(os.path.join(opts.out, "latest-runs.csv"), merged, RAW_KEYS)
    note = "Rows of %s: measured again %s, commit `%s`, %d runs" % (
        ", ".join(newer_servers), newer_info["date"], newer_info["commit"], newer_info["runs"])
    info["remeasured"] = "; ".join(filter(None, [info.get("remeasured"), note]))
    with open(os.path.join(opts.out, "latest-info.txt"), "w") as f:
        f.writelines("%s=%s\n" % kv for kv in info.items())
    return merged


def main():
    opts = parse_args()
    raise_fd_limit()
    os.makedirs(opts.out, exist_ok=True)
    if opts.report_only:
        rows, info, servers, cells = load_previous(opts.out)
        if opts.replace_from:
            rows = replace_rows(opts, rows, info)
            servers = list(dict.fromkeys(r["server"] for r in rows))
            cells = list(dict.fromkeys(r["cell"] for r in rows))
    else:
        rows, info, servers, cells = measure(opts)
    agg = aggregate(rows)
    med_rows = [dict(agg[(s, c)], server=s, cell=c) for c in cells for s in servers
                if (s, c) in agg]
    write_csv(os.path.join(opts.out, "latest.csv"), med_rows,
              ["server", "cell", "runs", "failed_runs"] + MEDIAN_KEYS + ["spread_pct"] + MAX_KEYS
              + ["starved_total"])
    text = report.markdown(agg, rows, servers, cells, CELLS, info)
    with open(os.path.join(opts.out, "latest.md"), "w") as f:
        f.write(text)
    report.update_readme(opts.readme, text)
    report.plot(agg, servers, cells, opts.plot, info)
    log("bench: wrote %s/latest.csv, latest-runs.csv, latest.md, %s" % (opts.out, opts.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
