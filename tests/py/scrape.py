#!/usr/bin/env python3
"""Scrapes the proxy's /metrics and checks it with prometheus_client's own parser.

Usage: python3 tests/py/scrape.py HOST:PORT

Every family must carry HELP and TYPE and parse; prints "name value" lines for the
samples (the Rust test compares them with INFO), then "SCRAPE OK".
"""
import sys
import urllib.request

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit("prometheus_client is not installed for %s (scripts/install-deps.sh)" % sys.executable)


def main():
    text = urllib.request.urlopen("http://%s/metrics" % sys.argv[1], timeout=5).read().decode()
    families = list(text_string_to_metric_families(text))
    if not families:
        raise AssertionError("no metric family")
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split()[0]
            base = name
            for suffix in ("_total",):
                if base.endswith(suffix):
                    base = base[: -len(suffix)]
            if "# HELP %s " % name not in text and "# HELP %s " % base not in text:
                raise AssertionError("no HELP for %s" % name)
            if "# TYPE %s " % name not in text and "# TYPE %s " % base not in text:
                raise AssertionError("no TYPE for %s" % name)
    for f in families:
        for s in f.samples:
            print(s.name, s.value)
    print("SCRAPE OK")


if __name__ == "__main__":
    main()
