//! redis-cluster-proxy: one endpoint in front of a Redis Cluster. A single-threaded mio
//! reactor routes each request by its key's slot over shared, pipelined node connections
//! and follows the cluster's redirections itself.
//!
//! The modules are public so tests, benchmarks and fuzz targets reach the parsers.

pub mod accept;
pub mod acl;
pub mod alloc;
pub mod auth;
pub mod command;
pub mod compute;
pub mod config;
pub mod conn;
pub mod crew;
pub mod cross;
pub mod dispatch;
pub mod error;
pub mod fanin;
pub mod hold;
pub mod inflight;
pub mod input;
pub mod latency;
pub mod local;
pub mod lograte;
pub mod metrics;
pub mod pause;
pub mod pubsub;
pub mod reactor;
pub mod refresh;
pub mod reload;
pub mod reply;
pub mod resp;
pub mod route;
pub mod send;
pub mod sha1;
pub mod sha256;
pub mod signals;
pub mod slot;
pub mod timer;
pub mod topology;
pub mod totals;
pub mod tracking;
pub mod tx;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
