//! Connections: clients (`client`), nodes (`backend`), the pool of node connections
//! (`pool`), output buffers (`outbuf`), socket I/O (`net`), and the one `send` onto a node.

pub mod backend;
pub mod client;
pub mod net;
pub mod outbuf;
pub mod pool;
pub mod role;
pub mod send;
