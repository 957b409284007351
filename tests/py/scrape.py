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
            name = line.split()[0].split("{")[0]
            base = name
            for suffix in ("_total", "_bucket", "_sum", "_count"):
                if base.endswith(suffix):
                    base = base[: -len(suffix)]
            if "# HELP %s " % name not in text and "# HELP %s " % base not in text:
                raise AssertionError("no HELP for %s" % name)
            if "# TYPE %s " % name not in text and "# TYPE %s " % base not in text:
                raise AssertionError("no TYPE for %s" % name)
    for f in families:
        if f.type == "histogram":
            check_histogram(f)
        for s in f.samples:
            labels = {k: v for k, v in s.labels.items() if k != "le"}
            if "le" in s.labels:
                labels["le"] = s.labels["le"]
            shown = ",".join('%s="%s"' % kv for kv in labels.items())
            print(s.name + ("{%s}" % shown if shown else ""), s.value)
    print("SCRAPE OK")


def check_histogram(f):
    """Buckets cumulative: each le's count at least the one before, +Inf equal to _count."""
    series = {}
    for s in f.samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        series.setdefault(key, {"buckets": [], "count": None})
        if s.name.endswith("_bucket"):
            series[key]["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            series[key]["count"] = s.value
    for key, v in series.items():
        counts = [n for _, n in sorted(v["buckets"])]
        if not counts or counts != sorted(counts):
            raise AssertionError("%s %s: buckets not cumulative: %r" % (f.name, key, v["buckets"]))
        if sorted(v["buckets"])[-1][0] != float("inf") or counts[-1] != v["count"]:
            raise AssertionError("%s %s: +Inf bucket is not the count" % (f.name, key))


if __name__ == "__main__":
    main()
