#!/usr/bin/env python3
"""moto side of the security-group benchmark (bench/WORKLOAD.md), via boto3's EC2 client.

Same phases, per-phase figures and JSON shape as `palisade-bench`, so that bench/table.py
can put both side by side:

  setup (untimed)  CreateVpc
  create           CreateSecurityGroup in that VPC            G calls
  authorize        AuthorizeSecurityGroupIngress, one rule    G*R calls
  describe         DescribeSecurityGroups(GroupIds=[id])      G*D calls
  revoke           RevokeSecurityGroupIngress, odd-j rules    G*R/2 calls
  delete           DeleteSecurityGroup                        G calls

Each worker thread has its own boto3 client (its own connection pool); requests are handed
out in a seeded random order. Latency is client-observed; server CPU is read from
/proc/PID/stat of --server-pid, its peak RSS from /proc/PID/status (VmHWM).

usage: moto_driver.py --endpoint http://127.0.0.1:PORT --server-pid PID
                      [--groups 200 --rules 50 --describes 5 --concurrency 16 --json FILE]
"""

import argparse
import ipaddress
import json
import math
import os
import platform
import random
import sys
import threading
import time
import urllib.parse

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- /proc readings

def cpu_seconds(pid):
    """User + system CPU seconds of process pid, None when unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    after_name = text[text.rfind(")") + 1:].split()
    # after the name: state is [0], utime [11], stime [12]
    return (int(after_name[11]) + int(after_name[12])) / TICKS


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name == key:
                    return int(rest.split()[0])
    except OSError:
        pass
    return None


def nearest_rank(sorted_vals, q):
    if not sorted_vals:
        return None
    rank = math.ceil(q * len(sorted_vals) / 100)
    return sorted_vals[min(max(rank, 1), len(sorted_vals)) - 1]


# ---------------------------------------------------------------- the workload

def rule(i, j, groups):
    """Rule j of group i: (protocol, from, to, ('cidr', str) | ('group', index))."""
    if j % 4 == 3:
        proto = "tcp" if (j // 4) % 2 == 0 else "udp"
        source = ("group", (i + 1) % groups)
    else:
        proto = ("tcp", "udp", "icmp")[j % 3]
        source = ("cidr", "10.%d.%d.0/24" % ((j >> 8) & 255, j & 255))
    if proto == "icmp":
        lo = hi = -1
    else:
        lo = 1000 + 10 * j
        hi = lo + j % 5
    return proto, lo, hi, source


def revoked(j):
    return j % 2 == 1


def permission(spec, ids):
    proto, lo, hi, (kind, src) = spec
    p = {"IpProtocol": proto, "FromPort": lo, "ToPort": hi}
    if kind == "cidr":
        p["IpRanges"] = [{"CidrIp": src}]
    else:
        p["UserIdGroupPairs"] = [{"GroupId": ids[src]}]
    return p


def rule_key(spec, ids):
    proto, lo, hi, (kind, src) = spec
    return (proto, lo, hi, src if kind == "cidr" else ids[src])


def described_keys(sg):
    """The ingress rules of one DescribeSecurityGroups entry, one key per source."""
    out = []
    for p in sg.get("IpPermissions", []):
        head = (p.get("IpProtocol"), p.get("FromPort", -1), p.get("ToPort", -1))
        out += [head + (r.get("CidrIp"),) for r in p.get("IpRanges", [])]
        out += [head + (r.get("CidrIpv6"),) for r in p.get("Ipv6Ranges", [])]
        out += [head + (r.get("GroupId"),) for r in p.get("UserIdGroupPairs", [])]
        out += [head + (r.get("PrefixListId"),) for r in p.get("PrefixListIds", [])]
    return out


# ---------------------------------------------------------------- running phases

class Runner:
    def __init__(self, clients, server_pid):
        self.clients = clients
        self.pid = server_pid

    def run(self, tasks, fn):
        """fn(client, task) on one thread per client; returns ([(result|exc, latency)], wall)."""
        out = [None] * len(tasks)
        cursor = iter(range(len(tasks)))
        lock = threading.Lock()

        def worker(client):
            while True:
                with lock:
                    k = next(cursor, None)
                if k is None:
                    return
                t = time.perf_counter()
                try:
                    res = fn(client, tasks[k])
                except Exception as e:  # ClientError, connection errors, ...
                    res = e
                out[k] = (res, time.perf_counter() - t)

        threads = [threading.Thread(target=worker, args=(c,)) for c in self.clients]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return out, time.perf_counter() - t0

    def phase(self, name, tasks, fn):
        srv0 = cpu_seconds(self.pid) if self.pid else None
        cli0 = time.process_time()
        res, wall = self.run(tasks, fn)
        cli = time.process_time() - cli0
        srv1 = cpu_seconds(self.pid) if self.pid else None
        lat = sorted(l for _, l in res)
        codes, samples = {}, []
        for (r, _), task in zip(res, tasks):
            if isinstance(r, Exception):
                code, status = error_code(r)
                if code not in codes:
                    samples.append({"phase": name, "code": code, "status": status,
                                    "request": f"{fn.__name__} {task!r}", "reply": str(r)})
                codes[code] = codes.get(code, 0) + 1
        n = len(tasks)
        srv = srv1 - srv0 if srv0 is not None and srv1 is not None else None
        st = {
            "phase": name,
            "requests": n,
            "wall_s": wall,
            "rps": n / wall if wall > 0 else None,
            "p50_ms": ms(nearest_rank(lat, 50)),
            "p99_ms": ms(nearest_rank(lat, 99)),
            "max_ms": ms(lat[-1] if lat else None),
            "errors": sum(codes.values()),
            "error_codes": codes,
            "server_cpu_s": srv,
            "server_cpu_ms_per_req": 1000 * srv / n if srv is not None and n else None,
            "client_cpu_s": cli,
            "server_rss_kib": status_kib(self.pid, "VmRSS") if self.pid else None,
        }
        print(row(st), flush=True)
        return st, samples, [r for r, _ in res]


def ms(seconds):
    return None if seconds is None else seconds * 1000


def error_code(exc):
    if isinstance(exc, ClientError):
        return (exc.response.get("Error", {}).get("Code", "ClientError"),
                exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return type(exc).__name__, 0


HEADER = ("phase         reqs   wall_s    req/s   p50_ms   p99_ms errors  srv_cpu srv_ms/r"
          "  cli_cpu rss_MiB")


def row(s):
    def f(v, p):
        return "n/a" if v is None else f"{v:.{p}f}"
    rss = None if s["server_rss_kib"] is None else s["server_rss_kib"] / 1024
    return (f"{s['phase']:<10} {s['requests']:>7} {s['wall_s']:>8.2f} {f(s['rps'], 0):>8} "
            f"{f(s['p50_ms'], 2):>8} {f(s['p99_ms'], 2):>8} {s['errors']:>6} "
            f"{f(s['server_cpu_s'], 2):>8} {f(s['server_cpu_ms_per_req'], 3):>8} "
            f"{f(s['client_cpu_s'], 2):>8} {f(rss, 0):>7}")


# ---------------------------------------------------------------- checks

def check_rules(runner, ids, expected, label):
    """Untimed: compare each group's ingress rules with the expected key sets."""
    batches = [ids[k:k + 100] for k in range(0, len(ids), 100)]

    def describe_batch(client, batch):
        return client.describe_security_groups(GroupIds=batch)["SecurityGroups"]

    res, _ = runner.run(batches, describe_batch)
    got = {}
    for r, _ in res:
        if isinstance(r, Exception):
            print(f"  check [{label}]: describe failed: {r}")
            continue
        for sg in r:
            got[sg["GroupId"]] = described_keys(sg)
    bad = 0
    for gid, exp in zip(ids, expected):
        keys = got.get(gid)
        if keys is None or len(keys) != len(exp) or set(keys) != exp:
            bad += 1
            if bad <= 5:
                if keys is None:
                    print(f"  MISMATCH [{label}] {gid}: not in the describe reply")
                else:
                    print(f"  MISMATCH [{label}] {gid}: got {len(keys)} rules, expected {len(exp)}")
    total = sum(len(v) for v in got.values())
    print(f"check [{label}]: {len(ids)} groups, {total} ingress rules "
          f"(expected {sum(len(e) for e in expected)}): "
          f"{'OK' if bad == 0 else f'{bad} MISMATCHING GROUPS'}")
    return bad


# ---------------------------------------------------------------- main

def workload(args, runner, out):
    G, R, D = args.groups, args.rules, args.describes
    rng = random.Random(args.seed)
    ec2 = runner.clients[0]
    tag = f"{os.getpid()}-{int(time.time())}"

    vpc_id = ec2.create_vpc(CidrBlock="192.168.0.0/16")["Vpc"]["VpcId"]
    print(f"setup: VPC {vpc_id}\n\n{HEADER}")

    def collect(st, samples):
        out["phases"].append(st)
        out["error_samples"].extend(samples)

    # create
    def create_security_group(c, i):
        return c.create_security_group(GroupName=f"bench-{tag}-{i:05d}",
                                       Description=f"bench group {i}", VpcId=vpc_id)["GroupId"]

    st, samples, res = runner.phase("create", list(range(G)), create_security_group)
    collect(st, samples)
    ids = [r for r in res if isinstance(r, str)]
    if len(ids) != G:
        raise RuntimeError(f"only {len(ids)} of {G} groups were created")

    # authorize
    specs = [[rule(i, j, G) for j in range(R)] for i in range(G)]
    tasks = [(i, j) for i in range(G) for j in range(R)]
    rng.shuffle(tasks)

    def authorize_security_group_ingress(c, ij):
        i, j = ij
        return c.authorize_security_group_ingress(
            GroupId=ids[i], IpPermissions=[permission(specs[i][j], ids)])

    collect(*runner.phase("authorize", tasks, authorize_security_group_ingress)[:2])

    # describe
    tasks = [i for i in range(G) for _ in range(D)]
    rng.shuffle(tasks)

    def describe_security_groups(c, i):
        return c.describe_security_groups(GroupIds=[ids[i]])

    st, samples, res = runner.phase("describe", tasks, describe_security_groups)
    collect(st, samples)
    bad = 0
    for i, r in zip(tasks, res):
        if isinstance(r, dict):
            sgs = r.get("SecurityGroups", [])
            if len(sgs) != 1 or sgs[0].get("GroupId") != ids[i] or len(described_keys(sgs[0])) != R:
                bad += 1
    print()
    if bad:
        print(f"  MISMATCH [describe]: {bad} replies without exactly {R} ingress rules "
              f"of the requested group")
    out["total"]["mismatches"] += bad
    expected = [{rule_key(s, ids) for s in specs[i]} for i in range(G)]
    out["total"]["mismatches"] += check_rules(runner, ids, expected, "after authorize")

    # revoke
    tasks = [(i, j) for i in range(G) for j in range(R) if revoked(j)]
    rng.shuffle(tasks)

    def revoke_security_group_ingress(c, ij):
        i, j = ij
        return c.revoke_security_group_ingress(
            GroupId=ids[i], IpPermissions=[permission(specs[i][j], ids)])

    print(f"\n{HEADER}")
    collect(*runner.phase("revoke", tasks, revoke_security_group_ingress)[:2])
    print()
    expected = [{rule_key(specs[i][j], ids) for j in range(R) if not revoked(j)} for i in range(G)]
    out["total"]["mismatches"] += check_rules(runner, ids, expected, "after revoke")

    # delete
    tasks = list(range(G))
    rng.shuffle(tasks)

    def delete_security_group(c, i):
        return c.delete_security_group(GroupId=ids[i])

    print(f"\n{HEADER}")
    collect(*runner.phase("delete", tasks, delete_security_group)[:2])
    print()
    left = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
    ours = [g for g in left if g.get("GroupName", "").startswith(f"bench-{tag}-")]
    if ours:
        out["total"]["mismatches"] += 1
    print(f"check [after delete]: {len(ours)} benchmark groups left in the VPC "
          f"({len(left)} incl. the VPC's default group): {'OK' if not ours else 'FAIL'}")
    ec2.delete_vpc(VpcId=vpc_id)


def loopback_only(url):
    u = urllib.parse.urlparse(url)
    host = u.hostname or ""
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = host == "localhost"
    if u.scheme != "http" or not ok:
        sys.exit(f"refusing endpoint {url!r}: only http:// on loopback")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--server-pid", type=int)
    ap.add_argument("--groups", type=int, default=200)
    ap.add_argument("--rules", type=int, default=50)
    ap.add_argument("--describes", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--json")
    args = ap.parse_args()
    loopback_only(args.endpoint)
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        os.environ.pop(var, None)

    def new_client():
        return boto3.session.Session().client(
            "ec2", endpoint_url=args.endpoint, region_name=args.region,
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(max_pool_connections=2, connect_timeout=10, read_timeout=300,
                          retries={"total_max_attempts": 1}))

    clients = [new_client() for _ in range(max(1, args.concurrency))]
    for c in clients:  # untimed warm-up: client-side lazy setup and the server's EC2 backend
        c.describe_vpcs()
    runner = Runner(clients, args.server_pid)
    print(f"moto_driver: endpoint {args.endpoint}, G={args.groups} groups, R={args.rules} "
          f"rules/group, D={args.describes} describes/group, concurrency={args.concurrency}, "
          f"seed={args.seed}; python {platform.python_version()}, boto3 {boto3.__version__}, "
          f"botocore {botocore.__version__}; {os.cpu_count()} CPUs")
    rss0 = status_kib(args.server_pid, "VmRSS") if args.server_pid else None
    out = {"server": "moto",
           "params": {"groups": args.groups, "rules": args.rules, "describes": args.describes,
                      "concurrency": args.concurrency, "seed": args.seed},
           "phases": [], "total": {"mismatches": 0}, "aborted": None, "error_samples": [],
           "server_rss_before_kib": rss0}
    try:
        workload(args, runner, out)
    except Exception as e:
        out["aborted"] = f"{type(e).__name__}: {e}"
        print(f"\nABORTED: {out['aborted']}")

    ph = out["phases"]
    reqs = sum(p["requests"] for p in ph)
    wall = sum(p["wall_s"] for p in ph)
    errs = sum(p["errors"] for p in ph)
    out["total"].update({"requests": reqs, "wall_s": wall, "errors": errs})
    for p in ph:
        for code, n in p["error_codes"].items():
            print(f"  errors in {p['phase']}: {code} x{n}")
    for s in out["error_samples"]:
        print(f"  first {s['code']} error in {s['phase']}: {s['request']} -> {s['reply']}")
    print(f"total: {reqs} requests in {wall:.2f} s ({reqs / wall if wall else 0:.0f} req/s), "
          f"{errs} errors, {out['total']['mismatches']} correctness mismatches")
    hwm = status_kib(args.server_pid, "VmHWM") if args.server_pid else None
    if hwm:
        print(f"server peak RSS (VmHWM of pid {args.server_pid}): {hwm / 1024:.1f} MiB")
    out["server_peak_rss_kib"] = hwm
    out["clk_tck"] = TICKS
    out["client"] = {"name": "moto_driver.py", "python": platform.python_version(),
                     "boto3": boto3.__version__, "cpus": os.cpu_count()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
    sys.exit(1 if out["aborted"] else 0)


if __name__ == "__main__":
    main()
