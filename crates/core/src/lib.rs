//! tether-core: the event loop that owns listeners, connections, pipes and sessions.
//!
//! The vocabulary is eXpServer's:
//!
//! - a [`Core`] owns one `mio::Poll` and slabs of listeners, connections, pipes and sessions;
//!   a `mio::Token` names a slab slot, so nothing is found by scanning;
//! - a **pipe** moves bytes from a **source** (a connection, a file, or the session itself) to
//!   a **sink** (a connection, the session, or nowhere) and holds at most `threshold` bytes; a
//!   full pipe stops reading its source, which is the backpressure;
//! - a **session** ([`Session`]) is created for every accepted connection and wires it to
//!   whatever it serves (an upstream, a file, a response it writes itself). The core tears it
//!   down when no flow can continue, closing every connection it owned.
//!
//! The core knows nothing of HTTP. See `examples/embed_echo.rs` for the smallest embedding.

mod connection;
mod core;
mod direct;
mod ids;
mod io;
mod pipe;
mod pool;
pub mod proxy_protocol;
mod remote;
mod session;
mod stats;
mod timer;
pub mod tls;

pub use crate::core::{Accepted, Core, Handle, ListenerOpts, SessionFactory};
pub use crate::direct::ReadNow;
pub use crate::ids::{ConnId, ListenerId, PipeId, SessionId, TimerId};
pub use crate::pipe::{PipeBuffer, PipeEnd, PipeOpts, Sink, Source, DEFAULT_THRESHOLD};
pub use crate::remote::Remote;
pub use crate::session::{ConnectOpts, Cx, Session, Waiting};
pub use crate::stats::LoopStats;
