//! Connections: clients (`client`), nodes (`backend`), the pool of node connections
//! (`pool`), output buffers (`outbuf`), socket I/O (`net`).

pub mod backend;
pub mod client;
pub mod net;
pub mod outbuf;
pub mod pool;
pub mod role;
pub mod tls;
