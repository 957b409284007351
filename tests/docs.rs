//! docs/commands.md is rendered from the table of choices in src/route/policy.rs; this test fails
//! when the two disagree. `UPDATE_DOCS=1 cargo test --test docs` rewrites the file.

use redis_cluster_proxy::command::{Command, COMMANDS, GENERATED_FROM};
use redis_cluster_proxy::compute::ACROSS_SLOTS;
use redis_cluster_proxy::route::policy::keyless_policy;

const HEADER: &str = "\
# Commands without keys: where each one goes

Commands with keys are routed by their keys' slot (see the README). This table covers every
command of Redis GENERATED_FROM that has no key, as the proxy's code decides it: it is rendered
from `src/route/policy.rs` and checked by `tests/docs.rs`.

Choices:
- **proxy**: answered by the proxy itself;
- **one master**: sent to one master, round-robin over those that are up;
- **all masters, ...** / **all nodes, ...**: sent to every master (or every node, replicas
  included) and the replies merged as described;
- **cluster view**: per `cluster_view` (passthrough: a node's answer with addresses rewritten
  by `address_map`; proxy: the proxy as a one-node cluster);
- **slot owner**: the owner of the slot given as an argument;
- **admin (...)**: refused with `ERR <NAME> is not allowed through the proxy
  (allow_admin_commands)` unless `allow_admin_commands: true`, then sent as in brackets;
- **refused**: `ERR <NAME> is not supported through this proxy yet (...)`.

A keyless command the table does not know (a module's, learned from the cluster at start)
goes to one master.

| command | choice | why |
|---|---|---|
";

fn render() -> String {
    let mut rows: Vec<String> = Vec::new();
    let mut add = |c: &Command| {
        if !c.keys.is_empty() {
            return;
        }
        let (policy, why) = keyless_policy(c.name)
            .unwrap_or_else(|| panic!("{} has no entry in src/route/policy.rs", c.name));
        rows.push(format!(
            "| {} | {} | {} |\n",
            c.name.replace('|', " "),
            policy.label(),
            why
        ));
    };
    for c in COMMANDS {
        if c.subcommands.is_empty() {
            add(c);
        } else {
            c.subcommands.iter().for_each(&mut add);
        }
    }
    let mut across = String::from(ACROSS_HEADER);
    for (names, how, what) in ACROSS_SLOTS {
        across.push_str(&format!("| {names} | {how} | {what} |\n"));
    }
    format!(
        "{}{}{}",
        HEADER.replace("GENERATED_FROM", GENERATED_FROM),
        rows.concat(),
        across
    )
}

const ACROSS_HEADER: &str = "
# Commands with keys in several slots

A Redis Cluster node answers `CROSSSLOT` when a command's keys hash to several slots. The
proxy serves these as one Redis would, where it can: rendered from `ACROSS_SLOTS` in
`src/compute/mod.rs` and checked by `tests/docs.rs`.

- **split**: one request per slot, the replies merged;
- **computed**: each key read from its owner in one pipelined round, the answer computed by
  the proxy with Redis's rules, errors and reply shapes (RESP2 and RESP3). The keys are read
  at slightly different instants, not atomically. INFO: `cross_slot_computed`;
- **write**: only with `cross_slot_writes: true` (default false: `CROSSSLOT`). Done in
  stages: what the write needs is read, the destination written, and only once that is
  acknowledged is the source changed, so a value is never left nowhere. Not atomic: between
  the stages another client may see the destination written and the source not yet
  changed. A failure half-way answers an error saying what was and was not done. The
  client's later requests wait for it, as on one Redis. INFO: `cross_slot_writes`;
- **refused**: `CROSSSLOT`.

| commands | how | what the proxy does |
|---|---|---|
";

#[test]
fn commands_doc_matches_the_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/commands.md");
    let want = render();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, &want).expect("write docs/commands.md");
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/commands.md disagrees with src/route/policy.rs; run UPDATE_DOCS=1 cargo test --test docs"
    );
    // The doc is not vacuous: it has a row for every keyless command, well over a hundred.
    assert!(want.lines().filter(|l| l.starts_with("| ")).count() > 150);
}
