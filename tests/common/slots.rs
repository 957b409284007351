//! Slot maths (CRC16, key slots, hash tags, keys that land in a given slot or on a given
//! master) and the `Cluster` methods that read slot ownership or move a slot (resharding
//! steps on direct connections).

use std::time::Duration;

use super::cluster::Cluster;
use super::process::LOCALHOST;
use super::resp::poll_until;

/// CRC16-CCITT (XMODEM), as Redis Cluster uses for key slots.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The cluster slot of a key, honouring {hash tags}.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) % 16384
}

/// A hash tag (without braces) whose keys all live in `slot`.
pub fn tag_for_slot(slot: u16) -> String {
    for i in 0u64.. {
        let t = format!("t{i}");
        if key_slot(t.as_bytes()) == slot {
            return t;
        }
    }
    unreachable!()
}

/// `n` keys (`{tag}:name{i}`) that all live in `slot`.
pub fn keys_in_slot(slot: u16, name: &str, n: usize) -> Vec<String> {
    let tag = tag_for_slot(slot);
    (0..n).map(|i| format!("{{{tag}}}:{name}{i}")).collect()
}

/// A key in a slot owned by `master`, found by trying `prefix0`, `prefix1`, ...
pub fn key_owned_by(cluster: &Cluster, master: u16, prefix: &str) -> String {
    let slot = cluster.first_slot_of(master);
    let view = cluster.nodes_view(master);
    let ranges = view
        .iter()
        .find(|n| n.port == master)
        .map(|n| n.slots.clone())
        .unwrap_or_default();
    for i in 0..100_000 {
        let k = format!("{prefix}{i}");
        let s = key_slot(k.as_bytes());
        if ranges.iter().any(|&(a, b)| (a..=b).contains(&s)) {
            return k;
        }
    }
    panic!("no key for master {master} (first slot {slot})");
}

impl Cluster {
    /// Owner port of every slot, from one CLUSTER SLOTS of the first master.
    pub fn slot_owners(&self) -> Vec<u16> {
        self.slot_table(self.masters()[0])
    }

    /// Owner port of every slot (0: none) according to `from`'s CLUSTER SLOTS.
    fn slot_table(&self, from: u16) -> Vec<u16> {
        let v: redis::Value = self.query(from, &["CLUSTER", "SLOTS"]);
        let mut owners = vec![0u16; 16384];
        let redis::Value::Array(ranges) = v else {
            panic!("CLUSTER SLOTS: {v:?}")
        };
        for r in ranges {
            let redis::Value::Array(items) = r else {
                continue;
            };
            let (Some(redis::Value::Int(a)), Some(redis::Value::Int(b))) =
                (items.first(), items.get(1))
            else {
                continue;
            };
            if let Some(redis::Value::Array(m)) = items.get(2) {
                if let Some(redis::Value::Int(port)) = m.get(1) {
                    for slot in *a..=*b {
                        owners[slot as usize] = *port as u16;
                    }
                }
            }
        }
        owners
    }

    /// Owner of a slot according to `from`'s CLUSTER SLOTS.
    pub fn slot_owner_per(&self, from: u16, slot: u16) -> Option<u16> {
        Some(self.slot_table(from)[slot as usize]).filter(|&p| p != 0)
    }

    /// Owner of a slot according to a live master (direct CLUSTER SLOTS).
    pub fn slot_owner(&self, slot: u16) -> u16 {
        let from = self
            .masters()
            .first()
            .copied()
            .unwrap_or_else(|| self.any_live());
        self.slot_owner_per(from, slot)
            .unwrap_or_else(|| panic!("slot {slot} has no owner"))
    }

    /// The lowest slot owned by a master.
    pub fn first_slot_of(&self, master: u16) -> u16 {
        self.nodes_view(master)
            .into_iter()
            .find(|n| n.port == master)
            .and_then(|n| n.slots.iter().map(|s| s.0).min())
            .unwrap_or_else(|| panic!("{master} owns no slot"))
    }

    // ----- slot migration helpers (run on direct connections) -----

    /// Step 1 of a resharding: target IMPORTING from source, source MIGRATING to target.
    pub fn begin_migration(&self, slot: u16, from: u16, to: u16) {
        let s = slot.to_string();
        let from_id = self.node_id(from);
        let to_id = self.node_id(to);
        let _: () = self.query(to, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &from_id]);
        let _: () = self.query(from, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &to_id]);
    }

    /// Step 2: MIGRATE the given keys from source to target.
    pub fn migrate_keys(&self, from: u16, to: u16, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let mut args: Vec<String> = vec![
            "MIGRATE".into(),
            LOCALHOST.into(),
            to.to_string(),
            "".into(),
            "0".into(),
            "5000".into(),
            "KEYS".into(),
        ];
        args.extend(keys.iter().cloned());
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let r: String = self.query(from, &a);
        assert_eq!(r, "OK", "MIGRATE from {from} to {to}");
    }

    /// Keys of a slot held by a node (up to 10,000).
    pub fn keys_in_slot(&self, port: u16, slot: u16) -> Vec<String> {
        self.query(
            port,
            &["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "10000"],
        )
    }

    pub fn count_keys_in_slot(&self, port: u16, slot: u16) -> u64 {
        self.query(port, &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()])
    }

    /// Step 3: assign the slot to the target on the target, the source and all other masters.
    pub fn finish_migration(&self, slot: u16, from: u16, to: u16) {
        let s = slot.to_string();
        let to_id = self.node_id(to);
        let mut order = vec![to, from];
        for m in self.masters() {
            if !order.contains(&m) {
                order.push(m);
            }
        }
        for p in order {
            let _: () = self.query(p, &["CLUSTER", "SETSLOT", &s, "NODE", &to_id]);
        }
    }

    /// A complete resharding of one slot with all its keys, waiting until every live master
    /// reports the new owner.
    pub fn move_slot(&self, slot: u16, from: u16, to: u16) {
        self.begin_migration(slot, from, to);
        loop {
            let keys: Vec<String> = self.query(
                from,
                &["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "1000"],
            );
            if keys.is_empty() {
                break;
            }
            self.migrate_keys(from, to, &keys);
        }
        self.finish_migration(slot, from, to);
        let masters = self.masters();
        let ok = poll_until(Duration::from_secs(20), Duration::from_millis(50), || {
            masters
                .iter()
                .all(|&m| self.slot_owner_per(m, slot) == Some(to))
                .then_some(())
        });
        assert!(
            ok.is_some(),
            "slot {slot} not owned by {to} on every master after the move"
        );
    }
}
