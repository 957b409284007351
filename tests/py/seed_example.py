#!/usr/bin/env python3
"""Seed example: a redis-py client talking to the proxy as if it were one Redis server.

Usage: python3 tests/py/seed_example.py PORT

Runs the same session twice: first with redis-py's defaults (redis-py >= 6 speaks RESP3 by
default, i.e. it opens every connection with HELLO 3; this is checked), then with
protocol=2. Prints "SEED EXAMPLE OK" and exits 0 when every check passed.
"""
import sys

try:
    import redis
except ImportError:
    sys.exit("redis-py is not installed for %s (pip install redis)" % sys.executable)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def connection_protocol(r):
    """(protocol, handshake metadata) of one pooled connection, opened if needed."""
    pool = r.connection_pool
    try:
        conn = pool.get_connection()
    except TypeError:  # redis-py < 5.x wants a command name
        conn = pool.get_connection("PING")
    try:
        conn.connect()
        return int(conn.protocol), getattr(conn, "handshake_metadata", None)
    finally:
        pool.release(conn)


def session(port, label, **kwargs):
    r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True,
                    socket_timeout=10, socket_connect_timeout=10, **kwargs)
    proto, hello = connection_protocol(r)
    want = int(kwargs.get("protocol", 3))
    check(proto == want, "%s: connection protocol %r, want %r" % (label, proto, want))
    if want == 3:
        # redis-py sent HELLO 3 and accepted the proxy's answer (it raises otherwise).
        check(hello is not None, "%s: no HELLO handshake recorded" % label)
        got = hello.get("proto", hello.get(b"proto"))
        check(got == 3, "%s: HELLO answered proto %r" % (label, got))

    check(r.ping() is True, "%s: PING" % label)
    check(r.set("py:%s:greeting" % label, "hello") is True, "%s: SET" % label)
    check(r.get("py:%s:greeting" % label) == "hello", "%s: GET" % label)
    check(r.get("py:%s:missing" % label) is None, "%s: GET of a missing key" % label)

    h = "py:%s:hash" % label
    r.delete(h)
    check(r.hset(h, mapping={"name": "alice", "lang": "python"}) == 2, "%s: HSET" % label)
    got = r.hgetall(h)
    check(isinstance(got, dict), "%s: HGETALL returned %r, not a dict" % (label, type(got)))
    check(got == {"name": "alice", "lang": "python"}, "%s: HGETALL = %r" % (label, got))

    check(r.mset({"{py%s}:a" % label: "1", "{py%s}:b" % label: "2"}) is True, "%s: MSET" % label)
    check(r.mget(["{py%s}:a" % label, "{py%s}:b" % label]) == ["1", "2"], "%s: MGET" % label)
    # Keys in different slots: MSET/MGET/DEL are split by the proxy and merged back.
    x, y = "py:%s:x" % label, "py:%s:y1" % label
    check(r.mset({x: "10", y: "20"}) is True, "%s: cross-slot MSET" % label)
    got = r.mget([y, "py:%s:nosuchkey" % label, x])
    check(got == ["20", None, "10"], "%s: cross-slot MGET = %r" % (label, got))
    got = r.delete(x, y, "py:%s:nosuchkey" % label)
    check(got == 2, "%s: cross-slot DEL = %r" % (label, got))
    check(r.mget([x, y]) == [None, None], "%s: MGET after the split DEL" % label)
    # SUNION across slots is computed by the proxy (the keys are gone: an empty set).
    check(r.sunion([x, y]) in ([], set()), "%s: cross-slot SUNION of missing keys" % label)
    # What cannot be split (MSETNX, SUNIONSTORE) is refused with CROSSSLOT.
    for what, call in (("MSETNX", lambda: r.msetnx({x: "1", y: "2"})),
                       ("SUNIONSTORE", lambda: r.sunionstore("py:%s:dst" % label, [x, y]))):
        try:
            call()
            cross = None
        except redis.ResponseError as e:
            cross = str(e)
        # redis-py strips the CROSSSLOT code it knows, leaving the message.
        check(cross is not None and ("CROSSSLOT" in cross or "same slot" in cross),
              "%s: cross-slot %s should fail with CROSSSLOT, got %r" % (label, what, cross))
    check(r.exists(x, y) == 0, "%s: the refused MSETNX wrote nothing" % label)

    p = r.pipeline(transaction=False)
    for i in range(50):
        p.set("py:%s:p:%d" % (label, i), str(i))
    for i in range(50):
        p.get("py:%s:p:%d" % (label, i))
    res = p.execute()
    check(len(res) == 100, "%s: pipeline returned %d results" % (label, len(res)))
    check(all(x is True for x in res[:50]), "%s: pipeline SETs %r" % (label, res[:50]))
    check(res[50:] == [str(i) for i in range(50)], "%s: pipeline GETs %r" % (label, res[50:]))

    check(r.incrby("py:%s:counter" % label, 5) == 5, "%s: INCRBY" % label)
    r.close()
    print("%s: ok (protocol %d)" % (label, proto))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    port = int(sys.argv[1])
    print("redis-py", redis.__version__)
    session(port, "default")
    session(port, "resp2", protocol=2)
    print("SEED EXAMPLE OK")


if __name__ == "__main__":
    main()
