//! Shared harness for the integration tests: a throw-away 3-master/3-replica Redis Cluster on
//! 127.0.0.1 (`Cluster`), the proxy binary in front of it (`Proxy`), a raw RESP client
//! (`resp::RawClient`) and small helpers (slot computation, waiting with deadlines).
//!
//! Everything started here is killed on Drop, also when the test panics; temp dirs are
//! removed on Drop unless RCP_KEEP_TMP is set. Child processes also get SIGKILL from the
//! kernel (PR_SET_PDEATHSIG) if the test thread that started them dies without unwinding.
//! (PDEATHSIG follows the spawning *thread*: start a Cluster/Proxy in the thread that owns it.)
//!
//! Environment knobs: RCP_MAX_CLUSTERS (clusters alive at once in one test binary, default 3),
//! RCP_KEEP_TMP (keep temp dirs), REDIS_SERVER / REDIS_CLI (explicit binary paths).
//!
//! By concern:
//! - `process`: external programs, commands with a deadline, free ports, temp dirs;
//! - `conn`: redis-rs connections with timeouts, PING, INFO parsing;
//! - `cluster`: the redis-server processes of a `Cluster`, its creation, health, direct
//!   queries to its nodes, teardown;
//! - `slots`: slot maths, slot ownership and slot migrations;
//! - `proxy`: the proxy binary (`Proxy`), its config and its log;
//! - `resp`: an independent RESP2/RESP3 parser, a raw client, `poll_until`;
//! - `standalone`: a standalone redis-server to compare the proxy's replies with.
//!
//! Everything a test uses is re-exported here, so `mod common; use common::*;` is enough.
#![allow(dead_code)]

pub mod cluster;
pub mod conn;
pub mod process;
pub mod proxy;
pub mod resp;
pub mod slots;
pub mod standalone;
pub mod tls;

#[allow(unused_imports)]
pub use cluster::*;
#[allow(unused_imports)]
pub use conn::*;
#[allow(unused_imports)]
pub use process::*;
#[allow(unused_imports)]
pub use proxy::*;
#[allow(unused_imports)]
pub use resp::{encode_cmd, log_tail, parse_resp, poll_until, RawClient, ReadEnd, Resp};
#[allow(unused_imports)]
pub use slots::*;
#[allow(unused_imports)]
pub use standalone::*;
#[allow(unused_imports)]
pub use tls::*;
