#!/usr/bin/env python3
"""A cluster-mode redis-py client (redis.cluster.RedisCluster) pointed at the proxy alone.

Usage: python3 tests/py/cluster_client.py PORT [--hold]

With `cluster_view: proxy` the proxy presents itself as a one-node cluster owning all 16384
slots, so the client must keep every connection on the proxy. The script checks the client's
view (one node, the proxy's address), writes and reads one key in every slot ("{tag}:py",
where tag is the first "t<i>" hashing to that slot) with cluster pipelines and plain calls,
and prints "CLUSTER CLIENT OK" when every check passed. With --hold it prints "HOLD" after the
checks and waits for a line on stdin before closing, so the caller can look at the cluster's
connections while the client's are still open.
"""
import sys

try:
    import redis
    from redis.cluster import RedisCluster
    from redis.crc import key_slot
except ImportError:
    sys.exit("redis-py is not installed for %s (pip install redis)" % sys.executable)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def tags_per_slot():
    tags = {}
    i = 0
    while len(tags) < 16384:
        t = "t%d" % i
        tags.setdefault(key_slot(t.encode()), t)
        i += 1
    return tags


def node_addrs(rc):
    return sorted((n.host, int(n.port)) for n in rc.get_nodes())


def main():
    args = sys.argv[1:]
    hold = "--hold" in args
    args = [a for a in args if a != "--hold"]
    if len(args) != 1:
        sys.exit(__doc__)
    port = int(args[0])
    print("redis-py", redis.__version__, flush=True)

    rc = RedisCluster(host="127.0.0.1", port=port, decode_responses=True,
                      socket_timeout=10, socket_connect_timeout=10)
    want = [("127.0.0.1", port)]
    check(node_addrs(rc) == want, "cluster nodes seen by the client: %r, want %r"
          % (node_addrs(rc), want))
    slots = rc.cluster_slots()
    print("CLUSTER SLOTS as parsed by redis-py:", slots, flush=True)

    tags = tags_per_slot()
    for start in range(0, 16384, 2048):
        pipe = rc.pipeline()
        for s in range(start, start + 2048):
            pipe.set("{%s}:py" % tags[s], "v%d" % s)
        res = pipe.execute()
        check(all(x is True for x in res), "pipelined SETs from slot %d: %r"
              % (start, [x for x in res if x is not True][:5]))
    for start in range(0, 16384, 2048):
        pipe = rc.pipeline()
        for s in range(start, start + 2048):
            pipe.get("{%s}:py" % tags[s])
        res = pipe.execute()
        bad = [(start + i, x) for i, x in enumerate(res) if x != "v%d" % (start + i)]
        check(not bad, "pipelined GETs from slot %d: %r" % (start, bad[:5]))
    # Plain (non-pipelined) calls, one key per 64 slots.
    for s in range(0, 16384, 64):
        k = "{%s}:py" % tags[s]
        check(rc.get(k) == "v%d" % s, "GET %s" % k)
        check(rc.incr("{%s}:cnt" % tags[s]) == 1, "INCR in slot %d" % s)
    # A key per slot hashes where the client thinks it does, and the client still sees one node.
    check(rc.keyslot("{%s}:py" % tags[12345]) == 12345, "keyslot")
    check(node_addrs(rc) == want, "nodes after the traffic: %r" % node_addrs(rc))
    print("client checks passed", flush=True)

    if hold:
        print("HOLD", flush=True)
        sys.stdin.readline()
    rc.close()
    print("CLUSTER CLIENT OK", flush=True)


if __name__ == "__main__":
    main()
