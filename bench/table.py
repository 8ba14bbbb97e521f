#!/usr/bin/env python3
"""Side-by-side table of palisade-bench and moto_driver.py results (Markdown on stdout).

usage: table.py DIR C [C ...]
  reads DIR/palisade-c<C>.json and DIR/moto-c<C>.json for each concurrency C;
  a missing or aborted side shows as n/a.
"""

import json
import os
import sys

PHASES = ["create", "authorize", "describe", "revoke", "delete"]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fnum(v, prec):
    return "n/a" if v is None else f"{v:,.{prec}f}"


def cpu(p, doc):
    """Server CPU ms per request; a phase that used less than one clock tick shows as < bound."""
    if not p or p.get("server_cpu_ms_per_req") is None:
        return "n/a"
    if p.get("server_cpu_s") == 0 and p.get("requests"):
        tick_ms = 1000 / ((doc or {}).get("clk_tck") or 100)
        return f"< {tick_ms / p['requests']:.3f}"
    return f"{p['server_cpu_ms_per_req']:.3f}"


def lat(p):
    if not p or p.get("p50_ms") is None:
        return "n/a"
    return f"{p['p50_ms']:.2f} / {p['p99_ms']:.2f}"


def mib(kib):
    return "n/a" if not kib else f"{kib / 1024:.1f} MiB"


def section(directory, c):
    pal = load(os.path.join(directory, f"palisade-c{c}.json"))
    moto = load(os.path.join(directory, f"moto-c{c}.json"))
    by = [{p["phase"]: p for p in (doc or {}).get("phases", [])} for doc in (pal, moto)]
    out = [f"### concurrency {c}", "",
           "| phase | palisade req/s | moto req/s | ratio | palisade p50 / p99 ms "
           "| moto p50 / p99 ms | palisade CPU ms/req | moto CPU ms/req | errors (p / m) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in PHASES:
        p, m = by[0].get(name), by[1].get(name)
        prps = p.get("rps") if p else None
        mrps = m.get("rps") if m else None
        ratio = f"{prps / mrps:.1f}x" if prps and mrps else "n/a"
        out.append(
            f"| {name} | {fnum(prps, 0)} | {fnum(mrps, 0)} | {ratio} | {lat(p)} | {lat(m)} "
            f"| {cpu(p, pal)} | {cpu(m, moto)} "
            f"| {p['errors'] if p else 'n/a'} / {m['errors'] if m else 'n/a'} |")
    out.append("")
    out.append(f"Server peak RSS (VmHWM): palisade {mib((pal or {}).get('server_peak_rss_kib'))}, "
               f"moto {mib((moto or {}).get('server_peak_rss_kib'))}.")
    for label, doc in (("palisade", pal), ("moto", moto)):
        if doc is None:
            out.append(f"- {label}: no results")
            continue
        tot = doc.get("total", {})
        notes = []
        if doc.get("aborted"):
            notes.append(f"ABORTED: {doc['aborted']}")
        if tot.get("mismatches"):
            notes.append(f"{tot['mismatches']} correctness mismatches")
        for ph in doc.get("phases", []):
            for code, n in ph.get("error_codes", {}).items():
                notes.append(f"{ph['phase']}: {code} x{n}")
        if notes:
            out.append(f"- {label}: " + "; ".join(notes))
    out.append("")
    return "\n".join(out)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    directory = sys.argv[1]
    print("\n".join(section(directory, c) for c in sys.argv[2:]))


if __name__ == "__main__":
    main()
