#!/usr/bin/env python3
"""Reliability probes against a running meterkast (loopback only, bounded in time and
count). Driven by bench/reliability.sh, which starts the daemon; prints one result
line per probe.

  reliability.py PROBE PID HTTP_PORT BRIDGE_PORT

PROBE: memory (raw series single and 4 at once, 16 stalled exports), sse (200 live
clients + series load), bridge (1,000 stalled bridge clients), slowloris (500
connections), all.
"""
import json
import resource
import socket
import sys
import threading
import time
import urllib.request

PROBE, PID, PORT, BRIDGE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
BASE = f"http://127.0.0.1:{PORT}"
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_mb():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_s():
    with open(f"/proc/{PID}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


class Peak:
    """Samples the daemon's RSS every 10 ms while alive."""

    def __init__(self):
        self.peak, self.stop = rss_mb(), False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.01)

    def end(self):
        self.stop = True
        self.t.join()
        return self.peak


def get(path, timeout=60):
    with urllib.request.urlopen(BASE + path, timeout=timeout) as r:
        return r.status, r.read()


def meter():
    """The meter with the most stored history (the imported one)."""
    ms = json.loads(get("/api/v1/meters")[1])
    return min(ms, key=lambda m: m["first_seen"])


def settle():
    time.sleep(1.0)
    return rss_mb()


def probe_memory():
    m = meter()
    start, end = "2026-01-10T00:00:00Z", "2026-01-12T00:00:00Z"  # as reliability.sh imports
    path = f"/api/v1/series?meter={m['id']}&from={start}&to={end}&step=raw"
    steady = settle()
    p = Peak()
    status, body = get(path)
    peak1 = p.end()
    n = len(json.loads(body)["readings"])
    size = len(body) / 1e6
    del body
    after1 = settle()
    print(f"raw series, 48 h: {n} readings, {size:.1f} MB of JSON; RSS steady {steady:.1f} MB, "
          f"peak {peak1:.1f} MB (+{peak1 - steady:.1f}), after {after1:.1f} MB")
    results = []

    def one():
        s, b = get(path)
        results.append((s, len(json.loads(b)["readings"])))

    p = Peak()
    ts = [threading.Thread(target=one) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    peak4 = p.end()
    after4 = settle()
    assert all(r == (200, n) for r in results), results
    print(f"raw series, 4 at once: all {n} readings each; RSS peak {peak4:.1f} MB "
          f"(+{peak4 - after1:.1f}), after {after4:.1f} MB")

    # 16 exports that read their first bytes and then stop reading.
    steady = settle()
    p = Peak()
    socks = []
    codes = {}
    for _ in range(16):
        s = socket.create_connection(("127.0.0.1", PORT))
        s.sendall(f"GET /api/v1/export?meter={m['id']}&from={start}&to={end}&step=raw HTTP/1.1\r\n"
                  f"Host: localhost\r\n\r\n".encode())
        head = s.recv(12).decode()
        codes[head[9:12]] = codes.get(head[9:12], 0) + 1
        socks.append(s)
    time.sleep(5)
    held = rss_mb()
    peak16 = p.end()
    ok = get(f"/api/v1/series?meter={m['id']}&from={start}&to={end}&step=1h", timeout=10)[0]
    for s in socks:
        s.close()
    after16 = settle()
    print(f"16 stalled exports (answers {codes}): RSS steady {steady:.1f} MB, held {held:.1f} MB "
          f"(+{held - steady:.1f}), peak +{peak16 - steady:.1f}; /series meanwhile {ok}; after {after16:.1f} MB")


def probe_sse():
    m = meter()
    n_clients, seconds = 200, 20
    counts = [0] * n_clients
    stop = time.time() + seconds
    socks = []
    for i in range(n_clients):
        s = socket.create_connection(("127.0.0.1", PORT))
        s.sendall(b"GET /api/v1/live HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
        s.settimeout(5)
        socks.append(s)

    def reader(i):
        buf = b""
        s = socks[i]
        while time.time() < stop:
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            if not d:
                break
            buf += d
            counts[i] += d.count(b"event: reading")
            buf = buf[-64:]

    ts = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(n_clients)]
    for t in ts:
        t.start()
    lat = []
    errors = 0
    cpu0 = cpu_s()
    while time.time() < stop:
        t = time.perf_counter()
        try:
            s, _ = get(f"/api/v1/series?meter={m['id']}&step=15m", timeout=10)
            errors += s != 200
        except Exception:
            errors += 1
        lat.append((time.perf_counter() - t) * 1000)
    cpu = cpu_s() - cpu0
    for t in ts:
        t.join(timeout=6)
    for s in socks:
        s.close()
    lat.sort()
    got = sorted(counts)
    print(f"{n_clients} SSE clients for {seconds} s + series load: events per client min {got[0]} "
          f"median {got[len(got) // 2]} max {got[-1]} (telegrams 1/s); {len(lat)} series requests, "
          f"{errors} failed, median {lat[len(lat) // 2]:.1f} ms, p99 {lat[int(len(lat) * 0.99)]:.1f} ms; "
          f"daemon CPU {cpu / seconds * 100:.0f}% of a core, RSS {rss_mb():.1f} MB")


def telegrams_within(port, seconds):
    """Connects a reading client to the bridge; telegrams it got (up to 3) in `seconds`."""
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    got = b""
    end = time.time() + seconds
    while time.time() < end and got.count(b"!") < 3:
        try:
            d = c.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        got += d
    c.close()
    return got.count(b"!")


def probe_bridge():
    n = 1000
    socks, refused = [], 0
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", BRIDGE), timeout=2)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            socks.append(s)
        except OSError:
            refused += 1
    time.sleep(2)
    cpu0, t0 = cpu_s(), time.time()
    time.sleep(5)
    busy = (cpu_s() - cpu0) / (time.time() - t0) * 100
    # A well-behaved client meanwhile: refused at the cap (closed at once).
    first = telegrams_within(BRIDGE, 5)
    status = get("/healthz", timeout=10)[0]
    metrics = get("/metrics", timeout=10)[1].decode()
    open_ = [l for l in metrics.splitlines() if l.startswith("meterkast_listener_connections{listener=\"bridge\"}")]
    refused_m = [l for l in metrics.splitlines() if l.startswith("meterkast_listener_refused_total{listener=\"bridge\"}")]
    # Below the cap again, a new client is served while 400 stalled ones stay.
    for s in socks[400:]:
        s.close()
    time.sleep(1)
    second = telegrams_within(BRIDGE, 10)
    for s in socks[:400]:
        s.close()
    print(f"{n} stalled bridge clients ({len(socks)} connected, {refused} failed to connect): "
          f"a new client got {first} telegrams (0: refused at the cap); "
          f"daemon CPU {busy:.0f}% of a core; /healthz {status}; {open_[0] if open_ else ''}; "
          f"{refused_m[0] if refused_m else ''}; RSS {rss_mb():.1f} MB")
    print(f"with 400 stalled bridge clients left, a new client got {second} telegrams")


def probe_slowloris():
    n = 500
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
        s.sendall(b"GET /api/v1/meters HTTP/1.1\r\nHost: localhost\r\n")
        s.setblocking(False)
        socks.append(s)
    t0 = time.time()
    closed = set()
    answered_meanwhile = 0
    while len(closed) < n and time.time() - t0 < 60:
        for i, s in enumerate(socks):
            if i in closed:
                continue
            try:
                d = s.recv(4096)
                if d == b"" or d.startswith(b"HTTP/1.1 408"):
                    closed.add(i)
            except BlockingIOError:
                try:
                    s.send(b"X")  # one more header byte now and then
                except OSError:
                    closed.add(i)
            except OSError:
                closed.add(i)
        try:
            answered_meanwhile += get("/api/v1/meters", timeout=5)[0] == 200
        except Exception:
            pass
        time.sleep(0.5)
    took = time.time() - t0
    for s in socks:
        s.close()
    print(f"{n} slowloris connections (a header byte every 0.5 s): {len(closed)} closed by the daemon "
          f"within {took:.1f} s; {answered_meanwhile} normal requests answered meanwhile; RSS {rss_mb():.1f} MB")


probes = {"memory": probe_memory, "sse": probe_sse, "bridge": probe_bridge, "slowloris": probe_slowloris}
for name in (probes if PROBE == "all" else [PROBE]):
    probes[name]()
