//! INFO from every master made one: the first master's sections, stats, commandstats
//! and keyspace summed over all, `server` and `clients` replaced by the proxy's own, and
//! the proxy's section appended. Text in, text out; `merge.rs` calls it for `Merge::Info`.

use crate::error::ProxyError;
use crate::resp::encode::{self, Proto};
use bytes::Bytes;

pub(crate) fn merge_info_parts(
    parts: &[Bytes],
    proxy: &str,
    server: &str,
    clients: &str,
    proto: Proto,
) -> Bytes {
    let mut texts = Vec::with_capacity(parts.len());
    for p in parts {
        match crate::resp::value::decode(p) {
            Ok(crate::resp::value::Value::Str(t)) => {
                let t = String::from_utf8_lossy(&t).into_owned();
                // A RESP3 verbatim string starts with its format.
                let t = t.strip_prefix("txt:").map(str::to_string).unwrap_or(t);
                texts.push(t);
            }
            _ => {
                let e = ProxyError::UnexpectedReply("INFO reply from a node");
                return Bytes::from(e.to_frame());
            }
        }
    }
    let text = merge_info(&texts, proxy, server, clients);
    let mut out = Vec::with_capacity(text.len() + 16);
    encode::text(&mut out, &text, proto);
    Bytes::from(out)
}

/// Sums `db0:keys=..,expires=..,avg_ttl=..` lines over the masters' INFO texts.
pub(crate) fn keyspace_sum(texts: &[String]) -> String {
    let mut dbs: std::collections::BTreeMap<u32, (u64, u64, u128)> = Default::default();
    for t in texts {
        for line in t.lines() {
            let Some((db, fields)) = line.split_once(':') else {
                continue;
            };
            let Some(n) = db.strip_prefix("db").and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let e = dbs.entry(n).or_default();
            let (mut expires, mut avg) = (0u64, 0u128);
            for f in fields.split(',') {
                match f.split_once('=') {
                    Some(("keys", v)) => e.0 += v.trim().parse::<u64>().unwrap_or(0),
                    Some(("expires", v)) => expires = v.trim().parse().unwrap_or(0),
                    Some(("avg_ttl", v)) => avg = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
            // avg_ttl averages the keys that have a TTL: weighted by each master's count of
            // them, the merge is the average over the whole keyspace's.
            e.1 += expires;
            e.2 += avg * expires as u128;
        }
    }
    let mut out = String::from("# Keyspace\r\n");
    for (db, (keys, expires, ttl_weighted)) in dbs {
        let avg = if expires > 0 {
            ttl_weighted / expires as u128
        } else {
            0
        };
        out.push_str(&format!(
            "db{db}:keys={keys},expires={expires},avg_ttl={avg}\r\n"
        ));
    }
    out
}

/// Splits an INFO text into (section name, lines).
pub(crate) fn info_sections(text: &str) -> Vec<(String, Vec<&str>)> {
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    for line in text.split("\r\n").flat_map(|l| l.split('\n')) {
        let line = line.trim_end_matches('\r');
        if let Some(name) = line.strip_prefix("# ") {
            out.push((name.trim().to_string(), Vec::new()));
        } else if !line.is_empty() {
            match out.last_mut() {
                Some((_, lines)) => lines.push(line),
                None => out.push((String::new(), vec![line])),
            }
        }
    }
    out
}

/// `key:value` lines of one section over every text, numbers summed: the Stats section of
/// a cluster is the sum of its masters'.
pub(crate) fn sum_section(texts: &[Vec<(String, Vec<&str>)>], name: &str) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut vals: std::collections::HashMap<String, String> = Default::default();
    for t in texts {
        for (_, lines) in t.iter().filter(|(n, _)| n == name) {
            for l in lines {
                let Some((k, v)) = l.split_once(':') else {
                    continue;
                };
                match vals.get_mut(k) {
                    None => {
                        order.push(k.to_string());
                        vals.insert(k.to_string(), v.to_string());
                    }
                    Some(acc) => {
                        if let (Ok(a), Ok(b)) = (acc.parse::<i64>(), v.parse::<i64>()) {
                            *acc = a.saturating_add(b).to_string();
                        } else if let (Ok(a), Ok(b)) = (acc.parse::<f64>(), v.parse::<f64>()) {
                            *acc = format!("{:.2}", a + b);
                        }
                    }
                }
            }
        }
    }
    order
        .into_iter()
        .map(|k| {
            let v = &vals[&k];
            format!("{k}:{v}")
        })
        .collect()
}

/// `cmdstat_x:calls=..,usec=..,usec_per_call=..,rejected_calls=..,failed_calls=..` summed.
pub(crate) fn sum_commandstats(texts: &[Vec<(String, Vec<&str>)>]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut acc: std::collections::HashMap<String, [u64; 4]> = Default::default();
    for t in texts {
        for (_, lines) in t.iter().filter(|(n, _)| n == "Commandstats") {
            for l in lines {
                let Some((k, fields)) = l.split_once(':') else {
                    continue;
                };
                let e = acc.entry(k.to_string()).or_insert_with(|| {
                    order.push(k.to_string());
                    [0; 4]
                });
                for f in fields.split(',') {
                    let Some((name, v)) = f.split_once('=') else {
                        continue;
                    };
                    let v: u64 = v.parse().unwrap_or(0);
                    match name {
                        "calls" => e[0] += v,
                        "usec" => e[1] += v,
                        "rejected_calls" => e[2] += v,
                        "failed_calls" => e[3] += v,
                        _ => {}
                    }
                }
            }
        }
    }
    order
        .into_iter()
        .map(|k| {
            let [calls, usec, rej, failed] = acc[&k];
            let per = if calls > 0 { usec as f64 / calls as f64 } else { 0.0 };
            format!(
                "{k}:calls={calls},usec={usec},usec_per_call={per:.2},rejected_calls={rej},failed_calls={failed}"
            )
        })
        .collect()
}

/// `name:count=N` lines (Errorstats) summed over every text, in first-seen order.
pub(crate) fn sum_counts(texts: &[Vec<(String, Vec<&str>)>], section: &str) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut acc: std::collections::HashMap<String, u64> = Default::default();
    for t in texts {
        for (_, lines) in t.iter().filter(|(n, _)| n == section) {
            for l in lines {
                let Some((k, v)) = l.split_once(':') else {
                    continue;
                };
                let n: u64 = v
                    .strip_prefix("count=")
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                match acc.get_mut(k) {
                    Some(total) => *total += n,
                    None => {
                        order.push(k.to_string());
                        acc.insert(k.to_string(), n);
                    }
                }
            }
        }
    }
    order
        .into_iter()
        .map(|k| format!("{k}:count={}", acc[&k]))
        .collect()
}

/// INFO over the cluster: `server` and `clients` from the proxy (given; `server` with the
/// cluster's version), `stats` and `commandstats` summed over the masters, the keyspace
/// summed, other sections from the first master, and the proxy's own section last.
pub(crate) fn merge_info(texts: &[String], proxy: &str, server: &str, clients: &str) -> String {
    let keyspace = keyspace_sum(texts);
    let parsed: Vec<Vec<(String, Vec<&str>)>> = texts.iter().map(|t| info_sections(t)).collect();
    let mut out = String::new();
    let Some(first) = parsed.first() else {
        return out;
    };
    // Every section some master has, in the first master's order, then the others' (a
    // master with no error yet has no Errorstats section).
    let mut sections: Vec<(String, Vec<&str>)> = first.clone();
    for t in &parsed[1..] {
        for (name, lines) in t {
            if !sections.iter().any(|(n, _)| n == name) {
                sections.push((name.clone(), lines.clone()));
            }
        }
    }
    for (name, lines) in &sections {
        let body: Vec<String> = match name.as_str() {
            "Server" if !server.is_empty() => {
                out.push_str(server);
                out.push_str("\r\n");
                continue;
            }
            // A node's clients are the proxy's connections and the cluster bus: a client of
            // the proxy wants the proxy's own.
            "Clients" if !clients.is_empty() => {
                out.push_str(clients);
                out.push_str("\r\n");
                continue;
            }
            "Keyspace" => {
                out.push_str(&keyspace);
                out.push_str("\r\n");
                continue;
            }
            "Stats" => sum_section(&parsed, "Stats"),
            "Commandstats" => sum_commandstats(&parsed),
            "Errorstats" => sum_counts(&parsed, "Errorstats"),
            "Replication" => replication(&parsed, lines),
            // The keyspace's changes are every master's; the rest is the first's.
            "Persistence" => lines
                .iter()
                .map(|l| match l.split_once(':') {
                    Some(("rdb_changes_since_last_save", _)) => {
                        let total: u64 = parsed
                            .iter()
                            .flat_map(|t| t.iter().filter(|(n, _)| n == "Persistence"))
                            .flat_map(|(_, ls)| ls.iter())
                            .filter_map(|l| l.strip_prefix("rdb_changes_since_last_save:"))
                            .filter_map(|v| v.trim().parse::<u64>().ok())
                            .sum();
                        format!("rdb_changes_since_last_save:{total}")
                    }
                    _ => l.to_string(),
                })
                .collect(),
            _ => lines.iter().map(|l| l.to_string()).collect(),
        };
        out.push_str(&format!("# {name}\r\n"));
        for l in body {
            out.push_str(&l);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
    }
    out.push_str(proxy);
    // Sections are separated by a blank line, as Redis writes them; none after the last.
    if out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out
}

/// INFO replication for the proxy as one master: `role:master`; `connected_slaves` the
/// fewest any master has (what WAIT can count on for every write); no `slaveN` lines (they
/// would name one shard's replicas); a failover under way on any master shows; the
/// replication ids and offsets are the first master's. A node asked just after it was
/// demoted (the proxy's map not yet refreshed) answers as a replica: it is left out.
fn replication(parsed: &[Vec<(String, Vec<&str>)>], first: &[&str]) -> Vec<String> {
    let sections: Vec<&Vec<&str>> = parsed
        .iter()
        .flat_map(|t| t.iter().filter(|(n, _)| n == "Replication"))
        .map(|(_, ls)| ls)
        .collect();
    let value = |ls: &[&str], name: &str| -> Option<String> {
        ls.iter().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|v| v.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        })
    };
    let masters: Vec<&Vec<&str>> = sections
        .iter()
        .copied()
        .filter(|ls| value(ls, "role").as_deref() == Some("master"))
        .collect();
    let base: &[&str] = masters.first().map_or(first, |ls| &ls[..]);
    let replicas = masters
        .iter()
        .filter_map(|ls| value(ls, "connected_slaves")?.parse::<u64>().ok())
        .min()
        .unwrap_or(0);
    let failover = masters
        .iter()
        .filter_map(|ls| value(ls, "master_failover_state"))
        .find(|v| v != "no-failover")
        .unwrap_or_else(|| "no-failover".into());
    // A replica's own fields (its master, its link) are not a master's.
    let replica_only = [
        "master_host",
        "master_port",
        "master_link_status",
        "master_last_io_seconds_ago",
        "master_sync_in_progress",
        "slave_read_repl_offset",
        "slave_repl_offset",
        "slave_priority",
        "slave_read_only",
        "replica_announced",
    ];
    base.iter()
        .filter(|l| {
            !(l.starts_with("slave") && l.as_bytes().get(5).is_some_and(u8::is_ascii_digit))
        })
        .filter(|l| {
            !l.split_once(':')
                .is_some_and(|(k, _)| replica_only.contains(&k))
        })
        .map(|l| match l.split_once(':') {
            Some(("role", _)) => "role:master".to_string(),
            Some(("connected_slaves", _)) => format!("connected_slaves:{replicas}"),
            Some(("master_failover_state", _)) => format!("master_failover_state:{failover}"),
            _ => l.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_is_one_master_s() {
        let a = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=a,port=1\r\nslave1:ip=b,port=2\r\nmaster_failover_state:no-failover\r\nmaster_repl_offset:10\r\n".to_string();
        let b = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=c,port=3\r\nmaster_failover_state:waiting-for-sync\r\nmaster_repl_offset:99\r\n".to_string();
        let out = merge_info(&[a, b], "", "", "");
        assert!(
            out.contains("role:master\r\nconnected_slaves:1\r\n"),
            "{out}"
        );
        assert!(!out.contains("slave0"), "{out}");
        assert!(
            out.contains("master_failover_state:waiting-for-sync"),
            "{out}"
        );
        assert!(out.contains("master_repl_offset:10"), "{out}");
        // A node demoted a moment ago answers as a replica: left out.
        let r = "# Replication\r\nrole:slave\r\nmaster_host:x\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\n".to_string();
        let a = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\nmaster_failover_state:no-failover\r\n".to_string();
        let out = merge_info(&[r, a], "", "", "");
        assert!(
            out.contains("role:master\r\nconnected_slaves:1\r\n"),
            "{out}"
        );
        assert!(!out.contains("master_host"), "{out}");
    }

    /// Errorstats summed over the masters, also a section the first master lacks; the
    /// keyspace's changes since the last save summed, the rest of Persistence the first's.
    #[test]
    fn errorstats_and_changes_are_the_cluster_s() {
        let a = "# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:3\r\n\r\n# Stats\r\ntotal_commands_processed:1\r\n";
        let b = "# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:4\r\n\r\n# Stats\r\ntotal_commands_processed:1\r\n\r\n# Errorstats\r\nerrorstat_NOGROUP:count=2\r\nerrorstat_ERR:count=1\r\n";
        let c = "# Errorstats\r\nerrorstat_ERR:count=5\r\n";
        let out = merge_info(&[a.to_string(), b.to_string(), c.to_string()], "", "", "");
        assert!(out.contains("rdb_changes_since_last_save:7\r\n"), "{out}");
        assert!(out.contains("loading:0\r\n"), "{out}");
        assert!(
            out.contains("# Errorstats\r\nerrorstat_NOGROUP:count=2\r\nerrorstat_ERR:count=6\r\n"),
            "{out}"
        );
    }

    #[test]
    fn info_keyspace_summed() {
        let a = "# Server\r\nredis_version:7.0.15\r\n\r\n# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=100\r\n";
        let b = "# Server\r\nredis_version:7.0.15\r\n\r\n# Keyspace\r\ndb0:keys=6,expires=0,avg_ttl=0\r\n";
        let out = merge_info(
            &[a.into(), b.into()],
            "# Proxy\r\nproxy_version:x\r\n",
            "",
            "",
        );
        assert!(out.contains("db0:keys=8,expires=1,avg_ttl=100"), "{out}");
        assert_eq!(out.matches("# Keyspace").count(), 1, "{out}");
        assert!(out.contains("redis_version:7.0.15") && out.ends_with("proxy_version:x\r\n"));
        let only = "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n";
        let ks = merge_info(&[only.into(), "# Keyspace\r\n".into()], "", "", "");
        assert!(
            ks.starts_with("# Keyspace") && !ks.contains("Server") && ks.contains("keys=1,"),
            "{ks}"
        );
    }

    #[test]
    fn info_stats_summed_server_replaced() {
        let a = "# Server\r\nredis_version:7.0.15\r\ntcp_port:7000\r\n\r\n# Clients\r\nconnected_clients:7\r\ncluster_connections:10\r\n\r\n# Stats\r\ntotal_commands_processed:10\r\ninstantaneous_input_kbps:0.50\r\n\r\n# Commandstats\r\ncmdstat_get:calls=2,usec=10,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n";
        let b = "# Server\r\nredis_version:7.0.15\r\ntcp_port:7001\r\n\r\n# Stats\r\ntotal_commands_processed:5\r\ninstantaneous_input_kbps:0.25\r\n\r\n# Commandstats\r\ncmdstat_get:calls=2,usec=2,usec_per_call=1.00,rejected_calls=0,failed_calls=1\r\ncmdstat_set:calls=1,usec=1,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n";
        let out = merge_info(
            &[a.into(), b.into()],
            "",
            "# Server\r\nredis_version:7.0.15\r\ntcp_port:6379\r\n",
            "# Clients\r\nconnected_clients:3\r\n",
        );
        assert!(out.contains("total_commands_processed:15"), "{out}");
        assert!(
            out.contains("# Clients\r\nconnected_clients:3\r\n\r\n")
                && !out.contains("cluster_connections"),
            "{out}"
        );
        assert!(out.contains("instantaneous_input_kbps:0.75"), "{out}");
        assert!(
            out.contains(
                "cmdstat_get:calls=4,usec=12,usec_per_call=3.00,rejected_calls=0,failed_calls=1"
            ),
            "{out}"
        );
        assert!(out.contains("cmdstat_set:calls=1"), "{out}");
        assert!(
            out.contains("tcp_port:6379") && !out.contains("tcp_port:7000"),
            "{out}"
        );
    }
}
