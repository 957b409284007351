//! The proxy's own errors for routing and backends, and the one place that renders any of
//! them as the line a client sees.

use std::fmt;

use crate::resp::ParseError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// A malformed request; the connection is closed after the reply.
    Protocol(ParseError),
    UnknownCommand {
        name: String,
        args: Vec<String>,
    },
    CrossSlot,
    /// No node owns the slot (the cluster does not cover it, or the map is being refreshed).
    SlotUnserved(u16),
    /// The node is down or its connection broke.
    NodeUnavailable {
        node: String,
        why: String,
    },
    TooManyRedirects {
        max: u32,
        last: String,
    },
    /// A command the proxy does not (yet) carry, with the reason.
    Unsupported(String),
    /// Anything else, already worded as Redis would (`ERR ...`).
    Other(String),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Protocol(e) => write!(f, "ERR Protocol error: {e}"),
            ProxyError::UnknownCommand { name, args } => {
                write!(
                    f,
                    "ERR unknown command '{name}', with args beginning with: "
                )?;
                for a in args {
                    write!(f, "'{a}' ")?;
                }
                Ok(())
            }
            ProxyError::CrossSlot => {
                f.write_str("CROSSSLOT Keys in request don't hash to the same slot")
            }
            ProxyError::SlotUnserved(s) => write!(
                f,
                "CLUSTERDOWN Hash slot {s} is not served by any node the proxy knows"
            ),
            ProxyError::NodeUnavailable { node, why } => {
                write!(f, "ERR cluster node {node} unavailable: {why}")
            }
            ProxyError::TooManyRedirects { max, last } => write!(
                f,
                "ERR too many cluster redirections (max_redirects {max}), last: {last}"
            ),
            ProxyError::Unsupported(m) | ProxyError::Other(m) => f.write_str(m),
        }
    }
}

impl ProxyError {
    /// The client-visible error frame.
    pub fn to_frame(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        crate::resp::encode::error(&mut out, &self.to_string());
        out
    }

    /// Redis's unknown-command error: the name and the first arguments, each cut at 128
    /// bytes, as `processCommand` words it.
    pub fn unknown_command_args<A: crate::command::Args + ?Sized>(args: &A) -> ProxyError {
        let show = |a: &[u8]| String::from_utf8_lossy(&a[..a.len().min(128)]).into_owned();
        let name = if args.argc() > 0 {
            show(args.arg(0))
        } else {
            String::new()
        };
        let mut rest = Vec::new();
        let mut budget = 128usize;
        for i in 1..args.argc() {
            if budget == 0 {
                break;
            }
            let s = show(args.arg(i));
            budget = budget.saturating_sub(s.len());
            rest.push(s);
        }
        ProxyError::UnknownCommand { name, args: rest }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_redis() {
        assert_eq!(
            ProxyError::unknown_command_args([b"foo".as_slice(), b"a", b"b"].as_slice()).to_frame(),
            b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n".to_vec()
        );
        assert_eq!(
            ProxyError::CrossSlot.to_frame(),
            b"-CROSSSLOT Keys in request don't hash to the same slot\r\n".to_vec()
        );
        assert_eq!(
            ProxyError::Protocol(ParseError::InvalidBulkLength).to_frame(),
            b"-ERR Protocol error: invalid bulk length\r\n".to_vec()
        );
    }
}
