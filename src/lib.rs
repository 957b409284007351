//! redis-cluster-proxy: one endpoint in front of a Redis Cluster. A single-threaded mio
//! reactor routes each request by its key's slot over shared, pipelined node connections
//! and follows the cluster's redirections itself.
//!
//! The modules are public so tests, benchmarks and fuzz targets reach the parsers.

pub mod alloc;
pub mod backend;
pub mod client;
pub mod cluster_view;
pub mod command;
pub mod config;
pub mod crew;
pub mod discover;
pub mod error;
pub mod inflight;
pub mod local;
pub mod net;
pub mod outbuf;
pub mod policy;
pub mod pool;
pub mod reactor;
pub mod resp;
pub mod router;
pub mod sha1;
pub mod signals;
pub mod slot;
pub mod split;
pub mod timer;
pub mod topology;
pub mod totals;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
