//! The commands the proxy answers itself, as Redis 7 answers them.

pub mod auth;
pub mod clients;
pub mod deferred;
pub mod info;
pub mod monitor;
pub mod proxy;
pub mod unblock;

use crate::command::Args;
use crate::conn::client::{Client, ClientState, ReplyMode};
use crate::error::ProxyError;
use crate::resp::encode::{self, Proto};
use crate::resp::parse_int;
use crate::route::Local;
use crate::slot::key_slot;

/// What the proxy says it is in HELLO.
pub struct ServerInfo<'a> {
    /// The cluster's Redis version, as its nodes report it.
    pub version: &'a str,
}

pub fn answer<A: Args + ?Sized>(l: Local, args: &A, c: &mut Client, info: &ServerInfo<'_>) {
    let mut out: Vec<u8> = Vec::with_capacity(32);
    match l {
        Local::Ping => match args.argc() {
            1 => encode::simple(&mut out, "PONG"),
            _ => encode::bulk(&mut out, args.arg(1)),
        },
        Local::Echo => encode::bulk(&mut out, args.arg(1)),
        Local::Quit => {
            encode::simple(&mut out, "OK");
            c.state = ClientState::Closing;
        }
        Local::Select => match parse_int(args.arg(1)) {
            Some(0) => encode::simple(&mut out, "OK"),
            Some(_) => error(&mut out, ProxyError::DbIndexOutOfRange),
            None => error(&mut out, ProxyError::NotAnInteger),
        },
        Local::Hello => hello(args, c, info, &mut out),
        Local::Reset => {
            // Its place in the tracking table goes on the next check (`fanin_tick`).
            c.tracking = None;
            c.proto = Proto::Resp2;
            c.name = None;
            encode::simple(&mut out, "RESET");
        }
        Local::ClientSetName => match valid_name(args.arg(2)) {
            Ok(()) => {
                set_name(c, args.arg(2));
                encode::simple(&mut out, "OK");
            }
            Err(e) => error(&mut out, e),
        },
        Local::ClientGetName => match &c.name {
            Some(n) => encode::bulk(&mut out, n),
            None => encode::null(&mut out, c.proto),
        },
        Local::ClientSetInfo => client_setinfo(c, args.arg(2), args.arg(3), &mut out),
        Local::ClientId => encode::integer(&mut out, c.id as i64),
        Local::Ok => encode::simple(&mut out, "OK"),
        Local::ClusterKeySlot => encode::integer(&mut out, key_slot(args.arg(2)).0 as i64),
        Local::ClientFlag => encode::simple(&mut out, "OK"),
        Local::ClientReply => client_reply(c, args.arg(2), &mut out),
        Local::Role => {
            encode::array_header(&mut out, 3);
            encode::bulk(&mut out, b"master");
            encode::integer(&mut out, 0);
            encode::array_header(&mut out, 0);
        }
        // Answered by the reactor, which has every client at hand.
        Local::ClientInfo
        | Local::ClientList
        | Local::ClientKill
        | Local::ClientPause
        | Local::ClientTracking
        | Local::ShardNumsub
        | Local::ClientUnblock
        | Local::Monitor
        | Local::Proxy
        | Local::Auth
        | Local::Acl => error(&mut out, ProxyError::InternalRouting),
    }
    c.reply_now(&out);
}

/// CLIENT SETINFO LIB-NAME|LIB-VER value.
fn client_setinfo(c: &mut Client, attr: &[u8], value: &[u8], out: &mut Vec<u8>) {
    let value = String::from_utf8_lossy(value).into_owned();
    if attr.eq_ignore_ascii_case(b"LIB-NAME") {
        c.lib_name = Some(value);
        encode::simple(out, "OK");
    } else if attr.eq_ignore_ascii_case(b"LIB-VER") {
        c.lib_ver = Some(value);
        encode::simple(out, "OK");
    } else {
        error(
            out,
            ProxyError::UnrecognizedOption(String::from_utf8_lossy(attr).into_owned()),
        );
    }
}

/// CLIENT REPLY ON|OFF|SKIP.
fn client_reply(c: &mut Client, mode: &[u8], out: &mut Vec<u8>) {
    if mode.eq_ignore_ascii_case(b"ON") {
        c.reply_mode = ReplyMode::On;
        // ON is answered even when it ends OFF.
        c.silent = false;
        encode::simple(out, "OK");
    } else if mode.eq_ignore_ascii_case(b"OFF") {
        c.reply_mode = ReplyMode::Off;
        c.silent = true;
    } else if mode.eq_ignore_ascii_case(b"SKIP") {
        c.reply_mode = ReplyMode::SkipNext;
        c.silent = true;
    } else {
        error(out, ProxyError::SyntaxError);
    }
}

fn set_name(c: &mut Client, name: &[u8]) {
    c.name = if name.is_empty() {
        None
    } else {
        Some(bytes::Bytes::copy_from_slice(name))
    };
}

fn valid_name(name: &[u8]) -> Result<(), ProxyError> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(ProxyError::InvalidClientName);
    }
    Ok(())
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]: checks everything before changing
/// anything, then answers in the protocol just chosen.
fn hello<A: Args + ?Sized>(args: &A, c: &mut Client, info: &ServerInfo<'_>, out: &mut Vec<u8>) {
    let mut proto = c.proto;
    let mut name: Option<&[u8]> = None;
    if args.argc() >= 2 {
        proto = match parse_int(args.arg(1)) {
            Some(2) => Proto::Resp2,
            Some(3) => Proto::Resp3,
            Some(_) => {
                error(out, ProxyError::NoProto);
                return;
            }
            None => {
                error(out, ProxyError::HelloProtoNotInteger);
                return;
            }
        };
        let mut i = 2;
        while i < args.argc() {
            let opt = args.arg(i);
            let more = args.argc() - i - 1;
            if opt.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
                // Checked before (`Core::hello_auth`): the client is that user now.
                i += 3;
            } else if opt.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
                if let Err(e) = valid_name(args.arg(i + 1)) {
                    error(out, e);
                    return;
                }
                name = Some(args.arg(i + 1));
                i += 2;
            } else {
                error(
                    out,
                    ProxyError::HelloSyntax(String::from_utf8_lossy(opt).into_owned()),
                );
                return;
            }
        }
    }
    c.proto = proto;
    if let Some(n) = name {
        set_name(c, n);
    }
    encode::map_header(out, 7, proto);
    encode::bulk(out, b"server");
    encode::bulk(out, b"redis");
    encode::bulk(out, b"version");
    encode::bulk(out, info.version.as_bytes());
    encode::bulk(out, b"proto");
    encode::integer(out, if proto == Proto::Resp3 { 3 } else { 2 });
    encode::bulk(out, b"id");
    encode::integer(out, c.id as i64);
    encode::bulk(out, b"mode");
    encode::bulk(out, b"standalone");
    encode::bulk(out, b"role");
    encode::bulk(out, b"master");
    encode::bulk(out, b"modules");
    encode::array_header(out, 0);
}

/// A refusal, rendered by `error.rs`.
fn error(out: &mut Vec<u8>, e: ProxyError) {
    encode::error(out, &e.to_string());
}
