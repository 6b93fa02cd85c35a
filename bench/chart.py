#!/usr/bin/env python3
"""Draws one benchmark's results as an SVG bar chart of ropewalk's ratio against its peers.

The input is Markdown: what a driver printed (`target/release/http > http.md`) or a
recorded results file (`results/2026-11-28-0317-http-floor.md`). Every table in it that
has the benchmark's columns is read, in order; a later row with the same scenario (and
server) replaces an earlier one, so a newer table can be given after an older one.

Each bar is ropewalk's advantage over one peer in one scenario, on a log scale from the
1.0x line: right of it ropewalk is ahead, left of it the peer is. For a time per op that
is the table's ratio (peer's time / ropewalk's); for throughput, ropewalk's / the peer's;
for CPU or memory per request, the peer's / ropewalk's (a table's 0.85x is drawn 1.18x).
A whisker shows the spread of the rounds' ratios where the table gives it.

Only the standard library is used, so that it runs wherever the Twisted peers run.

    python3 chart.py http results/2026-11-28-0317-http-floor.md -o http.svg \\
        --date "2026-11-28 03:48 UTC"
"""

import argparse
import math
import re
import sys
from html import escape

# Okabe-Ito: told apart with every common colour-vision deficiency.
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00"]
BENCHMARKS = {
    "deferred": ("Deferred: ropewalk vs Twisted", "time per op"),
    "lines": ("LineReceiver: ropewalk vs Twisted", "time per op"),
    "reactor": ("reactor: ropewalk vs tokio (current_thread)", "time per op"),
    "echo": ("echo: ropewalk vs its peers", "per round trip"),
    "http": ("HTTP: ropewalk vs its peers", "per request"),
    "https": ("HTTPS: ropewalk vs hyper + tokio-rustls", "per request"),
    "multicore": ("multicore: ropewalk's designs vs tokio multi-thread", "round trips/s"),
}
PEERS = {"twisted": "Twisted", "tokio": "tokio", "hyper": "hyper"}
DESIGNS = {
    "one": "one reactor",
    "own": "N reactors, own queues",
    "shared": "N reactors, shared queue",
    "two-stage": "reactor + worker pool",
}


def tables(text):
    """Every Markdown table in `text`: (headers, rows). A header is a row followed by a
    `| --- |` row; rows with no header above them (in the same block) are skipped."""
    out, current = [], None
    lines = [line.strip() for line in text.splitlines()] + [""]
    for i, line in enumerate(lines[:-1]):
        if not line.startswith("|"):
            current = None
            continue
        cells = split_row(line)
        if is_rule(cells):
            continue
        nxt = lines[i + 1]
        if nxt.startswith("|") and is_rule(split_row(nxt)):
            current = (cells, [])
            out.append(current)
        elif current is not None:
            current[1].append(cells)
    return out


def is_rule(cells):
    return all(re.fullmatch(r":?-+:?", c) for c in cells)


def split_row(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def number(cell):
    """`2.9×`, `1 051 182`, `0.86x` -> float; None for `-` or text."""
    s = cell.replace("×", "").replace("x", "").replace(" ", "").replace("\u2009", "")
    s = s.replace(",", "").replace("*", "")
    try:
        return float(s)
    except ValueError:
        return None


def spread(cell):
    """`40×–60×`, `1.0–1.1×`, `44, 49, 60` -> (low, high); None if not a spread."""
    parts = [number(p) for p in re.split(r"[–,]", cell) if p.strip()]
    if len(parts) >= 2 and all(p is not None for p in parts):
        return min(parts), max(parts)
    return None


def ratio_column(headers):
    for j, h in enumerate(headers):
        h = h.lower()
        if h.startswith("ratio") and not any(w in h for w in ("fastest", "range", "per run")):
            return j
    return None


def spread_column(headers):
    for j, h in enumerate(headers):
        h = h.lower()
        if h in ("rounds' ratios", "ratio per run") or h.startswith("ratio range"):
            return j
    return None


def time_ratios(bench, text):
    """deferred, lines, reactor: the ratio column, one series (the peer)."""
    peer = "tokio" if bench == "reactor" else "Twisted"
    bars = {}
    for headers, rows in tables(text):
        if not headers or headers[0].lower() != "scenario":
            continue
        rc, sc = ratio_column(headers), spread_column(headers)
        if rc is None:
            continue
        for row in rows:
            if len(row) <= rc:
                continue
            name = row[0].split(",")[0].strip()
            rng = spread(row[rc]) or (spread(row[sc]) if sc is not None and sc < len(row) else None)
            value = number(row[rc])
            if value is None and rng:
                value = math.sqrt(rng[0] * rng[1])
            if value is not None:
                bars[(name, peer)] = (value, rng)
    return bars


def metric_of(headers, j):
    """What the `vs PEER` column j compares: throughput, cpu, memory, or None (syscalls)."""
    here = headers[j].lower()
    text = here if not here.startswith("vs") else (headers[j - 1].lower() if j else "")
    if "/s" in text:
        return "throughput"
    if "cpu" in text:
        return "cpu"
    if "bytes" in text:
        return "memory"
    return None


LABELS = {
    "throughput": {"echo": "round trips/s", "http": "req/s", "https": "req/s"},
    "cpu": {"echo": "CPU/round trip", "http": "CPU/request", "https": "CPU/request"},
    "memory": {"echo": "memory/idle conn", "http": "memory/idle conn", "https": "memory/idle conn"},
}


def server_ratios(bench, text):
    """echo, http, https: ropewalk's row against each peer's, per scenario and metric."""
    rows_by = {}
    order = []
    for headers, rows in tables(text):
        low = [h.lower() for h in headers]
        if "server" not in low:
            continue
        sv = low.index("server")
        vs = [(j, m) for j, h in enumerate(low) if " vs " in f" {h} " for m in [metric_of(headers, j)] if m]
        if not vs:
            continue
        # The peer a `vs hyper` column divides by may have no row of its own (it is 1.0×).
        base = headers[vs[0][0]].lower().split("vs ")[-1].strip()
        scen = None
        if "scenario" in low:
            scen = low.index("scenario")
        elif "connections" in low:
            scen = low.index("connections")
        elif "idle connections" in low:
            scen = low.index("idle connections")
        elif "idle tls connections" in low:
            scen = low.index("idle tls connections")
        last = ""
        for row in rows:
            if len(row) < len(headers):
                continue
            name = row[scen] if scen is not None else ""
            name = name or last
            last = name
            if scen is not None and low[scen].endswith("connections"):
                name = f"{name} {'idle' if low[scen].startswith('idle') else 'connections'}"
            for j, metric in vs:
                value = number(row[j])
                if value is None:
                    continue
                key = (name, metric)
                if key not in rows_by:
                    rows_by[key] = {base: 1.0} if base in PEERS else {}
                    order.append(key)
                rows_by[key][row[sv].lower()] = value
    bars = {}
    for name, metric in order:
        servers = rows_by[(name, metric)]
        if "ropewalk" not in servers:
            continue
        ours = servers["ropewalk"]
        for server, theirs in servers.items():
            peer = PEERS.get(server)
            if peer is None or server == "ropewalk":
                continue
            r = ours / theirs if metric == "throughput" else theirs / ours
            bars[(name, f"{LABELS[metric][bench]} vs {peer}")] = (r, None)
    return bars


def multicore_ratios(text):
    bars = {}
    for headers, rows in tables(text):
        low = [h.lower() for h in headers]
        if not {"workload", "connections", "server", "vs tokio-mt"} <= set(low):
            continue
        w, c, s, v = (low.index(k) for k in ("workload", "connections", "server", "vs tokio-mt"))
        for row in rows:
            design = DESIGNS.get(row[s].strip())
            value = number(row[v]) if len(row) > v else None
            if design and value is not None:
                bars[(f"{row[w]}, {row[c]} connections", design)] = (value, None)
    return bars


def ratios(bench, text):
    if bench in ("deferred", "lines", "reactor"):
        return time_ratios(bench, text)
    if bench == "multicore":
        return multicore_ratios(text)
    return server_ratios(bench, text)


def fmt(v):
    return f"{v:.0f}×" if v >= 10 else f"{v:.2f}×"


def mantissas(lo, hi):
    """Tick steps per decade: 1-2-5, or finer when the chart spans little."""
    return (1, 2, 5) if hi / lo > 6 else (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8)


def ticks(lo, hi):
    out, e = [], math.floor(math.log10(lo)) - 1
    while True:
        for m in mantissas(lo, hi):
            t = m * 10.0**e
            if t > hi * 1.0001:
                return out
            if t >= lo * 0.9999:
                out.append(t)
        e += 1


def svg(bench, bars, date, source, title=None):
    """The chart as SVG text: scenarios as groups of horizontal bars, one colour a series."""
    title = title or BENCHMARKS[bench][0]
    groups, series = [], []
    for name, s in bars:
        if name not in groups:
            groups.append(name)
        if s not in series:
            series.append(s)
    values = [v for v, _ in bars.values()] + [x for _, r in bars.values() if r for x in r]
    lo = min(values + [1.0]) / 1.15
    hi = max(values + [1.0]) * 1.3
    grid = [10.0**e * m for e in range(-3, 5) for m in mantissas(lo, hi)]
    lo = max([g for g in grid if g <= lo] or [grid[0]])
    hi = min([g for g in grid if g >= hi] or [grid[-1]])
    label_w = min(300, 16 + 7.2 * max(len(g) for g in groups))
    width, right = 800, 24
    plot_w = width - label_w - right
    bar_h, bar_gap, group_gap = 16, 3, 14
    legend_rows = math.ceil(len(series) / 2)
    top = 64 + 20 * legend_rows
    # A group has a row for each series it has a bar in (not every series).
    rows = {g: [s for s in series if (g, s) in bars] for g in groups}
    body = sum(len(rows[g]) * (bar_h + bar_gap) + group_gap for g in groups)
    height = top + body + 58

    def x(v):
        return label_w + plot_w * (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f"<title>{escape(title)}, {escape(date)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="16" y="24" font-size="16" font-weight="bold" fill="#222">{escape(title)}</text>',
        f'<text x="16" y="44" fill="#555">{escape(date)}'
        + (f" · {escape(source)}" if source else "")
        + "</text>",
    ]
    for i, s in enumerate(series):
        lx, ly = 16 + (i % 2) * 380, 62 + 20 * (i // 2)
        out.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{COLOURS[i % 6]}"/>')
        out.append(f'<text x="{lx + 18}" y="{ly}" fill="#222">{escape(s)}</text>')
    bottom = top + body
    for t in ticks(lo, hi):
        tx = x(t)
        even = abs(t - 1.0) < 1e-9
        out.append(
            f'<line x1="{tx:.1f}" y1="{top - 6}" x2="{tx:.1f}" y2="{bottom}" '
            f'stroke="{"#222" if even else "#ddd"}" stroke-width="{1.5 if even else 1}"/>'
        )
        out.append(
            f'<text x="{tx:.1f}" y="{bottom + 16}" text-anchor="middle" fill="#444">'
            f"{t:g}×</text>"
        )
    y = top
    for g in groups:
        gh = len(rows[g]) * (bar_h + bar_gap)
        out.append(
            f'<text x="{label_w - 8}" y="{y + gh / 2 + 4:.1f}" text-anchor="end" '
            f'fill="#222">{escape(g)}</text>'
        )
        for s in rows[g]:
            i = series.index(s)
            v, rng = bars[(g, s)]
            x0, x1 = sorted((x(1.0), x(v)))
            out.append(
                f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" height="{bar_h}" '
                f'fill="{COLOURS[i % 6]}"><title>{escape(g)}, {escape(s)}: {fmt(v)}</title></rect>'
            )
            end = x(v)
            if rng:
                a, b, cy = x(rng[0]), x(rng[1]), y + bar_h / 2
                out.append(
                    f'<path d="M{a:.1f} {cy - 4}v8M{a:.1f} {cy}H{b:.1f}M{b:.1f} {cy - 4}v8" '
                    f'stroke="#333" fill="none"/>'
                )
                end = max(end, b) if v >= 1 else min(end, a)
            if v >= 1:
                out.append(f'<text x="{end + 4:.1f}" y="{y + 12}" fill="#222">{fmt(v)}</text>')
            else:
                out.append(
                    f'<text x="{end - 4:.1f}" y="{y + 12}" text-anchor="end" fill="#222">{fmt(v)}</text>'
                )
            y += bar_h + bar_gap
        y += group_gap
    out.append(
        f'<text x="{x(1.0):.1f}" y="{bottom + 34}" text-anchor="middle" fill="#222">'
        f"← the peer ahead · 1.0× · ropewalk ahead →</text>"
    )
    out.append(
        f'<text x="{width - right}" y="{bottom + 50}" text-anchor="end" fill="#777" font-size="11">'
        f"ropewalk's advantage, log scale ({escape(BENCHMARKS[bench][1])}; CPU and memory as "
        f"the peer's ÷ ropewalk's)</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv):
    ap = argparse.ArgumentParser(
        description="Draw a benchmark's Markdown results as an SVG chart of ropewalk's "
        "ratio against each peer."
    )
    ap.add_argument("benchmark", choices=sorted(BENCHMARKS))
    ap.add_argument("tables", nargs="+", help="Markdown files; later rows replace earlier ones")
    ap.add_argument("-o", "--output", required=True, help="the SVG file to write")
    ap.add_argument("--date", default="", help="when the run was, shown under the title")
    ap.add_argument("--source", default="", help="where the figures come from, shown too")
    ap.add_argument("--title", help="instead of the benchmark's title")
    a = ap.parse_args(argv)
    text = "\n\n".join(open(p, encoding="utf-8").read() for p in a.tables)
    bars = ratios(a.benchmark, text)
    if not bars:
        print(f"chart.py: no {a.benchmark} table with ratios in {', '.join(a.tables)}", file=sys.stderr)
        return 1
    with open(a.output, "w", encoding="utf-8") as f:
        f.write(svg(a.benchmark, bars, a.date, a.source, a.title))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
