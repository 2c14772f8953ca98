//! eXpServer's string-reversal server, embedded in tether-core.
//!
//! The client's bytes flow into the session (`Sink::Session`); the session reverses each
//! line and pushes it into a second pipe that flows back to the client. When the client
//! closes, what is left of a partial line is reversed too, then the reply pipe ends (FIN).
//!
//!     cargo run --example embed_reverse -- 127.0.0.1:9001
//!     nc 127.0.0.1 9001      (type "hello", read "olleh")

use bytes::{Bytes, BytesMut};
use tether_core::{ConnId, Core, Cx, PipeEnd, PipeId, Session, Sink, Source};

#[derive(Default)]
struct Reverse {
    reply: Option<PipeId>,
    line: BytesMut,
}

impl Reverse {
    fn send_reversed(&mut self, cx: &mut Cx<'_>, mut line: Vec<u8>) {
        let newline = line.last() == Some(&b'\n');
        if newline {
            line.pop();
        }
        line.reverse();
        if newline {
            line.push(b'\n');
        }
        if let Some(reply) = self.reply {
            cx.push(reply, Bytes::from(line));
        }
    }
}

impl Session for Reverse {
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        cx.pipe(Source::Conn(client), Sink::Session);
        self.reply = Some(cx.pipe(Source::Session, Sink::Conn(client)));
    }

    fn on_readable(&mut self, cx: &mut Cx<'_>, pipe: PipeId) {
        while let Some(chunk) = cx.take(pipe) {
            self.line.extend_from_slice(&chunk);
            while let Some(pos) = self.line.iter().position(|&b| b == b'\n') {
                let line = self.line.split_to(pos + 1).to_vec();
                self.send_reversed(cx, line);
            }
        }
    }

    fn on_pipe_end(&mut self, cx: &mut Cx<'_>, pipe: PipeId, end: PipeEnd) {
        if Some(pipe) == self.reply {
            self.reply = None;
        } else if end == PipeEnd::Finished {
            // The client is done sending: flush the partial line and finish the reply.
            let rest = self.line.split().to_vec();
            if !rest.is_empty() {
                self.send_reversed(cx, rest);
            }
            if let Some(reply) = self.reply {
                cx.end(reply);
            }
        } else {
            cx.close();
        }
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let addr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut core = Core::new()?;
    let l = core.listen(addr, Box::new(|_| Box::<Reverse>::default()))?;
    println!(
        "reverse listening on {}",
        core.local_addr(l).expect("listener exists")
    );
    core.run()
}
