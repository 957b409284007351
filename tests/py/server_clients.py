#!/usr/bin/env python3
"""CLIENT LIST / SETNAME / INFO / KILL through the proxy, as redis-py sees them.

Usage: python3 tests/py/server_clients.py PORT

For protocol 3 (redis-py's default) and then protocol 2: three named clients; client_list()
from one of them must show all three with Redis's fields, addresses that are the clients'
own sockets and laddr the proxy's port; INFO clients must count them; client_info() must
describe the caller;
client_kill_filter(_id=...) must disconnect the victim (its next command on the same
connection fails) and drop it from CLIENT LIST; the old form CLIENT KILL ip:port as well.
Prints "SERVER CLIENTS OK" and exits 0 when every check passed; raises otherwise.
"""
import sys

try:
    import redis
except ImportError:
    sys.exit("redis-py is not installed for %s (pip install redis)" % sys.executable)

FIELDS = ["id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db", "cmd",
          "user", "resp", "lib-name", "lib-ver"]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def held_connection(r):
    """A connection taken out of r's pool (connected), so commands on it are not retried."""
    pool = r.connection_pool
    try:
        conn = pool.get_connection()
    except TypeError:  # redis-py < 5.x wants a command name
        conn = pool.get_connection("PING")
    conn.connect()
    return conn


def raw(conn, *args):
    conn.send_command(*args)
    return conn.read_response()


def local_addr(conn):
    host, port = conn._sock.getsockname()[:2]
    return "%s:%d" % (host, port)


def session(port, proto):
    label = "resp%d" % proto
    mk = lambda: redis.Redis(host="127.0.0.1", port=port, decode_responses=True,
                             socket_timeout=10, socket_connect_timeout=10, protocol=proto)
    r1, r2, r3 = mk(), mk(), mk()
    check(r1.client_setname("%s-one" % label) is True, "%s: CLIENT SETNAME" % label)
    check(r1.client_getname() == "%s-one" % label, "%s: CLIENT GETNAME %r" % (label, r1.client_getname()))
    check(r2.client_setname("%s-two" % label), "%s: SETNAME two" % label)
    check(r3.client_setname("%s-three" % label), "%s: SETNAME three" % label)
    # Hold each client's single connection so that we know its socket address.
    c2 = held_connection(r2)
    c3 = held_connection(r3)
    check(raw(c2, "CLIENT", "GETNAME") == "%s-two" % label, "%s: c2 name" % label)
    id2 = raw(c2, "CLIENT", "ID")
    id1 = r1.client_id()
    check(isinstance(id1, int) and isinstance(id2, int) and id1 != id2,
          "%s: CLIENT ID %r %r" % (label, id1, id2))

    lst = r1.client_list()
    check(isinstance(lst, list) and len(lst) >= 3, "%s: client_list() %r" % (label, lst))
    by_name = {c.get("name"): c for c in lst}
    for n in ("one", "two", "three"):
        check("%s-%s" % (label, n) in by_name, "%s: %s-%s missing from %r" % (label, label, n, lst))
    for c in lst:
        missing = [f for f in FIELDS if f not in c]
        check(not missing, "%s: CLIENT LIST entry lacks %r: %r" % (label, missing, c))
        check(c["laddr"] == "127.0.0.1:%d" % port,
              "%s: laddr %r is not the proxy's address" % (label, c["laddr"]))
        check(c["user"] == "default" and c["db"] == "0", "%s: user/db %r" % (label, c))
    one = by_name["%s-one" % label]
    two = by_name["%s-two" % label]
    three = by_name["%s-three" % label]
    check(int(one["id"]) == id1, "%s: id of one %r vs CLIENT ID %r" % (label, one["id"], id1))
    check(int(two["id"]) == id2, "%s: id of two %r vs CLIENT ID %r" % (label, two["id"], id2))
    check(two["addr"] == local_addr(c2), "%s: addr %r vs socket %r" % (label, two["addr"], local_addr(c2)))
    check(three["addr"] == local_addr(c3), "%s: addr %r vs socket %r" % (label, three["addr"], local_addr(c3)))
    check(one["resp"] == str(proto), "%s: resp=%r" % (label, one["resp"]))
    check(one["cmd"] == "client|list", "%s: cmd=%r for the caller" % (label, one["cmd"]))
    check(two["cmd"] == "client|id", "%s: cmd=%r for two" % (label, two["cmd"]))
    # redis-py announces itself with CLIENT SETINFO on connect.
    check(one["lib-name"] == "redis-py", "%s: lib-name=%r" % (label, one["lib-name"]))
    check(one["lib-ver"] == redis.__version__, "%s: lib-ver=%r" % (label, one["lib-ver"]))
    # INFO clients is the proxy's, not a node's (whose clients are the proxy's connections
    # and the cluster bus).
    ci = r1.info("clients")
    check(ci.get("connected_clients") == len(lst),
          "%s: INFO clients connected_clients %r vs CLIENT LIST %d" % (label, ci, len(lst)))
    check("cluster_connections" not in ci and ci.get("blocked_clients") == 0
          and ci.get("maxclients", 0) > 0, "%s: INFO clients %r" % (label, ci))
    # CLIENT LIST ID filters.
    only = r1.client_list(client_id=[id2])
    check(len(only) == 1 and int(only[0]["id"]) == id2, "%s: CLIENT LIST ID %r" % (label, only))

    info = r1.client_info()
    check(int(info["id"]) == id1, "%s: client_info id %r" % (label, info))
    check(info["name"] == "%s-one" % label, "%s: client_info name %r" % (label, info))
    check(info["laddr"] == "127.0.0.1:%d" % port, "%s: client_info laddr %r" % (label, info))
    check(info["cmd"] == "client|info", "%s: client_info cmd %r" % (label, info))
    missing = [f for f in FIELDS if f not in info]
    check(not missing, "%s: CLIENT INFO lacks %r: %r" % (label, missing, info))

    # CLIENT KILL ID: one client killed, the victim's connection is closed.
    n = r1.client_kill_filter(_id=id2)
    check(n == 1, "%s: client_kill_filter(_id) returned %r" % (label, n))
    try:
        got = raw(c2, "PING")
        raise AssertionError("%s: killed client still answered %r" % (label, got))
    except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
        if isinstance(e, redis.TimeoutError):
            raise AssertionError("%s: killed client: timeout instead of a closed connection" % label)
    ids = [int(c["id"]) for c in r1.client_list()]
    check(id2 not in ids, "%s: killed id %r still in CLIENT LIST %r" % (label, id2, ids))
    check(int(three["id"]) in ids, "%s: bystander gone too" % label)
    # Killing an id that does not exist kills nothing.
    check(r1.client_kill_filter(_id=id2) == 0, "%s: second kill of the same id" % label)

    # The old form: CLIENT KILL ip:port.
    check(r1.client_kill(local_addr(c3)) is True, "%s: CLIENT KILL ip:port" % label)
    try:
        got = raw(c3, "PING")
        raise AssertionError("%s: client killed by address still answered %r" % (label, got))
    except (redis.ConnectionError, OSError):
        pass
    check(r1.ping() is True, "%s: the killer still works" % label)
    for c in (c2, c3):
        c.disconnect()
    for r in (r1, r2, r3):
        r.close()
    print("%s: ok" % label)


def main():
    port = int(sys.argv[1])
    session(port, 3)
    session(port, 2)
    print("SERVER CLIENTS OK")


if __name__ == "__main__":
    main()
