//! The command table: every Redis 7 command with its arity, flags and key specifications,
//! and the lookup from a request's arguments to its keys.
//!
//! The key specifications are Redis's own (`begin_search` + `find_keys`), generated from a
//! real server's COMMAND reply, so commands whose keys are not at fixed positions (XREAD's
//! STREAMS, ZUNIONSTORE's numkeys, SORT ... STORE, MIGRATE ... KEYS) are found as Redis
//! finds them.

mod table;

pub use table::{COMMANDS, GENERATED_FROM};

/// Command flags, as COMMAND reports them.
pub mod flag {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const FAST: u32 = 1 << 10;
    pub const NO_AUTH: u32 = 1 << 11;
    pub const MAY_REPLICATE: u32 = 1 << 12;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 13;
    pub const ALLOW_BUSY: u32 = 1 << 14;
    pub const MOVABLEKEYS: u32 = 1 << 15;
    pub const NO_MULTI: u32 = 1 << 16;
    pub const SKIP_SLOWLOG: u32 = 1 << 17;
    pub const ASKING: u32 = 1 << 18;
}

/// ACL categories, as COMMAND reports them (`@read`, `@dangerous`, ...).
pub mod cat {
    pub const KEYSPACE: u32 = 1 << 0;
    pub const READ: u32 = 1 << 1;
    pub const WRITE: u32 = 1 << 2;
    pub const SET: u32 = 1 << 3;
    pub const SORTEDSET: u32 = 1 << 4;
    pub const LIST: u32 = 1 << 5;
    pub const HASH: u32 = 1 << 6;
    pub const STRING: u32 = 1 << 7;
    pub const BITMAP: u32 = 1 << 8;
    pub const HYPERLOGLOG: u32 = 1 << 9;
    pub const GEO: u32 = 1 << 10;
    pub const STREAM: u32 = 1 << 11;
    pub const PUBSUB: u32 = 1 << 12;
    pub const ADMIN: u32 = 1 << 13;
    pub const FAST: u32 = 1 << 14;
    pub const SLOW: u32 = 1 << 15;
    pub const BLOCKING: u32 = 1 << 16;
    pub const DANGEROUS: u32 = 1 << 17;
    pub const CONNECTION: u32 = 1 << 18;
    pub const TRANSACTION: u32 = 1 << 19;
    pub const SCRIPTING: u32 = 1 << 20;

    /// Their names, in bit order (ACL CAT lists them so).
    pub const NAMES: [&str; 21] = [
        "keyspace",
        "read",
        "write",
        "set",
        "sortedset",
        "list",
        "hash",
        "string",
        "bitmap",
        "hyperloglog",
        "geo",
        "stream",
        "pubsub",
        "admin",
        "fast",
        "slow",
        "blocking",
        "dangerous",
        "connection",
        "transaction",
        "scripting",
    ];

    /// The bit of a category name (without its `@`).
    pub fn parse(name: &str) -> Option<u32> {
        NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .map(|i| 1 << i)
    }
}

#[derive(Debug)]
pub struct Command {
    /// Upper case; a subcommand is `PARENT|SUB`.
    pub name: &'static str,
    /// Redis's arity: N means exactly N arguments (name included), -N at least N.
    pub arity: i16,
    pub flags: u32,
    /// ACL categories (`cat` bits).
    pub acl: u32,
    /// The legacy (first, last, step) key positions.
    pub legacy: (i32, i32, i32),
    pub tips: &'static [&'static str],
    pub keys: &'static [KeySpec],
    pub subcommands: &'static [Command],
}

#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    pub begin: Begin,
    pub find: Find,
}

#[derive(Debug, Clone, Copy)]
pub enum Begin {
    Index(i32),
    /// A keyword, searched from `startfrom` (negative: from the end, backwards).
    Keyword(&'static [u8], i32),
    Unknown,
}

#[derive(Debug, Clone, Copy)]
pub enum Find {
    /// Keys from the first one to `last` (negative: from the end; with `limit`, a fraction
    /// of the remaining arguments), every `step`.
    Range {
        last: i32,
        step: i32,
        limit: i32,
    },
    /// The argument at `idx` (relative to the first) counts the keys, which start at `first`.
    Keynum {
        idx: i32,
        first: i32,
        step: i32,
    },
    Unknown,
}

impl Command {
    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    /// Whether the argument count (name included) satisfies the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity as i64;
        let n = argc as i64;
        if a >= 0 {
            n == a
        } else {
            n >= -a
        }
    }

    /// The short name of a subcommand (`LIST` for `CLIENT|LIST`).
    pub fn sub_name(&self) -> &'static str {
        self.name.rsplit('|').next().unwrap_or(self.name)
    }
}

/// Case-insensitive ordering of a request's bytes against a table name, without allocating.
fn cmp_name(name: &str, arg: &[u8]) -> std::cmp::Ordering {
    let a = name.as_bytes();
    let n = a.len().min(arg.len());
    for i in 0..n {
        let c = a[i].cmp(&arg[i].to_ascii_uppercase());
        if c != std::cmp::Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&arg.len())
}

/// A request's arguments, however they are stored (a frame's ranges, a list of slices), so
/// lookups need no per-request allocation.
pub trait Args {
    fn argc(&self) -> usize;
    fn arg(&self, i: usize) -> &[u8];
}

impl<A: AsRef<[u8]>> Args for [A] {
    fn argc(&self) -> usize {
        self.len()
    }
    fn arg(&self, i: usize) -> &[u8] {
        self[i].as_ref()
    }
}

/// Finds the command for a request's arguments, descending into a subcommand when the
/// command has them and the second argument names one.
pub fn lookup<A: Args + ?Sized>(args: &A) -> Option<&'static Command> {
    if args.argc() == 0 {
        return None;
    }
    let top = find_builtin(args.arg(0)).or_else(|| find_in(learned(), args.arg(0), |c| c.name))?;
    if top.subcommands.is_empty() || args.argc() < 2 {
        return Some(top);
    }
    find_in(top.subcommands, args.arg(1), |c| c.sub_name()).or(Some(top))
}

/// A command by its full name, `GET` or `CONFIG|GET` (any case): for ACL rules.
pub fn lookup_name(name: &str) -> Option<&'static Command> {
    let mut parts = name.splitn(2, '|');
    let top = parts.next()?.as_bytes();
    let top = find_builtin(top).or_else(|| find_in(learned(), top, |c| c.name))?;
    match parts.next() {
        None => Some(top),
        Some(sub) => find_in(top.subcommands, sub.as_bytes(), |c| c.sub_name()),
    }
}

/// The commands (and subcommands) of an ACL category, lower case, for ACL CAT.
pub fn names_in_category(bits: u32) -> Vec<String> {
    let mut out = Vec::new();
    for c in COMMANDS.iter().chain(learned()) {
        for x in std::iter::once(c).chain(c.subcommands) {
            if x.acl & bits != 0 {
                out.push(x.name.to_ascii_lowercase());
            }
        }
    }
    out
}

/// Slots of the hash index over the built-in table's names: a power of two, over four times
/// the number of commands, so probes are short.
const INDEX_SLOTS: usize = 1024;
/// An empty slot of the index.
const NO_COMMAND: u16 = u16::MAX;

/// A built-in command by name, any case: a hash of the name and one or two probes of an
/// index built on first use. A binary search over the table took about 8 case-insensitive
/// comparisons per request, the largest part of routing a GET.
fn find_builtin(name: &[u8]) -> Option<&'static Command> {
    static INDEX: std::sync::OnceLock<Box<[u16]>> = std::sync::OnceLock::new();
    let index = INDEX.get_or_init(|| {
        assert!(COMMANDS.len() * 4 <= INDEX_SLOTS && COMMANDS.len() < NO_COMMAND as usize);
        let mut index = vec![NO_COMMAND; INDEX_SLOTS].into_boxed_slice();
        for (i, c) in COMMANDS.iter().enumerate() {
            let mut slot = name_hash(c.name.as_bytes());
            while index[slot] != NO_COMMAND {
                slot = (slot + 1) % INDEX_SLOTS;
            }
            index[slot] = i as u16;
        }
        index
    });
    let mut slot = name_hash(name);
    loop {
        let c = COMMANDS.get(usize::from(index[slot]))?;
        if c.name.as_bytes().eq_ignore_ascii_case(name) {
            return Some(c);
        }
        slot = (slot + 1) % INDEX_SLOTS;
    }
}

/// FNV-1a over the upper-cased name, reduced to an index slot.
fn name_hash(name: &[u8]) -> usize {
    let h = name.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b.to_ascii_uppercase())).wrapping_mul(0x0100_0193)
    });
    (h ^ (h >> 16)) as usize % INDEX_SLOTS
}

fn find_in(
    table: &'static [Command],
    name: &[u8],
    key: fn(&Command) -> &'static str,
) -> Option<&'static Command> {
    table
        .binary_search_by(|c| cmp_name(key(c), name))
        .ok()
        .map(|i| &table[i])
}

/// Calls `f` with the index of every key argument of the request, using the command's key
/// specifications. Stops early when `f` returns false. Arguments the request lacks (a
/// malformed numkeys, say) end the search: the node will report the error itself.
pub fn for_each_key<A: Args + ?Sized>(cmd: &Command, args: &A, mut f: impl FnMut(usize) -> bool) {
    let argc = args.argc() as i64;
    let mut sort_done = false;
    for spec in cmd.keys {
        let first = match spec.begin {
            Begin::Index(i) => i as i64,
            Begin::Keyword(kw, startfrom) => {
                let (mut i, end, incr) = if startfrom >= 0 {
                    (startfrom as i64, argc - 1, 1)
                } else {
                    (argc + startfrom as i64, 1, -1)
                };
                let mut found = None;
                while i >= 1 && i < argc && (if incr > 0 { i <= end } else { i >= end }) {
                    if args.arg(i as usize).eq_ignore_ascii_case(kw) {
                        found = Some(i + 1);
                        break;
                    }
                    i += incr;
                }
                match found {
                    Some(i) => i,
                    None => continue,
                }
            }
            Begin::Unknown => {
                if cmd.name == "SORT" && !sort_done {
                    sort_done = true;
                    if let Some(i) = sort_store_key(args) {
                        if !f(i) {
                            return;
                        }
                    }
                }
                continue;
            }
        };
        let (first, last, step) = match spec.find {
            Find::Range { last, step, limit } => {
                let l = if last >= 0 {
                    first + last as i64
                } else if limit == 0 {
                    argc + last as i64
                } else {
                    first + ((argc - first) / limit as i64 + last as i64)
                };
                (first, l, step as i64)
            }
            Find::Keynum {
                idx,
                first: fk,
                step,
            } => {
                let at = first + idx as i64;
                if at < 1 || at >= argc {
                    continue;
                }
                let n = match std::str::from_utf8(args.arg(at as usize))
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                {
                    Some(n) if n > 0 => n,
                    _ => continue,
                };
                let f0 = first + fk as i64;
                // numkeys comes from the client: saturate, the loop stops at the last argument.
                let last = f0.saturating_add((n - 1).saturating_mul(step as i64));
                (f0, last, step as i64)
            }
            Find::Unknown => continue,
        };
        if step <= 0 {
            continue;
        }
        let mut i = first;
        while i <= last {
            if i < 1 || i >= argc {
                break;
            }
            if !f(i as usize) {
                return;
            }
            i += step;
        }
    }
}

/// SORT's STORE destination, which no key specification describes: found as Redis's
/// sortGetKeys finds it, skipping the arguments of LIMIT, BY and GET; the last STORE wins.
fn sort_store_key<A: Args + ?Sized>(args: &A) -> Option<usize> {
    let mut found = None;
    let mut i = 2;
    while i < args.argc() {
        let a = args.arg(i);
        let skip = if a.eq_ignore_ascii_case(b"LIMIT") {
            2
        } else if a.eq_ignore_ascii_case(b"GET") || a.eq_ignore_ascii_case(b"BY") {
            1
        } else if a.eq_ignore_ascii_case(b"STORE") {
            if i + 1 < args.argc() {
                found = Some(i + 1);
            }
            1
        } else {
            0
        };
        i += skip + 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(line: &str) -> Vec<String> {
        let args: Vec<&[u8]> = line.split(' ').map(|s| s.as_bytes()).collect();
        let cmd = lookup(args.as_slice()).expect("known command");
        let mut out = Vec::new();
        for_each_key(cmd, args.as_slice(), |i| {
            out.push(String::from_utf8_lossy(args[i]).into_owned());
            true
        });
        out
    }

    #[test]
    fn table_is_sorted_for_binary_search() {
        for w in COMMANDS.windows(2) {
            assert!(w[0].name < w[1].name, "{} !< {}", w[0].name, w[1].name);
        }
        assert!(COMMANDS.len() >= 200);
    }

    #[test]
    fn the_index_finds_every_builtin_command_and_nothing_else() {
        for c in COMMANDS {
            assert!(std::ptr::eq(find_builtin(c.name.as_bytes()).unwrap(), c));
            let lower = c.name.to_ascii_lowercase();
            assert!(std::ptr::eq(find_builtin(lower.as_bytes()).unwrap(), c));
            assert!(std::ptr::eq(
                find_in(COMMANDS, lower.as_bytes(), |c| c.name).unwrap(),
                c
            ));
        }
        for miss in [&b""[..], b"G", b"GETT", b"nosuchcommand", &[0xff; 300]] {
            assert!(find_builtin(miss).is_none(), "{miss:?}");
        }
    }

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(lookup([b"get".as_slice()].as_slice()).unwrap().name, "GET");
        assert_eq!(lookup([b"GeT".as_slice()].as_slice()).unwrap().name, "GET");
        assert!(lookup([b"nosuch".as_slice()].as_slice()).is_none());
        assert_eq!(
            lookup([b"client".as_slice(), b"list"].as_slice())
                .unwrap()
                .name,
            "CLIENT|LIST"
        );
        assert_eq!(
            lookup([b"client".as_slice()].as_slice()).unwrap().name,
            "CLIENT"
        );
    }

    #[test]
    fn key_positions() {
        assert_eq!(keys("GET a"), ["a"]);
        assert_eq!(keys("SET a 1 EX 10"), ["a"]);
        assert_eq!(keys("MSET a 1 b 2"), ["a", "b"]);
        assert_eq!(keys("MGET a b c"), ["a", "b", "c"]);
        assert_eq!(keys("XREAD COUNT 2 STREAMS s1 s2 0 0"), ["s1", "s2"]);
        assert_eq!(keys("ZUNIONSTORE d 2 a b WEIGHTS 1 2"), ["d", "a", "b"]);
        assert_eq!(keys("SORT l BY w STORE dst"), ["l", "dst"]);
        assert_eq!(keys("EVAL s 2 k1 k2 a1"), ["k1", "k2"]);
        assert_eq!(keys("EVAL s 0"), Vec::<String>::new());
        assert_eq!(keys("OBJECT ENCODING k"), ["k"]);
        assert_eq!(keys("PING"), Vec::<String>::new());
        assert_eq!(keys("LMPOP 2 a b LEFT"), ["a", "b"]);
        assert_eq!(keys("MIGRATE h 1 \"\" 0 100 KEYS a b"), ["\"\"", "a", "b"]);
        // A numkeys larger than the arguments stops at the end, never past it.
        assert_eq!(keys("ZUNIONSTORE d 5 a"), ["d", "a"]);
        assert_eq!(keys("EVAL s 9223372036854775806 k"), ["k"]);
    }

    #[test]
    fn arity() {
        let get = lookup([b"GET".as_slice()].as_slice()).unwrap();
        assert!(get.arity_ok(2));
        assert!(!get.arity_ok(3));
        let mset = lookup([b"MSET".as_slice()].as_slice()).unwrap();
        assert!(mset.arity_ok(5));
        assert!(!mset.arity_ok(2));
    }
}

/// Commands learned from the cluster's own COMMAND reply at start: those the built-in table
/// lacks (module commands such as RedisJSON's, commands of a newer Redis). Set once, before
/// the reactor runs; the built-in table stays the fallback and takes precedence.
static LEARNED: std::sync::OnceLock<&'static [Command]> = std::sync::OnceLock::new();

fn learned() -> &'static [Command] {
    LEARNED.get().copied().unwrap_or(&[])
}

/// Learns the commands of a COMMAND reply that the built-in table does not know. Returns how
/// many were learned; only the first call has an effect.
pub fn learn(reply: &crate::resp::value::Value) -> usize {
    let crate::resp::value::Value::Array(entries) = reply else {
        return 0;
    };
    let mut new: Vec<Command> = entries
        .iter()
        .filter_map(parse_entry)
        .filter(|c| find_in(COMMANDS, c.name.as_bytes(), |c| c.name).is_none())
        .collect();
    new.sort_by(|a, b| a.name.cmp(b.name));
    new.dedup_by(|a, b| a.name == b.name);
    let n = new.len();
    // Leaked once per process: the table lives as long as the proxy, like the built-in one.
    let table: &'static [Command] = Box::leak(new.into_boxed_slice());
    if LEARNED.set(table).is_err() {
        return 0;
    }
    n
}

fn leak_str(s: &str) -> &'static str {
    Box::leak(s.to_ascii_uppercase().into_boxed_str())
}

/// One COMMAND entry: name, arity, flags, first, last, step, categories, tips, key specs,
/// subcommands.
fn parse_entry(v: &crate::resp::value::Value) -> Option<Command> {
    use crate::resp::value::Value;
    let Value::Array(f) = v else { return None };
    let name = leak_str(f.first()?.as_str()?);
    let arity = f.get(1)?.as_int()?.clamp(i16::MIN as i64, i16::MAX as i64) as i16;
    let mut flags = 0;
    if let Some(Value::Array(fl)) = f.get(2) {
        for x in fl.iter().filter_map(Value::as_str) {
            flags |= match x {
                "write" => flag::WRITE,
                "readonly" => flag::READONLY,
                "denyoom" => flag::DENYOOM,
                "admin" => flag::ADMIN,
                "pubsub" => flag::PUBSUB,
                "noscript" => flag::NOSCRIPT,
                "blocking" => flag::BLOCKING,
                "loading" => flag::LOADING,
                "stale" => flag::STALE,
                "fast" => flag::FAST,
                "movablekeys" => flag::MOVABLEKEYS,
                _ => 0,
            };
        }
    }
    let int = |i: usize| f.get(i).and_then(Value::as_int).unwrap_or(0) as i32;
    let legacy = (int(3), int(4), int(5));
    // A module's command names its categories as `@read` and the like.
    let acl = match f.get(6) {
        Some(Value::Array(cs)) => cs
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|c| cat::parse(c.trim_start_matches('@')))
            .fold(0, |a, b| a | b),
        _ => 0,
    };
    let mut keys: Vec<KeySpec> = match f.get(8) {
        Some(Value::Array(specs)) => specs.iter().filter_map(parse_key_spec).collect(),
        _ => Vec::new(),
    };
    if keys.is_empty() && legacy.0 > 0 {
        let (first, last, step) = legacy;
        keys.push(KeySpec {
            begin: Begin::Index(first),
            find: Find::Range {
                last: if last < 0 { last } else { last - first },
                step: step.max(1),
                limit: 0,
            },
        });
    }
    let mut subs: Vec<Command> = match f.get(9) {
        Some(Value::Array(s)) => s.iter().filter_map(parse_entry).collect(),
        _ => Vec::new(),
    };
    subs.sort_by(|a, b| a.sub_name().cmp(b.sub_name()));
    Some(Command {
        name,
        arity,
        flags,
        acl,
        legacy,
        tips: &[],
        keys: Box::leak(keys.into_boxed_slice()),
        subcommands: Box::leak(subs.into_boxed_slice()),
    })
}

/// A flat key-value array's value for `key`.
fn field<'a>(
    pairs: &'a [crate::resp::value::Value],
    key: &str,
) -> Option<&'a crate::resp::value::Value> {
    pairs
        .chunks(2)
        .find(|p| p.first().and_then(|k| k.as_str()) == Some(key))
        .and_then(|p| p.get(1))
}

fn parse_key_spec(v: &crate::resp::value::Value) -> Option<KeySpec> {
    use crate::resp::value::Value;
    let Value::Array(spec) = v else { return None };
    let Some(Value::Array(bs)) = field(spec, "begin_search") else {
        return None;
    };
    let Some(Value::Array(fk)) = field(spec, "find_keys") else {
        return None;
    };
    let sub = |m: &'_ [Value]| match field(m, "spec") {
        Some(Value::Array(s)) => s.clone(),
        _ => Vec::new(),
    };
    let num = |m: &[Value], k: &str| field(m, k).and_then(Value::as_int).unwrap_or(0) as i32;
    let bspec = sub(bs);
    let begin = match field(bs, "type").and_then(Value::as_str) {
        Some("index") => Begin::Index(num(&bspec, "index")),
        Some("keyword") => {
            let kw = field(&bspec, "keyword").and_then(Value::as_str)?;
            Begin::Keyword(leak_str(kw).as_bytes(), num(&bspec, "startfrom"))
        }
        _ => Begin::Unknown,
    };
    let fspec = sub(fk);
    let find = match field(fk, "type").and_then(Value::as_str) {
        Some("range") => Find::Range {
            last: num(&fspec, "lastkey"),
            step: num(&fspec, "keystep"),
            limit: num(&fspec, "limit"),
        },
        Some("keynum") => Find::Keynum {
            idx: num(&fspec, "keynumidx"),
            first: num(&fspec, "firstkey"),
            step: num(&fspec, "keystep"),
        },
        _ => Find::Unknown,
    };
    Some(KeySpec { begin, find })
}

#[cfg(test)]
mod learn_tests {
    use super::*;
    use crate::resp::value::decode;

    #[test]
    fn learns_module_commands_with_key_specs() {
        // JSON.GET key [path]: as a module announces it in COMMAND (RESP2).
        let reply = b"*2\r\n\
            *10\r\n$8\r\njson.get\r\n:-2\r\n*1\r\n+readonly\r\n:1\r\n:1\r\n:1\r\n*0\r\n*0\r\n\
            *1\r\n*6\r\n$5\r\nflags\r\n*1\r\n+RO\r\n\
            $12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n\
            $9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n\
            *0\r\n\
            *10\r\n$3\r\nget\r\n:2\r\n*0\r\n:1\r\n:1\r\n:1\r\n*0\r\n*0\r\n*0\r\n*0\r\n";
        let v = decode(reply).unwrap();
        assert_eq!(learn(&v), 1);
        let args: Vec<&[u8]> = vec![b"JSON.GET", b"doc", b"$.a"];
        let cmd = lookup(args.as_slice()).expect("learned");
        assert!(cmd.has(flag::READONLY));
        let mut keys = Vec::new();
        for_each_key(cmd, args.as_slice(), |i| {
            keys.push(args[i]);
            true
        });
        assert_eq!(keys, vec![b"doc".as_slice()]);
        // GET stays the built-in entry.
        assert_eq!(lookup([b"get".as_slice()].as_slice()).unwrap().arity, 2);
    }
}
