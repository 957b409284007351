//! Clients' authentication and ACL, as Redis answers them: AUTH, HELLO's AUTH option,
//! NOAUTH before it, NOPERM for what a user may not run or touch, and the ACL reads (WHOAMI,
//! CAT, USERS, LIST, GETUSER, GENPASS) answered from the proxy's users. The rules are
//! `acl.rs`'s; this module applies them to a client's requests.

use std::time::Duration;

use log::warn;

use crate::acl::User;
use crate::command::{cat, flag, for_each_key, Args};
use crate::conn::client::Client;
use crate::error::ProxyError;
use crate::input::FrameArgs;
use crate::reactor::Core;
use crate::resp::encode::{self, Proto};
use crate::route::{Channels, Kind, Routed, SubOp};

/// At most one warning per this long for refused passwords; the ones in between are
/// counted in the next.
const AUTH_WARN_EVERY: Duration = Duration::from_secs(10);

impl Core {
    /// Why the client may not run this request, if it may not: NOAUTH before AUTH where the
    /// proxy requires it, NOPERM outside its user's rules. Unknown commands and wrong
    /// arities pass, to be refused as such (Redis checks those first too).
    pub(crate) fn acl_refusal(
        &mut self,
        c: &Client,
        args: &FrameArgs<'_>,
        routed: &Routed,
    ) -> Option<ProxyError> {
        let cmd = routed.cmd?;
        let Some(u) = c.user else {
            if !cmd.has(flag::NO_AUTH) {
                return Some(ProxyError::NoAuth);
            }
            let hello_auth = (2..args.argc()).any(|i| args.arg(i).eq_ignore_ascii_case(b"AUTH"));
            if routed.kind == Kind::Hello && !hello_auth {
                return Some(ProxyError::NoAuthHello);
            }
            return None;
        };
        let user = self.users.get(u)?;
        let denied = denial(user, cmd, args, routed.kind);
        if denied.is_some() {
            self.stats.acl_denied += 1;
        }
        denied
    }

    /// AUTH [user] password.
    pub(crate) fn auth(&mut self, c: &mut Client, args: &FrameArgs<'_>) {
        let (user, pass) = match args.argc() {
            2 => (&b"default"[..], args.arg(1)),
            3 => (args.arg(1), args.arg(2)),
            _ => return c.reply_now(&ProxyError::SyntaxError.to_frame()),
        };
        let default = self.users.get(0).filter(|d| d.enabled && d.nopass());
        if args.argc() == 2 && default.is_some() {
            return c.reply_now(&ProxyError::AuthWithoutPassword.to_frame());
        }
        match self.login(c, user, pass) {
            Ok(()) => c.reply_now(b"+OK\r\n"),
            Err(e) => c.reply_now(&e.to_frame()),
        }
    }

    /// HELLO's AUTH user password, checked before HELLO is answered: Ok when there is none
    /// or it is right.
    pub(crate) fn hello_auth(
        &mut self,
        c: &mut Client,
        args: &FrameArgs<'_>,
    ) -> Result<(), ProxyError> {
        let Some(i) = (2..args.argc()).find(|&i| args.arg(i).eq_ignore_ascii_case(b"AUTH")) else {
            return Ok(());
        };
        if i + 2 >= args.argc() {
            return Ok(()); // HELLO's own syntax error follows
        }
        self.login(c, args.arg(i + 1), args.arg(i + 2))
    }

    /// The client becomes `user` when the password is right and the user on.
    fn login(&mut self, c: &mut Client, user: &[u8], pass: &[u8]) -> Result<(), ProxyError> {
        // No password is longer: an absurd one is refused without being hashed.
        let found = match pass.len() <= crate::auth::MAX_PASSWORD {
            true => self.users.authenticate(user, pass),
            false => None,
        };
        if let Some(u) = found {
            c.user = Some(u);
            return Ok(());
        }
        self.stats.auth_failures += 1;
        self.auth_failures_unlogged += 1;
        let due = self
            .auth_warned
            .is_none_or(|at| self.now.duration_since(at) >= AUTH_WARN_EVERY);
        if due {
            // The user name is shown (bounded, as text), never the password.
            let shown = String::from_utf8_lossy(&user[..user.len().min(64)]).into_owned();
            warn!(
                "authentication refused for user '{shown}' from client {} (refusals since the last warning: {})",
                c.addr, self.auth_failures_unlogged
            );
            self.auth_warned = Some(self.now);
            self.auth_failures_unlogged = 0;
        }
        Err(ProxyError::WrongPass)
    }

    /// ACL WHOAMI | CAT [category] | USERS | LIST | GETUSER name | GENPASS [bits].
    pub(crate) fn acl(&mut self, c: &mut Client, args: &FrameArgs<'_>) {
        let mut out = Vec::new();
        let sub = args.arg(1).to_ascii_uppercase();
        let proto = c.proto;
        match (sub.as_slice(), args.argc()) {
            (b"WHOAMI", 2) => {
                let name = c
                    .user
                    .and_then(|u| self.users.get(u))
                    .map_or("default", |u| &u.name);
                encode::bulk(&mut out, name.as_bytes());
            }
            (b"USERS", 2) => {
                encode::array_header(&mut out, self.users.all().len());
                for u in self.users.all() {
                    encode::bulk(&mut out, u.name.as_bytes());
                }
            }
            (b"LIST", 2) => {
                encode::array_header(&mut out, self.users.all().len());
                for u in self.users.all() {
                    encode::bulk(&mut out, u.describe().as_bytes());
                }
            }
            (b"GETUSER", 3) => match self.users.find(args.arg(2)) {
                Some((_, u)) => getuser(&mut out, u, proto),
                None => encode::null(&mut out, proto),
            },
            (b"CAT", 2) => {
                encode::array_header(&mut out, cat::NAMES.len());
                for n in cat::NAMES {
                    encode::bulk(&mut out, n.as_bytes());
                }
            }
            (b"CAT", 3) => match std::str::from_utf8(args.arg(2)).ok().and_then(cat::parse) {
                Some(bits) => {
                    let names = crate::command::names_in_category(bits);
                    encode::array_header(&mut out, names.len());
                    for n in names {
                        encode::bulk(&mut out, n.as_bytes());
                    }
                }
                None => {
                    let shown = String::from_utf8_lossy(args.arg(2)).into_owned();
                    encode::error(&mut out, &ProxyError::UnknownCategory(shown).to_string());
                }
            },
            (b"GENPASS", 2 | 3) => match genpass(args) {
                Ok(p) => encode::bulk(&mut out, p.as_bytes()),
                Err(e) => encode::error(&mut out, &e.to_string()),
            },
            _ => encode::error(&mut out, &ProxyError::SyntaxError.to_string()),
        }
        c.reply_now(&out);
    }
}

/// What in the request the user may not do.
fn denial(
    user: &User,
    cmd: &crate::command::Command,
    args: &FrameArgs<'_>,
    kind: Kind,
) -> Option<ProxyError> {
    if !user.may_run(cmd) {
        let name = cmd.name.to_ascii_lowercase();
        return Some(ProxyError::NoPermCommand(name));
    }
    // Channels: a pub/sub command's arguments name channels, not keys.
    let channels = match kind {
        Kind::Sub(SubOp::Subscribe(Channels::Pattern)) => {
            let ok = (1..args.argc()).all(|i| user.may_use_pattern(args.arg(i)));
            return (!ok).then_some(ProxyError::NoPermChannel);
        }
        Kind::Sub(SubOp::Subscribe(_)) => 1..args.argc(),
        Kind::Publish { channel: true } | Kind::SPublish => 1..2,
        _ if cmd.has(flag::PUBSUB) => 0..0,
        _ => {
            let mut ok = true;
            for_each_key(cmd, args, |i| {
                ok = user.may_touch(cmd, args.arg(i));
                ok
            });
            return (!ok).then_some(ProxyError::NoPermKey);
        }
    };
    let ok = channels.clone().all(|i| user.may_use_channel(args.arg(i)));
    (!ok).then_some(ProxyError::NoPermChannel)
}

/// ACL GETUSER's map: flags, passwords (never shown: an empty list), commands, keys,
/// channels, selectors.
fn getuser(out: &mut Vec<u8>, u: &User, proto: Proto) {
    let rules = |pred: fn(&str) -> bool| -> String {
        u.rules
            .iter()
            .filter(|r| pred(r))
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    };
    encode::map_header(out, 6, proto);
    encode::bulk(out, b"flags");
    let mut flags = vec![if u.enabled { "on" } else { "off" }];
    if u.nopass() {
        flags.push("nopass");
    }
    encode::array_header(out, flags.len());
    for f in flags {
        encode::bulk(out, f.as_bytes());
    }
    encode::bulk(out, b"passwords");
    encode::array_header(out, 0);
    encode::bulk(out, b"commands");
    let cmds = rules(|r| r.starts_with('+') || r.starts_with('-') || r.ends_with("commands"));
    encode::bulk(out, cmds.as_bytes());
    encode::bulk(out, b"keys");
    let keys = rules(|r| r.starts_with('~') || r.starts_with('%') || r.ends_with("keys"));
    encode::bulk(out, keys.as_bytes());
    encode::bulk(out, b"channels");
    let chans = rules(|r| r.starts_with('&') || r.ends_with("channels"));
    encode::bulk(out, chans.as_bytes());
    encode::bulk(out, b"selectors");
    encode::array_header(out, 0);
}

/// ACL GENPASS [bits]: random hex from the kernel, as Redis gives (256 bits by default).
fn genpass(args: &FrameArgs<'_>) -> Result<String, ProxyError> {
    let bits = match args.argc() {
        3 => crate::resp::parse_int(args.arg(2))
            .filter(|&b| (1..=4096).contains(&b))
            .ok_or(ProxyError::GenpassBits)?,
        _ => 256,
    };
    let bytes = (bits as usize).div_ceil(8);
    let mut buf = vec![0u8; bytes];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|_| ProxyError::InternalRouting)?;
    let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    let chars = (bits as usize).div_ceil(4);
    Ok(hex[..chars].to_string())
}
