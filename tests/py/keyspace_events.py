#!/usr/bin/env python3
"""Keyspace notifications through the proxy, as redis-py sees them.

Usage: python3 tests/py/keyspace_events.py PORT PHASE

PHASE "all": for protocol 2 and then 3, notify-keyspace-events KEA is set through the proxy
(CONFIG SET goes to every node); a pubsub with PSUBSCRIBE __keyspace@0__:ks:* and SUBSCRIBE
__keyevent@0__:expired must get a `set` notification for each of 100 keys spread over all
masters, and an `expired` event for each of 30 keys with a short TTL on all masters; after
PUNSUBSCRIBE, SETs bring nothing more on the pattern. Prints "KEYSPACE OK" and exits 0 when
every check passed; raises otherwise.

PHASE "listen": subscribes (protocol 2) to __keyspace@0__:fo:*, prints "LISTENING", then
prints one line "GOT <key>" per notification for 60 s or until stdin closes; used by the
failover test, which does the writes.
"""
import sys
import time

try:
    import redis
except ImportError:
    sys.exit("redis-py is not installed for %s (pip install redis)" % sys.executable)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def collect(p, done, seconds, what):
    """Messages until done(messages) holds, then 0.3 s more (to see any duplicate)."""
    got = []
    end = time.monotonic() + seconds
    while not done(got) and time.monotonic() < end:
        m = p.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if m is not None:
            got.append(m)
    check(done(got), "%s: not all came in %d s (%d messages)" % (what, seconds, len(got)))
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        m = p.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if m is not None:
            got.append(m)
    return got


def all_phase(port):
    for proto in (2, 3):
        r = redis.Redis(port=port, protocol=proto, decode_responses=True)
        check(r.config_set("notify-keyspace-events", "KEA"), "CONFIG SET")
        p = r.pubsub()
        p.psubscribe("__keyspace@0__:ks:*")
        p.subscribe("__keyevent@0__:expired")
        # Both subscriptions confirmed before the writes.
        confirmed = 0
        end = time.monotonic() + 5
        while confirmed < 2 and time.monotonic() < end:
            m = p.get_message(timeout=0.2)
            if m and m["type"] in ("psubscribe", "subscribe"):
                confirmed += 1
        check(confirmed == 2, "subscriptions confirmed: %d" % confirmed)
        # The fan-in connections to the other masters open right after the confirmation:
        # a probe key on each master is written until its event arrives.
        writer = redis.Redis(port=port, protocol=proto, decode_responses=True)
        # 30 keys: every master holds some (all three missed by chance: about 1 in 10^5).
        probes = ["ks:probe:%d:%d" % (proto, i) for i in range(30)]
        seen = set()
        end = time.monotonic() + 10
        while len(seen) < len(probes) and time.monotonic() < end:
            for k in probes:
                if k not in seen:
                    writer.set(k, "1")
            m = p.get_message(ignore_subscribe_messages=True, timeout=0.2)
            while m is not None:
                if m["type"] == "pmessage":
                    seen.add(m["channel"].split(":", 1)[1])
                m = p.get_message(ignore_subscribe_messages=True, timeout=0.05)
        check(len(seen) == len(probes), "probe events from every master: %s" % sorted(seen))

        keys = ["ks:%d:%d" % (proto, i) for i in range(100)]
        for k in keys:
            writer.set(k, "v")
        want = set("__keyspace@0__:" + k for k in keys)

        def ours(got):
            return [m for m in got if m["type"] == "pmessage" and m["channel"] in want]

        got = collect(p, lambda g: set(m["channel"] for m in ours(g)) == want, 10,
                      "set notifications for 100 keys")
        sets = ours(got)
        check(len(sets) == 100, "one set notification per key, none twice: %d" % len(sets))
        check(all(m["data"] == "set" and m["pattern"] == "__keyspace@0__:ks:*" for m in sets),
              "pmessage fields")

        exp = ["ex:%d:%d" % (proto, i) for i in range(30)]
        for k in exp:
            writer.set(k, "v", px=50)
        def expired_of(got):
            return sorted(m["data"] for m in got if m["type"] == "message"
                          and m["channel"] == "__keyevent@0__:expired" and m["data"] in exp)

        got = collect(p, lambda g: len(set(expired_of(g))) == len(exp), 15, "expired events")
        expired = expired_of(got)
        check(expired == sorted(exp), "an expired event for each key: %s" % expired)

        p.punsubscribe("__keyspace@0__:ks:*")
        end = time.monotonic() + 5
        while time.monotonic() < end:
            m = p.get_message(timeout=0.2)
            if m and m["type"] == "punsubscribe":
                break
        for k in keys[:30]:
            writer.set(k, "w")
        late = []
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            m = p.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if m is not None and m["type"] == "pmessage":
                late.append(m)
        check(not late, "after PUNSUBSCRIBE nothing more on the pattern: %d" % len(late))
        p.close()
        print("protocol %d: ok" % proto, flush=True)
    print("KEYSPACE OK")


def listen_phase(port):
    r = redis.Redis(port=port, decode_responses=True)
    p = r.pubsub()
    p.psubscribe("__keyspace@0__:fo:*")
    end = time.monotonic() + 5
    while time.monotonic() < end:
        m = p.get_message(timeout=0.2)
        if m and m["type"] == "psubscribe":
            break
    print("LISTENING", flush=True)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            m = p.get_message(ignore_subscribe_messages=True, timeout=0.2)
        except redis.ConnectionError:
            # The proxy closed the subscription (its own node went away): redis-py
            # subscribes again on its next read, as after a server restart.
            print("RECONNECT", flush=True)
            continue
        if m is not None and m["type"] == "pmessage":
            print("GOT " + m["channel"].split(":", 1)[1], flush=True)


if __name__ == "__main__":
    port, phase = int(sys.argv[1]), sys.argv[2]
    if phase == "all":
        all_phase(port)
    else:
        listen_phase(port)
