//! Clients' users, as Redis's ACL: who may connect (passwords, `on`/`off`, `nopass`) and
//! what each may run and touch (`+@category`, `-command`, `~key-pattern`, `%R~`, `%W~`,
//! `&channel-pattern`). Built once from `auth` in config.yaml; checked on every request
//! without allocating. Pure: no sockets, so every rule has a table test.
//!
//! ```text
//!   connection --(default user nopass)--> authenticated as default
//!   connection --AUTH / HELLO AUTH ok--> authenticated as that user
//!              --anything but AUTH/HELLO/QUIT--> -NOAUTH
//!   authenticated --command, key or channel outside the user's rules--> -NOPERM
//! ```

use crate::command::{cat, flag, Command};
use crate::config::{AuthConfig, ConfigError, UserConfig};
use crate::sha256::sha256;

/// A command rule, applied in order: the last rule that matches a command decides.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CmdRule {
    /// `+@all` / `allcommands` (true), `-@all` / `nocommands` (false).
    All(bool),
    Category(u32, bool),
    /// A command (upper case) and every subcommand of it, or one `PARENT|SUB`.
    Command(String, bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    nopass: bool,
    passwords: Vec<[u8; 32]>,
    commands: Vec<CmdRule>,
    keys: Vec<(Access, String)>,
    channels: Vec<String>,
    all_channels: bool,
    /// The rules as given (passwords left out), for ACL LIST and GETUSER.
    pub rules: Vec<String>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The command, lower case (`config|get`), as Redis names it in NOPERM.
    Command(String),
    Key,
    Channel,
}

/// What a request touches, for the check.
pub struct Touches<'a> {
    pub keys: &'a [&'a [u8]],
    pub channels: &'a [&'a [u8]],
    /// PSUBSCRIBE's patterns: allowed only as literally as the user's channel patterns.
    pub patterns: &'a [&'a [u8]],
}

impl User {
    fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            commands: Vec::new(),
            keys: Vec::new(),
            channels: Vec::new(),
            all_channels: false,
            rules: Vec::new(),
        }
    }

    /// Applies one rule in Redis's ACL syntax.
    fn apply(&mut self, rule: &str) -> Result<(), String> {
        let lower = rule.to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "allkeys" => self.keys.push((Access::ReadWrite, "*".into())),
            "resetkeys" => self.keys.clear(),
            "allchannels" => self.all_channels = true,
            "resetchannels" => {
                self.all_channels = false;
                self.channels.clear();
            }
            "allcommands" | "+@all" => self.commands.push(CmdRule::All(true)),
            "nocommands" | "-@all" => self.commands.push(CmdRule::All(false)),
            _ => return self.apply_pattern(rule),
        }
        if !rule.starts_with('>') && !rule.starts_with('#') {
            self.rules.push(lower);
        }
        Ok(())
    }

    fn apply_pattern(&mut self, rule: &str) -> Result<(), String> {
        let bad = || Err(format!("'{rule}' is not an ACL rule the proxy knows"));
        if let Some(p) = rule.strip_prefix('>') {
            self.passwords.push(sha256(p.as_bytes()));
            self.nopass = false;
            return Ok(());
        }
        if let Some(h) = rule.strip_prefix('#') {
            self.passwords.push(parse_hash(h)?);
            self.nopass = false;
            return Ok(());
        }
        let (sign, rest) = match rule.as_bytes().first() {
            Some(b'+') => (Some(true), &rule[1..]),
            Some(b'-') => (Some(false), &rule[1..]),
            _ => (None, rule),
        };
        if let Some(p) = rule.strip_prefix('~') {
            self.keys.push((Access::ReadWrite, p.to_string()));
        } else if let Some(p) = rule.strip_prefix("%R~").or(rule.strip_prefix("%r~")) {
            self.keys.push((Access::Read, p.to_string()));
        } else if let Some(p) = rule.strip_prefix("%W~").or(rule.strip_prefix("%w~")) {
            self.keys.push((Access::Write, p.to_string()));
        } else if let Some(p) = rule
            .strip_prefix("%RW~")
            .or(rule.strip_prefix("%WR~"))
            .or(rule.strip_prefix("%rw~"))
            .or(rule.strip_prefix("%wr~"))
        {
            self.keys.push((Access::ReadWrite, p.to_string()));
        } else if let Some(p) = rule.strip_prefix('&') {
            self.channels.push(p.to_string());
        } else if let (Some(sign), Some(c)) = (sign, rest.strip_prefix('@')) {
            match cat::parse(c) {
                Some(bits) => self.commands.push(CmdRule::Category(bits, sign)),
                None => return Err(format!("'{rule}': unknown ACL category '{c}'")),
            }
        } else if let Some(sign) = sign {
            if rest.is_empty() || rest.contains(char::is_whitespace) {
                return bad();
            }
            let name = rest.to_ascii_uppercase();
            if crate::command::lookup_name(&name).is_none() {
                return Err(format!("'{rule}': unknown command '{rest}'"));
            }
            self.commands.push(CmdRule::Command(name, sign));
        } else {
            return bad();
        }
        self.rules.push(rule.to_string());
        Ok(())
    }

    /// Whether `password` is one of the user's (or the user takes any).
    pub fn password_ok(&self, password: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let h = sha256(password);
        // Every stored hash is compared in full, so timing tells nothing of which matched.
        self.passwords
            .iter()
            .fold(false, |ok, p| ok | constant_eq(p, &h))
    }

    pub fn nopass(&self) -> bool {
        self.nopass
    }

    /// Whether the user may run the command (AUTH, HELLO, QUIT and their kin, flagged
    /// no-auth, are never refused, as on Redis).
    pub fn may_run(&self, cmd: &Command) -> bool {
        if cmd.has(flag::NO_AUTH) {
            return true;
        }
        let mut allowed = false;
        for r in &self.commands {
            match r {
                CmdRule::All(s) => allowed = *s,
                CmdRule::Category(bits, s) if cmd.acl & bits != 0 => allowed = *s,
                CmdRule::Command(name, s) if names_command(name, cmd.name) => allowed = *s,
                _ => {}
            }
        }
        allowed
    }

    /// Whether the user may touch `key` with the command.
    pub fn may_touch(&self, cmd: &Command, key: &[u8]) -> bool {
        // Keys written need W, keys only read need R; what is neither needs both.
        let need = if cmd.has(flag::WRITE) {
            Access::Write
        } else if cmd.has(flag::READONLY) {
            Access::Read
        } else {
            Access::ReadWrite
        };
        let mut read = false;
        let mut write = false;
        for (access, pattern) in &self.keys {
            if glob(pattern.as_bytes(), key) {
                read |= matches!(access, Access::Read | Access::ReadWrite);
                write |= matches!(access, Access::Write | Access::ReadWrite);
            }
        }
        match need {
            Access::Read => read,
            Access::Write => write,
            Access::ReadWrite => read && write,
        }
    }

    pub fn may_use_channel(&self, channel: &[u8]) -> bool {
        self.all_channels || self.channels.iter().any(|p| glob(p.as_bytes(), channel))
    }

    /// A PSUBSCRIBE pattern: allowed only when it is one of the user's patterns as written.
    pub fn may_use_pattern(&self, pattern: &[u8]) -> bool {
        self.all_channels || self.channels.iter().any(|p| p.as_bytes() == pattern)
    }

    /// The first refusal for a request, or None.
    pub fn check(&self, cmd: &Command, t: &Touches<'_>) -> Option<Denied> {
        if !self.may_run(cmd) {
            return Some(Denied::Command(cmd.name.to_ascii_lowercase()));
        }
        if t.keys.iter().any(|k| !self.may_touch(cmd, k)) {
            return Some(Denied::Key);
        }
        if t.channels.iter().any(|c| !self.may_use_channel(c))
            || t.patterns.iter().any(|p| !self.may_use_pattern(p))
        {
            return Some(Denied::Channel);
        }
        None
    }

    /// ACL LIST's line: `user NAME on|off [nopass] rules...` (passwords never shown).
    pub fn describe(&self) -> String {
        let mut out = format!(
            "user {} {}",
            self.name,
            if self.enabled { "on" } else { "off" }
        );
        if self.nopass {
            out.push_str(" nopass");
        }
        for r in self
            .rules
            .iter()
            .filter(|r| !matches!(r.as_str(), "on" | "off" | "nopass"))
        {
            out.push(' ');
            out.push_str(r);
        }
        out
    }
}

/// Whether a rule's command name covers `cmd` (`CONFIG` covers `CONFIG|GET`).
fn names_command(rule: &str, cmd: &str) -> bool {
    cmd == rule
        || cmd
            .strip_prefix(rule)
            .is_some_and(|rest| rest.starts_with('|'))
}

fn constant_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_hash(h: &str) -> Result<[u8; 32], String> {
    let bytes = h.as_bytes();
    if bytes.len() != 64 || !bytes.iter().all(u8::is_ascii_hexdigit) {
        return Err("a password hash is 64 hex digits (SHA-256)".into());
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
        out[i] = u8::from_str_radix(s, 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Redis-style glob (`*`, `?`, `[...]` sets, `\` escapes), iterative with one backtrack
/// point, so a hostile pattern costs linear time per star.
pub fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(&p[pi..], s[si]) {
                        if matched {
                            pi += next;
                            si += 1;
                            continue;
                        }
                    }
                }
                b'\\' if pi + 1 < p.len() && p[pi + 1] == s[si] => {
                    pi += 2;
                    si += 1;
                    continue;
                }
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A `[...]` set at the start of `p`: whether `c` is in it, and the set's length.
fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let end = p.iter().skip(1).position(|&b| b == b']')? + 1;
    let body = &p[1..end];
    let (negate, body) = match body.first() {
        Some(b'^') => (true, &body[1..]),
        _ => (false, body),
    };
    let mut hit = false;
    let mut i = 0;
    while i < body.len() {
        if i + 2 < body.len() && body[i + 1] == b'-' {
            hit |= (body[i]..=body[i + 2]).contains(&c);
            i += 3;
        } else {
            hit |= body[i] == c;
            i += 1;
        }
    }
    Some((hit != negate, end + 1))
}

/// Every user, `default` first.
#[derive(Debug, Clone)]
pub struct Users {
    users: Vec<User>,
}

impl Users {
    /// From `auth`: the default user from `auth.password` (Redis's requirepass) unless
    /// `auth.users` defines it; every user from its rules.
    pub fn from_config(cfg: &AuthConfig) -> Result<Users, ConfigError> {
        let mut default = User::new("default");
        match &cfg.password {
            Some(p) => {
                for r in ["on", "~*", "&*", "+@all"] {
                    default.apply(r).map_err(ConfigError)?;
                }
                default.passwords.push(sha256(p.expose().as_bytes()));
            }
            // Users but no password: the default user is off, so every client says who it is.
            None => default.apply("off").map_err(ConfigError)?,
        }
        let mut users = vec![default];
        for u in &cfg.users {
            let user = build_user(u)?;
            match users.iter().position(|x| x.name == user.name) {
                Some(i) => users[i] = user,
                None => users.push(user),
            }
        }
        Ok(Users { users })
    }

    /// No `auth`: the `default` user takes any password and may do anything.
    pub fn open() -> Users {
        let mut d = User::new("default");
        for r in ["on", "nopass", "~*", "&*", "+@all"] {
            // Rules of the proxy's own: they parse.
            let _ = d.apply(r);
        }
        Users { users: vec![d] }
    }

    /// No one may log in (the default user off, no other).
    pub fn closed() -> Users {
        Users {
            users: vec![User::new("default")],
        }
    }

    pub fn all(&self) -> &[User] {
        &self.users
    }

    pub fn get(&self, i: u16) -> Option<&User> {
        self.users.get(i as usize)
    }

    pub fn find(&self, name: &[u8]) -> Option<(u16, &User)> {
        self.users
            .iter()
            .enumerate()
            .find(|(_, u)| u.name.as_bytes() == name)
            .map(|(i, u)| (i as u16, u))
    }

    /// The user a new connection starts as: `default` when it takes no password.
    pub fn initial(&self) -> Option<u16> {
        let d = &self.users[0];
        (d.enabled && d.nopass).then_some(0)
    }

    /// AUTH [user] password: the user, when the pair is valid and the user on.
    pub fn authenticate(&self, user: &[u8], password: &[u8]) -> Option<u16> {
        let (i, u) = self.find(user)?;
        (u.enabled && u.password_ok(password)).then_some(i)
    }
}

fn build_user(u: &UserConfig) -> Result<User, ConfigError> {
    let key = format!("auth.users[{}]", u.name);
    if u.name.is_empty() || u.name.contains(char::is_whitespace) {
        return Err(ConfigError(format!("{key}: a user name without spaces")));
    }
    let mut user = User::new(&u.name);
    user.apply(if u.enabled { "on" } else { "off" })
        .map_err(|e| ConfigError(format!("{key}: {e}")))?;
    for p in &u.passwords {
        let r = match p.strip_prefix("sha256:") {
            Some(h) => format!("#{h}"),
            None => format!(">{p}"),
        };
        user.apply(&r)
            .map_err(|e| ConfigError(format!("{key}.passwords: {e}")))?;
    }
    for r in u.rules.split_whitespace() {
        user.apply(r)
            .map_err(|e| ConfigError(format!("{key}.rules: {e}")))?;
    }
    if !user.nopass && user.passwords.is_empty() && user.enabled {
        return Err(ConfigError(format!(
            "{key}: no password (give passwords, or the rule nopass)"
        )));
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::lookup_name;

    fn user(rules: &str) -> User {
        let mut u = User::new("u");
        for r in rules.split_whitespace() {
            u.apply(r).unwrap();
        }
        u
    }

    fn cmd(name: &str) -> &'static Command {
        lookup_name(name).unwrap_or_else(|| panic!("{name} not in the table"))
    }

    #[test]
    fn command_rules_apply_in_order() {
        // rules, command, may run
        let table = [
            ("+@all", "FLUSHALL", true),
            ("+@all -@dangerous", "FLUSHALL", false),
            ("+@all -@dangerous", "GET", true),
            ("+@read", "GET", true),
            ("+@read", "SET", false),
            ("+@read +set", "SET", true),
            ("+@all -config", "CONFIG|GET", false),
            ("+@all -config +config|get", "CONFIG|GET", true),
            ("+@all -config +config|get", "CONFIG|SET", false),
            ("-@all +get", "GET", true),
            ("", "GET", false),
            // AUTH and kin are no-auth commands: never refused.
            ("", "AUTH", true),
            ("", "HELLO", true),
        ];
        for (rules, name, want) in table {
            assert_eq!(user(rules).may_run(cmd(name)), want, "{rules:?} {name}");
        }
    }

    #[test]
    fn key_and_channel_rules() {
        let u = user("+@all ~app:* %R~shared:* &news.*");
        assert!(u.may_touch(cmd("SET"), b"app:1"));
        assert!(!u.may_touch(cmd("SET"), b"other"));
        assert!(u.may_touch(cmd("GET"), b"shared:x"));
        assert!(!u.may_touch(cmd("SET"), b"shared:x"), "read-only pattern");
        assert!(u.may_use_channel(b"news.sport"));
        assert!(!u.may_use_channel(b"gossip"));
        assert!(u.may_use_pattern(b"news.*"));
        assert!(
            !u.may_use_pattern(b"*"),
            "a pattern must be one of the user's"
        );
        let all = user("+@all allkeys allchannels");
        assert!(all.may_touch(cmd("DEL"), b"anything") && all.may_use_pattern(b"*"));
        let t = Touches {
            keys: &[b"app:1", b"other"],
            channels: &[],
            patterns: &[],
        };
        assert_eq!(u.check(cmd("MGET"), &t), Some(Denied::Key));
        assert_eq!(
            user("+get").check(cmd("SET"), &t),
            Some(Denied::Command("set".into()))
        );
    }

    #[test]
    fn passwords_and_users() {
        let cfg = AuthConfig {
            password: Some(crate::auth::Secret::new("topsecret".into())),
            users: vec![
                UserConfig {
                    name: "reader".into(),
                    passwords: vec!["r1".into(), format!("sha256:{}", hex(&sha256(b"r2")))],
                    enabled: true,
                    rules: "+@read ~*".into(),
                },
                UserConfig {
                    name: "gone".into(),
                    passwords: vec!["x".into()],
                    enabled: false,
                    rules: String::new(),
                },
            ],
        };
        let users = Users::from_config(&cfg).unwrap();
        assert_eq!(users.initial(), None, "a password is required");
        assert_eq!(users.authenticate(b"default", b"topsecret"), Some(0));
        assert_eq!(users.authenticate(b"default", b"nope"), None);
        assert_eq!(users.authenticate(b"reader", b"r1"), Some(1));
        assert_eq!(users.authenticate(b"reader", b"r2"), Some(1));
        assert_eq!(users.authenticate(b"gone", b"x"), None, "off");
        assert_eq!(users.authenticate(b"nobody", b"x"), None);
        assert_eq!(users.get(1).unwrap().describe(), "user reader on +@read ~*");
        assert!(!format!("{users:?}").contains("topsecret"));
        let bad = AuthConfig {
            users: vec![UserConfig {
                name: "x".into(),
                passwords: vec!["p".into()],
                enabled: true,
                rules: "+@nosuchcategory".into(),
            }],
            ..AuthConfig::default()
        };
        let e = Users::from_config(&bad).unwrap_err().0;
        assert!(e.starts_with("auth.users[x].rules:"), "{e}");
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn globs() {
        for (p, s, want) in [
            ("*", "", true),
            ("app:*", "app:1", true),
            ("app:*", "ap", false),
            ("h?llo", "hello", true),
            ("h[ae]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-c]llo", "hbllo", true),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
        ] {
            assert_eq!(glob(p.as_bytes(), s.as_bytes()), want, "{p} {s}");
        }
        let p = [b"*".repeat(60), b"Z".to_vec()].concat();
        assert!(!glob(&p, &b"a".repeat(60)));
    }
}
