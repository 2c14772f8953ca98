//! The smallest embedding of tether-core: an echo server.
//!
//! Each connection gets one pipe whose source and sink are the same connection. The core
//! moves the bytes; when the client closes, the pipe finishes, and the session is freed.
//!
//!     cargo run --example embed_echo -- 127.0.0.1:9000
//!     nc 127.0.0.1 9000

use tether_core::{ConnId, Core, Cx, Session, Sink, Source};

struct Echo;

impl Session for Echo {
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        cx.pipe(Source::Conn(client), Sink::Conn(client));
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let addr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut core = Core::new()?;
    let l = core.listen(addr, Box::new(|_| Box::new(Echo)))?;
    println!(
        "echo listening on {}",
        core.local_addr(l).expect("listener exists")
    );
    core.run()
}
