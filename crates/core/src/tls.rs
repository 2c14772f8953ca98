//! TLS as a transport of a connection: the core runs rustls' record layer so that sessions
//! see plaintext through the same pipes as on a plain socket.
//!
//! A TLS connection keeps a `rustls::Connection` (server or client side) in
//! `Connection::tls`. The loop drives it:
//! - **handshake** (`handshake`): while a connection handshakes it belongs to no session
//!   (an accepted one) or its connect is still pending (an upstream one); socket readiness
//!   feeds `read_tls` → `process_new_packets` and `write_tls`, bounded by a timeout. When
//!   it is over, the accepted connection gets its session (the factory sees SNI and ALPN),
//!   and an upstream connect is reported as done.
//! - **reading** (`read_plain`, called by a pipe's fill): plaintext rustls already holds
//!   first, then `read_tls` from the socket and decrypt; `close_notify` is the end of
//!   stream.
//! - **writing** (`write_plain` / `flush`, called by a pipe's drain): plaintext goes into
//!   rustls (bounded by its buffer limit: that is the backpressure), records go to the
//!   socket with `write_tls`. A pipe is not over while its TLS sink still holds records, so
//!   nothing is lost when a session closes after its last pipe ended.
//! - **half-close**: `close_notify`, flushed, then the TCP FIN.
//!
//! kTLS (the kernel doing the record layer) is probed once at start (`ktls_supported`) and
//! the answer logged; the hand-over itself is not built (no kernel here offers the TLS
//! upper-layer protocol to test it on), so rustls in user space does the record layer.

use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use mio::net::TcpStream;

pub use rustls;

/// Plaintext bytes rustls may hold unsent per connection before a pipe's writes stop.
const SEND_LIMIT: usize = 64 * 1024;

/// What a session may learn of a TLS connection once its handshake is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// The server name the client asked for (SNI), lowercased; `None` without SNI.
    pub sni: Option<String>,
    /// The application protocol agreed by ALPN (`http/1.1`, `h2`), if any.
    pub alpn: Option<String>,
    /// `TLSv1_2`, `TLSv1_3`.
    pub version: &'static str,
    /// The cipher suite, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub cipher: &'static str,
}

/// How an upstream connection speaks TLS: its config, the name to send and verify (SNI),
/// and a tag that keeps pooled connections apart (0 is a plain connection).
#[derive(Clone, Debug)]
pub struct TlsClient {
    pub config: Arc<rustls::ClientConfig>,
    pub name: rustls::pki_types::ServerName<'static>,
}

impl TlsClient {
    /// The pool tag of connections made with this name (never 0).
    pub(crate) fn tag(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        format!("{:?}", self.name).hash(&mut h);
        (Arc::as_ptr(&self.config) as usize).hash(&mut h);
        h.finish() | 1
    }
}

/// The TLS state of one connection.
pub(crate) struct Tls {
    pub conn: rustls::Connection,
    /// Plaintext rustls holds, not read yet.
    pub plain: usize,
    /// The peer sent `close_notify`.
    pub peer_closed: bool,
    /// `close_notify` is queued: send the TCP FIN once every record is written.
    pub fin_after_flush: bool,
    /// Set when the handshake is over.
    pub info: Option<Arc<TlsInfo>>,
}

impl Tls {
    pub fn server(config: Arc<rustls::ServerConfig>) -> Result<Tls, rustls::Error> {
        let mut conn = rustls::ServerConnection::new(config)?;
        conn.set_buffer_limit(Some(SEND_LIMIT));
        Ok(Tls::new(conn.into()))
    }

    pub fn client(c: &TlsClient) -> Result<Tls, rustls::Error> {
        let mut conn = rustls::ClientConnection::new(c.config.clone(), c.name.clone())?;
        conn.set_buffer_limit(Some(SEND_LIMIT));
        Ok(Tls::new(conn.into()))
    }

    fn new(conn: rustls::Connection) -> Tls {
        Tls {
            conn,
            plain: 0,
            peer_closed: false,
            fin_after_flush: false,
            info: None,
        }
    }

    /// Records are waiting for the socket.
    pub fn pending_out(&self) -> bool {
        self.conn.wants_write()
    }

    fn info(&self) -> TlsInfo {
        let sni = match &self.conn {
            rustls::Connection::Server(s) => s.server_name().map(str::to_ascii_lowercase),
            rustls::Connection::Client(_) => None,
        };
        TlsInfo {
            sni,
            alpn: self
                .conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            version: self
                .conn
                .protocol_version()
                .and_then(|v| v.as_str())
                .unwrap_or("TLS"),
            cipher: self
                .conn
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("unknown"),
        }
    }

    fn process(&mut self) -> Result<(), rustls::Error> {
        let st = self.conn.process_new_packets()?;
        self.plain = st.plaintext_bytes_to_read();
        self.peer_closed |= st.peer_has_closed();
        Ok(())
    }
}

/// Where a handshake stands after the loop drove it as far as the socket allows.
pub(crate) enum Handshake {
    Pending,
    Done,
    Failed(String),
}

/// Drive the handshake of `tls` on `stream` until it is over or the socket would block.
pub(crate) fn handshake(
    tls: &mut Tls,
    stream: &TcpStream,
    read_ready: &mut bool,
    write_ready: &mut bool,
) -> Handshake {
    loop {
        if tls.conn.wants_write() && *write_ready {
            match tls.conn.write_tls(&mut &*stream) {
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => *write_ready = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Handshake::Failed(format!("writing: {e}")),
            }
        }
        if !tls.conn.is_handshaking() {
            tls.info = Some(Arc::new(tls.info()));
            return Handshake::Done;
        }
        if !*read_ready {
            return Handshake::Pending;
        }
        match tls.conn.read_tls(&mut &*stream) {
            Ok(0) => return Handshake::Failed("the peer closed the connection".into()),
            Ok(_) => {
                if let Err(e) = tls.process() {
                    // Tell the peer why (the alert rustls queued), as far as the socket takes it.
                    let _ = tls.conn.write_tls(&mut &*stream);
                    return Handshake::Failed(e.to_string());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => *read_ready = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Handshake::Failed(format!("reading: {e}")),
        }
    }
}

/// Read up to `want` bytes of plaintext into the shared buffer: what rustls holds, else
/// records from the socket. `Ok` of an empty `Bytes` is the end of stream (`close_notify`,
/// or a TCP FIN without one). `WouldBlock` when the socket has nothing more.
pub(crate) fn read_plain(
    tls: &mut Tls,
    stream: &TcpStream,
    read_ready: &mut bool,
    scratch: &mut BytesMut,
    want: usize,
) -> io::Result<Bytes> {
    loop {
        if tls.plain > 0 || tls.peer_closed {
            crate::io::room(scratch, want);
            let spare = scratch.spare_capacity_mut();
            let len = spare.len().min(want).min(tls.plain.max(16));
            // SAFETY: rustls writes into the buffer and reports how many bytes it wrote; the
            // bytes are zeroed first so no uninitialised memory is handed out.
            let buf = unsafe {
                std::ptr::write_bytes(spare.as_mut_ptr(), 0, len);
                std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<u8>(), len)
            };
            match tls.conn.reader().read(buf) {
                Ok(n) => {
                    tls.plain = tls.plain.saturating_sub(n);
                    if n > 0 || tls.peer_closed {
                        return crate::io::carve(scratch, n as isize);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => tls.plain = 0,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    // The peer closed TCP without close_notify: the end, as nginx takes it.
                    return Ok(Bytes::new());
                }
                Err(e) => return Err(e),
            }
        }
        if !*read_ready {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match tls.conn.read_tls(&mut &*stream) {
            Ok(0) => {
                *read_ready = false;
                tls.peer_closed = true;
            }
            Ok(_) => {
                if let Err(e) = tls.process() {
                    let _ = tls.conn.write_tls(&mut &*stream);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *read_ready = false;
                return Err(e);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Write the records rustls holds to the socket. `Ok(true)` when none is left, `Ok(false)`
/// when the socket would block first.
pub(crate) fn flush(tls: &mut Tls, stream: &TcpStream, write_ready: &mut bool) -> io::Result<bool> {
    while tls.conn.wants_write() {
        if !*write_ready {
            return Ok(false);
        }
        match tls.conn.write_tls(&mut &*stream) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => *write_ready = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Hand plaintext to rustls (as much as its buffer limit takes). Returns the bytes taken.
pub(crate) fn write_plain(tls: &mut Tls, iov: &[IoSlice<'_>]) -> io::Result<usize> {
    tls.conn.writer().write_vectored(iov)
}

/// Queue `close_notify`; the TCP FIN follows once every record is written.
pub(crate) fn close(tls: &mut Tls) {
    if !tls.fin_after_flush {
        tls.conn.send_close_notify();
        tls.fin_after_flush = true;
    }
}

/// Whether this kernel can take over the record layer (kTLS): a TCP socket accepts the
/// `tls` upper-layer protocol. Probed once per process.
pub fn ktls_supported() -> bool {
    static PROBE: OnceLock<bool> = OnceLock::new();
    *PROBE.get_or_init(|| {
        let probe = || -> io::Result<bool> {
            let l = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
            let c = std::net::TcpStream::connect(l.local_addr()?)?;
            use std::os::fd::AsRawFd;
            let ulp = b"tls\0";
            // SAFETY: a valid descriptor and a NUL-terminated option value of that length.
            let r = unsafe {
                libc::setsockopt(
                    c.as_raw_fd(),
                    libc::SOL_TCP,
                    libc::TCP_ULP,
                    ulp.as_ptr().cast(),
                    ulp.len() as libc::socklen_t,
                )
            };
            Ok(r == 0)
        };
        let ok = probe().unwrap_or(false);
        if ok {
            log::info!(
                "kTLS: this kernel offers it, but tether does not hand the record layer over \
                 yet; rustls does it"
            );
        } else {
            log::info!(
                "kTLS: this kernel has no TLS upper-layer protocol; rustls does the record layer"
            );
        }
        ok
    })
}
