"""The matrix's report: Markdown tables, the issue's targets as ratios to
the references measured in the same run, and the gnuplot chart."""
import os
import statistics
import shutil
import subprocess
import tempfile

BEGIN = "<!-- bench-results:begin -->"
END = "<!-- bench-results:end -->"
RPS_CELLS = ["p1", "p10", "p100", "p1000", "4k10", "4k100", "cpr1", "cpr50", "cpr50p"]
TLS_CELLS = ["tls10", "tls100", "tls4k10", "tls4k100", "tlscpr50", "tlsres50"]
TLS_PERSISTENT = TLS_CELLS[:4]
TLS_HANDSHAKES = TLS_CELLS[4:]
# The TLS cells' twins without TLS (bench/matrix.py TLS_TWIN)
TLS_TWIN = {"tls10": "p10", "tls100": "p100", "tls4k10": "4k10", "tls4k100": "4k100",
            "tlscpr50": "cpr50", "tlsres50": "cpr50"}


def value(agg, server, cell, key):
    return agg.get((server, cell), {}).get(key)


def ratio(runs, a, b, cell, key="rps"):
    """Median over the runs of a/b, each run's two figures measured minutes
    apart at most (servers are interleaved within a run), so a drift of
    the machine between runs cancels out instead of landing on one side."""
    return pair_ratio(runs, (a, cell), (b, cell), key)


def per_run(runs, a, b, key):
    """run -> {a: value, b: value}, a and b being (server, cell) pairs."""
    by_run = {}
    for r in runs:
        at = (r.get("server"), r.get("cell"))
        if at in (a, b) and "failure" not in r:
            by_run.setdefault(r["run"], {})[at] = float(r[key])
    return by_run


def pair_ratio(runs, a, b, key="rps"):
    """ratio() for any two (server, cell) pairs of the same runs, e.g. one
    server's cell with a PROXY header against its plain twin's cell."""
    vals = [v[a] / v[b] for v in per_run(runs, a, b, key).values()
            if a in v and b in v and v[b] > 0]
    return statistics.median(vals) if vals else None


def starved(agg, server, cell):
    """Starved plus never connected, in the worst run."""
    return value(agg, server, cell, "starved_total")


# ---- targets ---------------------------------------------------------------

def check(label, got, need, at_least=True, unit="x"):
    """One row: (label, measured, needed as text, result)."""
    need_s = ("≥ " if at_least else "≤ ") + ("%gx" % need if unit == "x" else "%d%s" % (need, unit))
    if got is None:
        return (label, "n/a (server missing)", need_s, "n/a")
    got_s = "%.2fx" % got if unit == "x" else (
        "%.1f%s" % (got, unit) if isinstance(got, float) else "%d%s" % (got, unit))
    ok = got >= need if at_least else got <= need
    return (label, got_s, need_s, "met" if ok else "**MISSED**")


def cpu_ratio(runs, server, cell, ref):
    """Each mode against the hand-written server of its own shape: sync
    (one thread) against epoll, threading and pool (a blocking handler on
    a thread) against threads."""
    return ratio(runs, server, ref, cell, "cpu_us_per_req")


def targets(agg, runs):
    """[(target, [check rows])] following issue 7, item 4."""
    conc = ["ss-threading", "ss-pool"]
    t = []
    t.append(("throughput >= 1.0x thread-per-connection (threads) at 10/100/1000 connections",
              [check("%s %s" % (m, c), ratio(runs, m, "threads", c), 1.0)
               for m in conc for c in ["p10", "p100", "p1000"]]))
    t.append(("throughput >= 1.0x Python ThreadingTCPServer everywhere",
              [check("%s %s" % (m, c), ratio(runs, m, "py-threading", c), 1.0)
               for m in conc for c in RPS_CELLS]))
    t.append(("zero starved connections at 100 and 1000 connections",
              [check("%s %s" % (m, c), starved(agg, m, c), 0, at_least=False, unit=" starved")
               for m in conc + ["ss-forking"] for c in ["p100", "p1000"]]))
    t.append(("4 KiB messages >= 0.9x minimal epoll server",
              [check("%s 4k10" % m, ratio(runs, m, "epoll", "4k10"), 0.9) for m in conc]))
    t.append(("connect-per-request, 50 connections", [
        check("ss-pool vs libuv", ratio(runs, "ss-pool", "libuv", "cpr50"), 0.8),
        check("ss-threading vs py-threading", ratio(runs, "ss-threading", "py-threading", "cpr50"), 2.0),
        check("ss-forking vs py-forking", ratio(runs, "ss-forking", "py-forking", "cpr50"), 3.0)]))
    t.append(("RSS at 1000 idle connections: threading <= 1.2x threads", [
        check("ss-threading idle1000", ratio(runs, "ss-threading", "threads", "idle1000",
                                             "server_rss_kb"), 1.2, at_least=False)]))
    cpu = [check("ss-sync p1 vs epoll", cpu_ratio(runs, "ss-sync", "p1", "epoll"), 1.2, False)]
    cpu += [check("ss-threading %s vs threads" % c, cpu_ratio(runs, "ss-threading", c, "threads"),
                  1.2, False) for c in ["p10", "p100", "p1000"]]
    cpu += [check("ss-pool %s vs threads" % c, cpu_ratio(runs, "ss-pool", c, "threads"),
                  1.2, False) for c in ["p10", "p100", "p1000"]]
    t.append(("server CPU per request within 1.2x the hand-written servers", cpu))
    t += issue17_targets(agg, runs)
    t.append(("PROXY v2 filter: CPU per request with a header <= 1.1x without (issue 14)", [
        check("%s-proxy cpr50p vs %s cpr50" % (m, m),
              pair_ratio(runs, (m + "-proxy", "cpr50p"), (m, "cpr50"), "cpu_us_per_req"),
              1.1, False) for m in conc]))
    t.append(("TLS: pool CPU per request <= 1.15x the hand-written epoll + OpenSSL server, "
              "persistent connections (issue 15)", [
                  check("ss-pool-tls %s vs epoll-tls" % c,
                        ratio(runs, "ss-pool-tls", "epoll-tls", c, "cpu_us_per_req"), 1.15, False)
                  for c in TLS_PERSISTENT]))
    t.append(("TLS: pool CPU per request <= 1.1x the hand-written server, a handshake per "
              "request (issue 15)", [
                  check("ss-pool-tls %s vs epoll-tls" % c,
                        ratio(runs, "ss-pool-tls", "epoll-tls", c, "cpu_us_per_req"), 1.1, False)
                  for c in TLS_HANDSHAKES]))
    return t


ISSUE17_CELLS = ["p1", "p10", "p100", "p1000", "4k10", "cpr1", "cpr50"]


def issue17_targets(agg, runs):
    """Issue 17: the pool against the hand-written epoll server, and its
    memory per connection at 10000 mostly idle ones (libuv's beside it)."""
    t = [("pool server CPU per request <= 1.1x epoll (issue 17)",
          [check("ss-pool %s" % c, cpu_ratio(runs, "ss-pool", c, "epoll"), 1.1, False)
           for c in ISSUE17_CELLS]),
         ("pool requests/s >= 0.95x epoll and >= 1.0x libuv (issue 17)",
          [check("ss-pool %s vs epoll" % c, ratio(runs, "ss-pool", "epoll", c), 0.95)
           for c in ISSUE17_CELLS] +
          [check("ss-pool %s vs libuv" % c, ratio(runs, "ss-pool", "libuv", c), 1.0)
           for c in ISSUE17_CELLS])]
    mem = [check("%s idle10000 %s" % (s, key[7:10].upper()),
                  kib_per_connection(agg, s, "idle10000", key), 8, False, " KiB")
           for s in ["ss-pool", "libuv"] for key in ("server_rss_kb", "server_pss_kb")]
    t.append(("pool memory at 10000 idle connections <= 8 KiB each (issue 17; libuv beside it)",
              mem))
    return t


def kib_per_connection(agg, server, cell, key):
    conns = IDLE_CONNECTIONS.get(cell)
    v = value(agg, server, cell, key)
    return None if v is None or conns is None else v / conns


IDLE_CONNECTIONS = {"idle1000": 1000, "idle10000": 10000}


# ---- Markdown ----------------------------------------------------------------

def num(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return "{:,.0f}".format(v)
    return "{:,.{}f}".format(v, digits)


def table(agg, servers, cells, key, digits=0, scale=1.0):
    head = "| server | " + " | ".join(cells) + " |\n|---|" + "---:|" * len(cells) + "\n"
    lines = []
    for s in servers:
        vals = [value(agg, s, c, key) for c in cells]
        lines.append("| %s | %s |" % (s, " | ".join(
            num(v * scale if v is not None else None, digits) for v in vals)))
    return head + "\n".join(lines) + "\n"


def starved_table(agg, servers, cells):
    head = "| server | " + " | ".join(cells) + " |\n|---|" + "---:|" * len(cells) + "\n"
    return head + "\n".join("| %s | %s |" % (s, " | ".join(num(starved(agg, s, c)) for c in cells))
                            for s in servers) + "\n"


def targets_md(agg, runs):
    """The targets whose servers and cells this run measured (a run of a
    few cells leaves the others out rather than listing them n/a)."""
    out = ["| target | check | measured | needed | result |", "|---|---|---:|---:|---|"]
    for name, checks in targets(agg, runs):
        if all(res == "n/a" for _, _, _, res in checks):
            continue
        for label, got, need, res in checks:
            out.append("| %s | %s | %s | %s | %s |" % (name, label, got, need, res))
            name = ""
    return "\n".join(out) + "\n"


def measured(agg, servers, cells):
    """The servers with a figure in any of cells (TLS servers run only TLS
    cells, plain ones only plain cells)."""
    return [s for s in servers if any((s, c) in agg for c in cells)]


def markdown(agg, runs, servers, cells, cell_info, info):
    rps_cells = [c for c in cells if c in RPS_CELLS]
    all_servers, servers = servers, measured(agg, servers, rps_cells)
    parts = [
        "Measured %(date)s on %(machine)s, commit `%(commit)s`. " % info,
        # rows measured again later (matrix.py --replace-from), said so
        "%s. " % info["remeasured"] if info.get("remeasured") else "",
        "%(runs)d runs per cell, %(duration)g s measured after %(warmup)g s of warm-up, "
        "a fresh server per run, loadgen on the same 2 cores; medians of the runs "
        "(errors and starvation: the worst run). Load average before/after: "
        "%(load_before)s / %(load_after)s.\n\n" % info,
        "Cells: " + "; ".join("**%s** %s" % (c, cell_info[c][1]) for c in cells) + ".\n\n",
        "### Targets (issues 7, 14, 15 and 17)\n\n",
        "Ratios are medians of per-run ratios (the two servers measured in the same "
        "run, minutes apart), so they are steadier than the ratio of the medians below.\n\n",
        targets_md(agg, runs),
        "\n### Requests per second\n\n", table(agg, servers, rps_cells, "rps"),
        "\n### p99 latency (µs)\n\n", table(agg, servers, rps_cells, "p99_us"),
        "\n### Server CPU per request (µs, children included)\n\n",
        table(agg, servers, rps_cells, "cpu_us_per_req", 1),
        "\n### Starved or never-connected connections (worst run)\n\n",
        starved_table(agg, servers, [c for c in cells if c in ("p10", "p100", "p1000", "4k10",
                                                               "idle1000")]),
    ]
    if any(c in TLS_CELLS for c in cells):
        parts.append(tls_md(agg, runs, all_servers, [c for c in TLS_CELLS if c in cells]))
    if "cpr50p" in cells:
        parts += ["\n### PROXY v2 filter, run by run: server CPU per request (µs)\n\n",
                  proxy_runs_table(runs, servers)]
    for cell in [c for c in IDLE_CONNECTIONS if c in cells]:
        parts += ["\n### %s mostly idle connections: server memory and tasks\n\n"
                  % "{:,}".format(IDLE_CONNECTIONS[cell]), idle_table(agg, servers, cell)]
    parts += ["\n### Run-to-run spread of requests/s ((max − min) / median, %)\n\n",
              table(agg, servers, rps_cells, "spread_pct")]
    return "".join(parts)


def proxy_runs_table(runs, servers):
    """Each run's cpr50 figure of a mode beside its PROXY twin's cpr50p,
    and their ratio: the numbers the PROXY target's median is taken of."""
    out = ["| server | run | cpr50 | cpr50p (PROXY v2) | ratio |", "|---|---:|---:|---:|---:|"]
    for s in [s for s in servers if s.endswith("-proxy") and s[:-6] in servers]:
        a, b = (s, "cpr50p"), (s[:-6], "cpr50")
        for run, v in sorted(per_run(runs, a, b, "cpu_us_per_req").items(), key=lambda kv: int(kv[0])):
            r = v[a] / v[b] if a in v and b in v and v[b] > 0 else None
            out.append("| %s | %s | %s | %s | %s |" % (s[:-6], run, num(v.get(b), 1),
                                                       num(v.get(a), 1), num(r, 2)))
    return "\n".join(out) + "\n"


def tls_md(agg, runs, servers, cells):
    """The TLS cells: their own tables, each TLS server against its plain
    twin, and the target pair run by run."""
    tls = measured(agg, servers, cells)
    parts = ["\n### TLS: requests per second\n\n", table(agg, tls, cells, "rps"),
             "\n### TLS: server CPU per request (µs)\n\n",
             table(agg, tls, cells, "cpu_us_per_req", 1),
             "\n### TLS: p99 latency (µs; per request: from connect to the last reply byte)\n\n",
             table(agg, tls, cells, "p99_us"),
             "\n### TLS: resumed handshakes per connection made (median run)\n\n",
             resumed_table(runs, tls, [c for c in cells if c in TLS_HANDSHAKES]),
             "\n### What TLS costs: CPU per request over the same server without TLS "
             "(median of per-run ratios)\n\n",
             twin_table(runs, tls, servers, cells),
             "\n### TLS target pair, run by run: CPU per request (µs), ss-pool-tls / epoll-tls\n\n",
             pair_runs_table(runs, ("ss-pool-tls", "epoll-tls"), cells)]
    return "".join(parts)


def resumed_table(runs, servers, cells):
    head = "| server | " + " | ".join(cells) + " |\n|---|" + "---:|" * len(cells) + "\n"
    lines = []
    for s in servers:
        vals = []
        for c in cells:
            got = [int(r["resumed"]) / max(1, int(r["connects"])) for r in runs
                   if r.get("server") == s and r.get("cell") == c and "failure" not in r
                   and "resumed" in r]
            vals.append(num(statistics.median(got), 2) if got else "–")
        lines.append("| %s | %s |" % (s, " | ".join(vals)))
    return head + "\n".join(lines) + "\n"


def twin_table(runs, tls, servers, cells):
    head = "| server | " + " | ".join(cells) + " |\n|---|" + "---:|" * len(cells) + "\n"
    lines = []
    for s in tls:
        plain = s[:-4]
        if plain not in servers:
            continue
        vals = [pair_ratio(runs, (s, c), (plain, TLS_TWIN[c]), "cpu_us_per_req") for c in cells]
        lines.append("| %s vs %s | %s |" % (s, plain, " | ".join(
            "%sx" % num(v, 2) if v is not None else "–" for v in vals)))
    return head + "\n".join(lines) + "\n"


def pair_runs_table(runs, pair, cells):
    a, b = pair
    out = ["| cell | per run: %s / %s | per-run ratios | median |" % (a, b), "|---|---|---|---:|"]
    for c in cells:
        byrun = sorted(per_run(runs, (a, c), (b, c), "cpu_us_per_req").items(),
                       key=lambda kv: int(kv[0]))
        pairs = [(v.get((a, c)), v.get((b, c))) for _, v in byrun]
        ratios = [x / y for x, y in pairs if x is not None and y]
        out.append("| %s | %s | %s | %s |" % (
            c, ", ".join("%s/%s" % (num(x, 1), num(y, 1)) for x, y in pairs),
            ", ".join("%.2f" % r for r in ratios),
            "**%.2fx**" % statistics.median(ratios) if ratios else "–"))
    return "\n".join(out) + "\n"


def idle_table(agg, servers, cell):
    out = ["| server | RSS (MiB) | PSS (MiB) | RSS KiB / connection | PSS KiB / connection "
           "| threads | processes | starved |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in [s for s in servers if (s, cell) in agg]:
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            s, num(div(value(agg, s, cell, "server_rss_kb"), 1024), 1),
            num(div(value(agg, s, cell, "server_pss_kb"), 1024), 1),
            num(kib_per_connection(agg, s, cell, "server_rss_kb"), 1),
            num(kib_per_connection(agg, s, cell, "server_pss_kb"), 1),
            num(value(agg, s, cell, "server_threads")),
            num(value(agg, s, cell, "server_procs")), num(starved(agg, s, cell))))
    return "\n".join(out) + "\n"


def div(v, d):
    return None if v is None else v / d


def update_readme(path, text):
    """Replaces what stands between the markers in bench/README.md."""
    try:
        with open(path) as f:
            old = f.read()
    except OSError:
        return
    b, e = old.find(BEGIN), old.find(END)
    if b < 0 or e < b:
        return
    with open(path, "w") as f:
        f.write(old[:b + len(BEGIN)] + "\n" + text + old[e:])


# ---- plot ------------------------------------------------------------------

def plot(agg, servers, cells, png, info):
    gnuplot = shutil.which("gnuplot")
    rps_cells = [c for c in cells if c in RPS_CELLS]
    servers = measured(agg, servers, rps_cells)
    if gnuplot is None or not rps_cells:
        print("bench: gnuplot not installed: no plot", flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for key in ("rps", "cpu_us_per_req"):
            with open(os.path.join(tmp, key + ".dat"), "w") as f:
                f.write("cell " + " ".join(servers) + "\n")
                for c in rps_cells:
                    vals = [value(agg, s, c, key) for s in servers]
                    f.write(c + " " + " ".join("%g" % v if v else "NaN" for v in vals) + "\n")
        colors = " ".join(COLORS.get(s, "#999999") for s in servers)
        script = GNUPLOT % {"png": png, "n": len(servers) + 1, "tmp": tmp, "colors": colors,
                            "title": "%s, %s" % (info["date"], info["machine"])}
        os.makedirs(os.path.dirname(png), exist_ok=True)
        subprocess.run([gnuplot], input=script, text=True, timeout=60, check=False)


# Our modes in blues, the C references in greys and oranges, Python in greens.
COLORS = {"ss-sync": "#08306b", "ss-threading": "#2171b5", "ss-forking": "#6baed6",
          "ss-pool": "#00a6a6", "ss-threading-proxy": "#9ecae1", "ss-pool-proxy": "#66c2c2",
          "ss-threading-tls": "#c6dbef", "ss-pool-tls": "#99d8d8", "epoll-tls": "#636363",
          "epoll": "#252525", "threads": "#969696", "libuv": "#e6550d",
          "libevent": "#fdae6b", "py-sync": "#006d2c", "py-threading": "#41ab5d",
          "py-forking": "#a1d99b"}

GNUPLOT = """
set terminal pngcairo size 1400,1000 font ",10" noenhanced
colors = "%(colors)s"
set output "%(png)s"
set multiplot layout 2,1 title "libsocketserver uppercase_server vs references - %(title)s"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.9 border -1
set boxwidth 0.9
set logscale y
set grid ytics
set key outside right top vertical
set ylabel "requests / s (log)"
plot for [i=2:%(n)d] "%(tmp)s/rps.dat" using i:xtic(1) title columnheader(i) lc rgb word(colors, i-1)
set ylabel "server CPU us / request (log)"
plot for [i=2:%(n)d] "%(tmp)s/cpu_us_per_req.dat" using i:xtic(1) title columnheader(i) \\
     lc rgb word(colors, i-1)
unset multiplot
"""
