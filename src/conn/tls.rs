//! TLS for client connections, with rustls driven sans-IO from the mio loop: bytes from the
//! socket go to `read_tls`, `process_new_packets` decrypts, the plaintext lands in the
//! connection's read buffer; replies go into rustls's writer a bounded piece at a time and
//! leave through `write_tls`, so unsent output stays in the connection's own buffer, where
//! the output limits count it.
//!
//! ```text
//!   accept on tls_port --> handshaking (rustls) --> open: RESP as on the plain port
//!        a handshake that fails, or plain RESP sent to the TLS port --> closed, logged
//! ```

use std::cell::RefCell;
use std::io::{self, BufRead, IoSlice, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::BytesMut;
use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, Connection, RootCertStore, ServerConfig, ServerConnection};

use crate::config::{BackendTlsConfig, TlsConfig};
use crate::conn::net::{ReadOutcome, WriteOutcome};
use crate::conn::outbuf::OutBuf;

/// Plaintext handed to rustls per round of a flush: encrypted records are written out
/// before more is taken, so a slow reader's backlog stays in `OutBuf`.
const FEED: usize = 64 * 1024;

/// How often, at most, the certificate files are looked at for a change.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// A TLS configuration built from certificate files and rebuilt when they change on disk
/// (a renewed certificate needs no restart; connections already open keep theirs). The
/// files are looked at, at most once a second, when a new connection asks for it.
pub struct Watched<F: TlsFiles> {
    files: F,
    config: Arc<F::Config>,
    stamps: Vec<Option<SystemTime>>,
    checked: Instant,
}

/// What `Watched` needs of a configuration section: its files and how they are built.
pub trait TlsFiles: Clone + PartialEq {
    type Config;
    /// For the log: the section's key, and who gets a new configuration.
    const KEY: &'static str;
    const USERS: &'static str;
    fn build(&self) -> Result<Arc<Self::Config>, String>;
    fn paths(&self) -> Vec<&Path>;
}

impl TlsFiles for TlsConfig {
    type Config = ServerConfig;
    const KEY: &'static str = "tls";
    const USERS: &'static str = "new clients";
    fn build(&self) -> Result<Arc<ServerConfig>, String> {
        server_config(self)
    }
    fn paths(&self) -> Vec<&Path> {
        [&self.cert_file, &self.key_file]
            .into_iter()
            .chain(self.ca_file.as_ref())
            .map(|p| p.as_path())
            .collect()
    }
}

impl TlsFiles for BackendTlsConfig {
    type Config = ClientConfig;
    const KEY: &'static str = "backend_tls";
    const USERS: &'static str = "new node connections";
    fn build(&self) -> Result<Arc<ClientConfig>, String> {
        client_config(self)
    }
    fn paths(&self) -> Vec<&Path> {
        [&self.ca_file, &self.cert_file, &self.key_file]
            .into_iter()
            .flatten()
            .map(|p| p.as_path())
            .collect()
    }
}

/// The server side: what new TLS clients get.
pub type TlsAcceptor = Watched<TlsConfig>;
/// The node side: what new node connections get.
pub type BackendTls = Watched<BackendTlsConfig>;

impl<F: TlsFiles> Watched<F> {
    pub fn new(files: &F) -> Result<Watched<F>, String> {
        Ok(Watched {
            config: files.build()?,
            stamps: stamps(files),
            files: files.clone(),
            checked: Instant::now(),
        })
    }

    /// Other files (a reload): used from the next connection on.
    pub fn replace(&mut self, files: &F) -> Result<(), String> {
        if *files != self.files {
            self.config = files.build()?;
            self.stamps = stamps(files);
            self.files = files.clone();
        }
        Ok(())
    }

    /// The configuration for a new connection: the newest files' when they changed.
    pub fn current(&mut self, now: Instant) -> &Arc<F::Config> {
        if now.duration_since(self.checked) >= RECHECK {
            self.checked = now;
            let fresh = stamps(&self.files);
            if fresh != self.stamps {
                match self.files.build() {
                    Ok(c) => {
                        log::info!(
                            "{}: certificate files changed; {} get the new ones",
                            F::KEY,
                            F::USERS
                        );
                        self.config = c;
                        self.stamps = fresh;
                    }
                    // Half-written files, say: the old configuration goes on serving.
                    Err(e) => log::warn!(
                        "{}: certificate files changed but cannot be used ({e}); keeping the previous ones",
                        F::KEY
                    ),
                }
            }
        }
        &self.config
    }

    /// The files this configuration came from.
    pub fn files(&self) -> &F {
        &self.files
    }
}

impl TlsAcceptor {
    /// A server connection for a new client, with the newest certificate.
    pub fn accept(&mut self, now: Instant) -> Result<ServerConnection, String> {
        ServerConnection::new(Arc::clone(self.current(now))).map_err(|e| e.to_string())
    }
}

impl BackendTls {
    /// For a new node connection: the configuration, and the name the node's certificate
    /// is checked against (`server_name`; None: the node's address).
    pub fn for_node(&mut self, now: Instant) -> (&Arc<ClientConfig>, Option<&str>) {
        self.current(now);
        (&self.config, self.files.server_name.as_deref())
    }
}

fn stamps<F: TlsFiles>(files: &F) -> Vec<Option<SystemTime>> {
    files
        .paths()
        .into_iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// `tls_port`'s listener, registered, and the configuration its clients get.
pub fn tls_listener(
    cfg: &crate::config::Config,
    ip: std::net::IpAddr,
    registry: &mio::Registry,
    token: mio::Token,
) -> io::Result<(Option<mio::net::TcpListener>, Option<TlsAcceptor>)> {
    let (Some(files), port) = (&cfg.tls, cfg.tls_port) else {
        return Ok((None, None));
    };
    if port == 0 {
        return Ok((None, None));
    }
    let acceptor =
        TlsAcceptor::new(files).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let addr = std::net::SocketAddr::new(ip, port);
    let mut l = crate::conn::net::listen(addr, &cfg.socket)
        .map_err(|e| crate::conn::net::listen_error(addr, e))?;
    registry.register(&mut l, token, mio::Interest::READABLE)?;
    Ok((Some(l), Some(acceptor)))
}

/// `tls`'s files into a rustls configuration; errors name the key and the file.
pub fn server_config(files: &TlsConfig) -> Result<Arc<ServerConfig>, String> {
    let certs = load_certs(&files.cert_file, "tls.cert_file")?;
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| format!("tls.key_file: {}: {e}", files.key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &files.ca_file {
        // mTLS: clients must present a certificate signed by this CA.
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in load_certs(ca, "tls.ca_file")? {
                roots
                    .add(c)
                    .map_err(|e| format!("tls.ca_file: {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("tls.ca_file: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls.cert_file / tls.key_file: {e}"))?;
    Ok(Arc::new(config))
}

fn load_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{key}: {}: {e}", path.display()))?
        .collect();
    let certs = certs.map_err(|e| format!("{key}: {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{key}: {}: no certificate in it", path.display()));
    }
    Ok(certs)
}

/// Reads what the socket has through the TLS session into `buf`, as `net::read_via` does
/// for a plain one: until the socket would block, the peer closes, or `budget` bytes.
/// `stop_short` as there: a read that returned less than rustls asked for means the socket
/// was empty, so the recv that would only say `WouldBlock` is skipped.
pub fn read(
    tls: &mut Connection,
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    budget: usize,
    stop_short: bool,
) -> ReadOutcome {
    let stop_short = stop_short && cfg!(target_os = "linux");
    let mut total = 0;
    loop {
        if total >= budget {
            return ReadOutcome::Drained { more: true };
        }
        let (mut closed, mut blocked) = (false, false);
        let mut src = Probe {
            stream: &mut *stream,
            short: false,
        };
        match tls.read_tls(&mut src) {
            Ok(0) => closed = true,
            Ok(n) => {
                total += n;
                blocked = stop_short && src.short;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => blocked = true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return ReadOutcome::Failed(e),
        }
        if let Err(e) = tls.process_new_packets() {
            // The alert rustls queued goes out best effort; the client is then closed.
            let _ = tls.write_tls(stream);
            return ReadOutcome::Failed(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        if let Err(e) = drain_plaintext(tls, buf) {
            return ReadOutcome::Failed(e);
        }
        if closed {
            return ReadOutcome::Closed;
        }
        if blocked {
            return ReadOutcome::Drained { more: false };
        }
    }
}

/// The socket as rustls reads it, noting whether a read returned less than was asked.
struct Probe<'a> {
    stream: &'a mut TcpStream,
    short: bool,
}

impl Read for Probe<'_> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(b)?;
        self.short = n < b.len();
        Ok(n)
    }
}

/// Moves the decrypted plaintext into `buf`, straight from rustls's own records (no
/// intermediate buffer to fill).
fn drain_plaintext(tls: &mut Connection, buf: &mut BytesMut) -> io::Result<()> {
    let mut reader = tls.reader();
    loop {
        match reader.fill_buf() {
            Ok([]) => return Ok(()),
            Ok(chunk) => {
                let n = chunk.len();
                buf.extend_from_slice(chunk);
                reader.consume(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            // The peer ended the stream without close_notify: what came stays.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Writes the queued replies through the TLS session: records out first, then another
/// piece of plaintext, until everything is out or the socket is full.
pub fn write(tls: &mut Connection, stream: &mut TcpStream, wbuf: &mut OutBuf) -> WriteOutcome {
    loop {
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(0) => return WriteOutcome::Failed(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return WriteOutcome::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return WriteOutcome::Failed(e),
            }
        }
        if wbuf.is_empty() {
            return WriteOutcome::Done;
        }
        let before = wbuf.len();
        let mut piece = Piece {
            inner: tls.writer(),
            left: FEED,
        };
        // Done, or the piece is full: its records go out on the next round.
        if let WriteOutcome::Failed(e) = wbuf.write_to(&mut piece) {
            return WriteOutcome::Failed(e);
        }
        if wbuf.len() == before {
            // rustls takes no more now (a handshake under way, its buffer full): the rest
            // goes once the next read moved it on (the connection is flushed after reads).
            return WriteOutcome::Blocked;
        }
    }
}

/// A connection's output, through its TLS session when it has one.
pub fn write_out(
    tls: Option<&mut Connection>,
    stream: &mut TcpStream,
    wbuf: &mut OutBuf,
) -> WriteOutcome {
    match tls {
        Some(tls) => write(tls, stream, wbuf),
        None => wbuf.write_to(stream),
    }
}

/// rustls's plaintext writer, taking at most `left` bytes (then "would block").
struct Piece<'a> {
    inner: rustls::Writer<'a>,
    left: usize,
}

/// The largest plaintext of one TLS record.
const RECORD: usize = 16 * 1024;

thread_local! {
    /// Where several queued frames are gathered into one record's plaintext.
    static GATHER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(RECORD));
}

impl Write for Piece<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.inner.write(&b[..b.len().min(self.left)])?;
        if n == 0 && !b.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.left -= n;
        Ok(n)
    }

    /// Frames queued apart (replies that came from different node reads) would each become
    /// a record of their own, with its own allocation, encryption and 22 bytes of framing
    /// in rustls: small ones are copied together first, so a pipeline's replies leave as
    /// one record. A frame of a record's size or more goes as it is.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let first = bufs.iter().position(|b| !b.is_empty());
        let Some(first) = first else { return Ok(0) };
        let bufs = &bufs[first..];
        if bufs.len() == 1 || bufs[0].len() >= RECORD {
            return self.write(&bufs[0]);
        }
        GATHER.with(|g| {
            let mut g = g.borrow_mut();
            g.clear();
            let room = RECORD.min(self.left);
            for b in bufs {
                let take = b.len().min(room - g.len());
                g.extend_from_slice(&b[..take]);
                if g.len() == room {
                    break;
                }
            }
            self.write(&g)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `backend_tls` into the configuration every node connection uses: the nodes' CA (or no
/// verification, with `verify: false`) and the proxy's own certificate when the nodes ask
/// for one (`tls-auth-clients`).
pub fn client_config(files: &BackendTlsConfig) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if files.verify {
        let Some(ca) = &files.ca_file else {
            return Err(
                "backend_tls.ca_file: the nodes' CA is needed to verify them (or verify: false)"
                    .into(),
            );
        };
        let mut roots = RootCertStore::empty();
        for c in load_certs(ca, "backend_tls.ca_file")? {
            roots
                .add(c)
                .map_err(|e| format!("backend_tls.ca_file: {}: {e}", ca.display()))?;
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    };
    let config = match (&files.cert_file, &files.key_file) {
        (Some(cert), Some(key)) => {
            let certs = load_certs(cert, "backend_tls.cert_file")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("backend_tls.key_file: {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("backend_tls.cert_file / key_file: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("backend_tls: cert_file and key_file go together".into()),
    };
    Ok(Arc::new(config))
}

/// A node connection's TLS session: the name checked against the node's certificate is
/// `server_name`, else the node's address (an IP address, as nodes announce themselves).
pub fn connect(
    config: &Arc<ClientConfig>,
    server_name: Option<&str>,
    node_host: &str,
) -> Result<Connection, String> {
    client_session(config, server_name, node_host).map(Connection::Client)
}

/// The same session, for a blocking stream (discovery, before the reactor starts).
pub fn client_session(
    config: &Arc<ClientConfig>,
    server_name: Option<&str>,
    node_host: &str,
) -> Result<rustls::ClientConnection, String> {
    let shown = server_name.unwrap_or(node_host);
    let name = rustls::pki_types::ServerName::try_from(shown.to_string())
        .map_err(|e| format!("backend_tls: '{shown}' is not a server name: {e}"))?;
    rustls::ClientConnection::new(Arc::clone(config), name).map_err(|e| e.to_string())
}

/// `verify: false`: any certificate is taken (signatures are still checked, so the
/// session is encrypted, but the node is not authenticated). For test clusters.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
