# Traffic helper of the palisade-agent tests: runs inside a network namespace, reads one
# command per line on stdin and answers one line on stdout. Outcomes of a probe:
# "ok" (answered), "refused" (a RST or ICMP unreachable came back: the packet got
# through), "timeout" (nothing came back), "error <why>".
import os
import random
import select
import socket
import struct
import sys
import threading
import time


def out(s):
    sys.stdout.write(s + "\n")
    sys.stdout.flush()


def tcp_server(port, addr="0.0.0.0"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(512)

    def serve(c):
        try:
            while True:
                d = c.recv(4096)
                if not d:
                    break
                c.sendall(d)
        except Exception:
            pass
        finally:
            c.close()

    def loop():
        while True:
            try:
                c, _ = s.accept()
            except Exception:
                continue
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def udp_server(port, addr="0.0.0.0"):
    # Bound to one address, replies leave from that address.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))

    def loop():
        while True:
            try:
                d, a = s.recvfrom(4096)
                s.sendto(d, a)
            except Exception:
                pass

    threading.Thread(target=loop, daemon=True).start()


def err(e):
    # One word: batch answers are space-separated. EPERM means a local nft drop.
    return "error:" + str(e).replace(" ", "_")


def tcp_probe(ip, port, sport=0, timeout=1.0, src=""):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Close with a RST: no TIME_WAIT, the same source port can be used again.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        if sport or src:
            s.bind((src or "0.0.0.0", sport))
        s.settimeout(timeout)
        s.connect((ip, port))
        s.sendall(b"ping\n")
        d = s.recv(16)
        return "ok" if d else "error:eof"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return err(e)
    finally:
        s.close()


def udp_probe(ip, port, sport=0, timeout=1.0, src=""):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        if sport or src:
            s.bind((src or "0.0.0.0", sport))
        s.settimeout(timeout)
        s.connect((ip, port))
        s.send(b"ping")
        s.recv(64)
        return "ok"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return err(e)
    finally:
        s.close()


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def echo_request(ident, seq):
    payload = b"palisade"
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    c = checksum(hdr + payload)
    return struct.pack("!BBHHH", 8, 0, c, ident, seq) + payload


def is_reply(data, ident, ip, addr):
    ihl = (data[0] & 0xF) * 4
    if len(data) < ihl + 8:
        return False
    t, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
    return t == 0 and rid == ident and addr[0] == ip


def icmp_probe(ip, timeout=1.0, src=""):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        if src:
            s.bind((src, 0))
        ident = random.randint(1, 65535)
        s.sendto(echo_request(ident, 1), (ip, 0))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            r, _, _ = select.select([s], [], [], left)
            if not r:
                return "timeout"
            data, addr = s.recvfrom(2048)
            if is_reply(data, ident, ip, addr):
                return "ok"
    except OSError as e:
        return err(e)
    finally:
        s.close()


def run_spec(spec):
    # kind,ip,port,sport,timeout,src
    f = spec.split(",")
    kind, ip = f[0], f[1]
    port = int(f[2]) if len(f) > 2 and f[2] else 0
    sport = int(f[3]) if len(f) > 3 and f[3] else 0
    timeout = float(f[4]) if len(f) > 4 and f[4] else 1.0
    src = f[5] if len(f) > 5 else ""
    if kind == "tcp":
        return tcp_probe(ip, port, sport, timeout, src)
    if kind == "udp":
        return udp_probe(ip, port, sport, timeout, src)
    if kind == "icmp":
        return icmp_probe(ip, timeout, src)
    return "error:kind"


def passed(r):
    return r in ("ok", "refused")


held = {}
storms = {}


def hold(name, ip, port, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
        s.sendall(b"hello\n")
        if not s.recv(16):
            return "error:eof"
        held[name] = s
        return "ok"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return err(e)


def say(name, timeout):
    s = held[name]
    s.settimeout(timeout)
    try:
        s.sendall(b"again\n")
        return "ok" if s.recv(16) else "error:eof"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return err(e)


def storm_start(name, spec, threads):
    # Connection attempts (TCP) or one-shot probes in a loop, in several threads.
    st = {"stop": False, "ok": 0, "n": 0, "lock": threading.Lock(), "threads": []}

    def loop():
        while not st["stop"]:
            r = run_spec(spec)
            with st["lock"]:
                st["n"] += 1
                if passed(r):
                    st["ok"] += 1

    for _ in range(threads):
        t = threading.Thread(target=loop, daemon=True)
        t.start()
        st["threads"].append(t)
    storms[name] = st


def flood_start(name, kind, ip, port, interval):
    # One constant flow: a datagram (UDP) or echo request (ICMP) every interval;
    # counts what comes back.
    st = {"stop": False, "ok": 0, "n": 0, "threads": []}
    if kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((ip, port))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.setblocking(False)
    ident = random.randint(1, 65535)

    def send():
        seq = 0
        while not st["stop"]:
            seq = (seq + 1) & 0xFFFF
            try:
                if kind == "udp":
                    s.send(b"flood")
                else:
                    s.sendto(echo_request(ident, seq), (ip, 0))
                st["n"] += 1
            except OSError:
                pass
            time.sleep(interval)

    def recv():
        while not st["stop"]:
            r, _, _ = select.select([s], [], [], 0.05)
            if not r:
                continue
            try:
                data, addr = s.recvfrom(2048)
            except OSError:
                continue
            if kind == "udp" or is_reply(data, ident, ip, addr):
                st["ok"] += 1

    for f in (send, recv):
        t = threading.Thread(target=f, daemon=True)
        t.start()
        st["threads"].append(t)
    storms[name] = st


def storm_stop(name):
    st = storms.pop(name)
    st["stop"] = True
    for t in st["threads"]:
        t.join()
    return "ok %d %d" % (st["ok"], st["n"])


def until(spec, limit):
    # Probe (each with the spec's timeout) until one gets through; elapsed ms.
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < limit:
        n += 1
        if passed(run_spec(spec)):
            return "ok %.3f %d" % ((time.monotonic() - t0) * 1000.0, n)
    return "timeout"


def until_blocked(spec, limit):
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < limit:
        n += 1
        if not passed(run_spec(spec)):
            return "ok %.3f %d" % ((time.monotonic() - t0) * 1000.0, n)
    return "timeout"


def batch(specs):
    results = [None] * len(specs)

    def one(i, spec):
        results[i] = run_spec(spec)

    threads = [threading.Thread(target=one, args=(i, s)) for i, s in enumerate(specs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return " ".join(results)


def handle(words):
    c = words[0]
    if c == "listen":
        for p in words[2:]:
            (tcp_server if words[1] == "tcp" else udp_server)(int(p))
        return "ok"
    if c == "listen_at":
        for p in words[3:]:
            (tcp_server if words[1] == "tcp" else udp_server)(int(p), words[2])
        return "ok"
    if c == "probe":
        return run_spec(words[1])
    if c == "batch":
        return batch(words[1:])
    if c == "hold":
        return hold(words[1], words[2], int(words[3]), float(words[4]))
    if c == "say":
        return say(words[1], float(words[2]))
    if c == "storm":
        storm_start(words[1], words[2], int(words[3]))
        return "ok"
    if c == "flood":
        flood_start(words[1], words[2], words[3], int(words[4]), float(words[5]))
        return "ok"
    if c == "stop":
        return storm_stop(words[1])
    if c == "until":
        return until(words[1], float(words[2]))
    if c == "until_blocked":
        return until_blocked(words[1], float(words[2]))
    if c == "pid":
        return str(os.getpid())
    return "error:unknown_command"


out("ready")
for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    try:
        out(handle(words))
    except Exception as e:
        out(err(e))
