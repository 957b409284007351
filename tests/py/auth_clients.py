#!/usr/bin/env python3
"""Clients authenticating to the proxy, as redis-py does it.

Usage: python3 tests/py/auth_clients.py PORT

The proxy is configured with auth.password "defaultpw" and the users reader (+@read ~* &*,
password "readpw") and app (+@all -@dangerous ~app:* &news.*, password "apppw"). For
protocol 2 and 3: a client without a password gets NOAUTH; with the default password,
with username/password, it works; a wrong password is refused; the read-only user is
refused a SET with NOPERM; the key-pattern user is refused a key outside its pattern, also
inside an MGET whose keys span slots. Prints "AUTH CLIENTS OK" and exits 0.
"""
import sys

try:
    import redis
except ImportError:
    sys.exit("redis-py is not installed for %s (pip install redis)" % sys.executable)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def refused(fn, prefix):
    """fn must fail with the error `prefix` names: redis-py raises NoPermissionError for
    NOPERM (with the code taken off the text) and AuthenticationError for NOAUTH."""
    try:
        fn()
    except redis.exceptions.NoPermissionError as e:
        check(prefix == "NOPERM" and "no permissions" in str(e), repr(e))
        return
    except redis.exceptions.ResponseError as e:
        check(str(e).startswith(prefix), "expected %s, got %r" % (prefix, e))
        return
    raise AssertionError("expected a refusal (%s)" % prefix)


def main():
    port = int(sys.argv[1])
    for proto in (2, 3):
        plain = redis.Redis(port=port, protocol=proto)
        try:
            plain.get("x")
            raise AssertionError("no password: the GET must be refused")
        except redis.exceptions.AuthenticationError:
            pass
        except redis.exceptions.ResponseError as e:
            check("NOAUTH" in str(e), repr(e))

        d = redis.Redis(port=port, password="defaultpw", protocol=proto, decode_responses=True)
        check(d.set("app:1", "one"), "default user SET")
        check(d.get("app:1") == "one", "default user GET")
        check(d.acl_whoami() == "default", "WHOAMI default")

        try:
            redis.Redis(port=port, username="app", password="nope", protocol=proto).ping()
            raise AssertionError("a wrong password must be refused")
        except redis.exceptions.AuthenticationError:
            pass

        reader = redis.Redis(port=port, username="reader", password="readpw", protocol=proto,
                             decode_responses=True)
        check(reader.get("app:1") == "one", "reader GET")
        # ACL WHOAMI is in @slow, not @read: refused to this user, as Redis would.
        refused(lambda: reader.acl_whoami(), "NOPERM")
        refused(lambda: reader.set("app:1", "x"), "NOPERM")

        app = redis.Redis(port=port, username="app", password="apppw", protocol=proto,
                          decode_responses=True)
        check(app.acl_whoami() == "app", "WHOAMI app")
        check(app.set("app:2", "two"), "app SET in its pattern")
        refused(lambda: app.set("other", "x"), "NOPERM")
        refused(lambda: app.mget("app:1", "other"), "NOPERM")
        check(app.mget("app:1", "app:2") == ["one", "two"], "app MGET within its pattern")
        refused(lambda: app.flushall(), "NOPERM")
        check("user=app" in str(app.execute_command("CLIENT", "INFO")), "CLIENT INFO user=app")
    print("AUTH CLIENTS OK")


if __name__ == "__main__":
    main()
