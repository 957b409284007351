#!/usr/bin/env python3
"""Chaos run against a proxy in front of a local 3+3 cluster (scripts/cluster.sh): 8 plain
RESP2 clients (5 s socket timeout, no retries) INCR 5,000 counters while the cluster is
resharded (4,000 slots, there and back), one hot slot is held half-migrated, a replica
takes over gracefully (CLUSTER FAILOVER), and a master is SIGKILLed. Prints, per phase, the
errors the clients saw, and at the end the acknowledged increments that were lost.

    scripts/chaos.py --proxy 127.0.0.1:7480 --cluster 7400 [--label NAME]

Run by scripts/chaos.sh, which starts the cluster and the proxy (and predixy, if asked).
"""

import argparse
import collections
import os
import random
import signal
import subprocess
import threading
import time

import redis

COUNTERS = 5000
CLIENTS = 8


def node(port):
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, decode_responses=True)


def cluster_nodes(base):
    """[(id, port, role, master_id, slots)] as a live node of the cluster sees them."""
    for p in range(base, base + 6):
        try:
            text = node(p).execute_command("CLUSTER", "NODES")
        except redis.RedisError:
            continue
        out = []
        for line in text.splitlines():
            f = line.split()
            port = int(f[1].split("@")[0].rsplit(":", 1)[1])
            role = "master" if "master" in f[2] else "replica"
            if "fail" in f[2].split(","):
                role = "failed"
            out.append((f[0], port, role, f[3], f[8:]))
        return out
    raise SystemExit("no node of the cluster answers")


def masters(base):
    return [n for n in cluster_nodes(base) if n[2] == "master" and n[4]]


def cluster_ok(port):
    info = node(port).execute_command("CLUSTER", "INFO")
    if isinstance(info, dict):
        return info.get("cluster_state") == "ok"
    return "cluster_state:ok" in info


def wait_healthy(base, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            ok = all(
                cluster_ok(p) for (_, p, role, _, _) in cluster_nodes(base) if role != "failed"
            )
            if ok:
                return
        except redis.RedisError:
            pass
        time.sleep(0.2)
    raise SystemExit("cluster not healthy")


class Load:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.stop = threading.Event()
        self.acked = collections.Counter()
        self.errors = []  # (time, phase, text)
        self.phase = "warm-up"
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(CLIENTS)]

    def run(self, i):
        rnd = random.Random(i)
        c = redis.Redis(host=self.host, port=self.port, socket_timeout=5, retry=None, protocol=2)
        while not self.stop.is_set():
            key = f"chaos:{rnd.randrange(COUNTERS)}"
            phase = self.phase
            try:
                c.incr(key)
                with self.lock:
                    self.acked[key] += 1
            except redis.RedisError as e:
                with self.lock:
                    self.errors.append((time.time(), phase, f"{type(e).__name__}: {e}"))
                if isinstance(e, (redis.ConnectionError, redis.TimeoutError)):
                    c = redis.Redis(host=self.host, port=self.port, socket_timeout=5, retry=None, protocol=2)

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()


def wait_agree(base, timeout=60):
    """Until every node agrees on the slot map (redis-cli refuses to reshard before)."""
    end = time.time() + timeout
    while time.time() < end:
        r = subprocess.run(["redis-cli", "--cluster", "check", f"127.0.0.1:{base}"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode == 0:
            return
        time.sleep(0.2)
    raise SystemExit("the nodes do not agree on the slot map")


def reshard(base, src, dst, n):
    wait_agree(base)
    r = subprocess.run(
        ["redis-cli", "--cluster", "reshard", f"127.0.0.1:{base}", "--cluster-from", src,
         "--cluster-to", dst, "--cluster-slots", str(n), "--cluster-yes"],
        capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"reshard failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")


def key_slot(key):
    crc = 0
    for b in key.encode():
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc % 16384


def half_migrate(base, hold):
    """Holds the slot of chaos:0 half-migrated between two masters for `hold` seconds."""
    ms = masters(base)
    slot = key_slot("chaos:0")
    src = next(m for m in ms if any(owns(r, slot) for r in m[4]))
    dst = next(m for m in ms if m is not src)
    s, d = node(src[1]), node(dst[1])
    d.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src[0])
    s.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst[0])
    keys = s.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
    half = keys[: len(keys) // 2]
    if half:
        s.execute_command("MIGRATE", "127.0.0.1", dst[1], "", 0, 5000, "KEYS", *half)
    time.sleep(hold)
    while True:
        keys = s.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        if not keys:
            break
        s.execute_command("MIGRATE", "127.0.0.1", dst[1], "", 0, 5000, "KEYS", *keys)
    for m in ms:
        node(m[1]).execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst[0])


def owns(r, slot):
    if r.startswith("["):
        return False
    a, _, b = r.partition("-")
    return int(a) <= slot <= int(b or a)


def wait_promoted(port, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if node(port).info("replication")["role"] == "master":
                return time.time()
        except redis.RedisError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"{port} not promoted")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--cluster", type=int, required=True, help="base port of scripts/cluster.sh")
    ap.add_argument("--label", default="proxy")
    ap.add_argument("--pids", default=".cluster", help="dir with <port>/redis.pid")
    a = ap.parse_args()
    host, port = a.proxy.rsplit(":", 1)
    wait_healthy(a.cluster)
    load = Load(host, int(port))
    load.start()
    marks = []

    def phase(name):
        load.phase = name
        marks.append((name, time.time()))
        print(f"[chaos] {a.label}: {name}", flush=True)

    try:
        run_phases(a, load, phase)
    finally:
        load.finish()
    report(a, host, port, load, marks)


def run_phases(a, load, phase):
    time.sleep(2)
    ms = masters(a.cluster)
    phase("reshard 4000 slots there and back")
    reshard(a.cluster, ms[0][0], ms[1][0], 4000)
    reshard(a.cluster, ms[1][0], ms[0][0], 4000)
    phase("hot slot held half-migrated (3 s)")
    wait_agree(a.cluster)
    half_migrate(a.cluster, 3)
    wait_agree(a.cluster)
    phase("graceful CLUSTER FAILOVER")
    ms = masters(a.cluster)
    victim = ms[2]
    rep = next(n for n in cluster_nodes(a.cluster) if n[3] == victim[0] and n[2] == "replica")
    node(rep[1]).execute_command("CLUSTER", "FAILOVER")
    wait_promoted(rep[1])
    time.sleep(2)
    phase("SIGKILL of a master")
    ms = masters(a.cluster)
    victim = ms[0]
    rep = next(n for n in cluster_nodes(a.cluster) if n[3] == victim[0] and n[2] == "replica")
    pid = int(open(os.path.join(a.pids, str(victim[1]), "redis.pid")).read())
    t_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    t_prom = wait_promoted(rep[1])
    print(f"[chaos] {a.label}: promotion {t_prom - t_kill:.2f} s after the kill", flush=True)
    time.sleep(3)


def report(a, host, port, load, marks):
    final = redis.Redis(host=host, port=int(port), socket_timeout=10)
    lost = 0
    for key, n in load.acked.items():
        v = int(final.get(key) or 0)
        lost += max(0, n - v)
    total = sum(load.acked.values())
    print(f"[chaos] {a.label}: {total} increments acknowledged")
    by_phase = collections.defaultdict(list)
    for t, p, e in load.errors:
        by_phase[p].append(e)
    for name, _ in [("warm-up", 0)] + marks:
        errs = by_phase.get(name, [])
        kinds = collections.Counter(e[:110] for e in errs)
        print(f"[chaos] {a.label}: {name}: {len(errs)} errors")
        for text, n in kinds.most_common(4):
            print(f"[chaos]     {n} x {text}")
    print(f"[chaos] {a.label}: acknowledged increments lost: {lost}")
    print(f"RESULT {a.label} errors={len(load.errors)} "
          f"kill_errors={len(by_phase.get('SIGKILL of a master', []))} lost={lost} acked={total}")


if __name__ == "__main__":
    main()
