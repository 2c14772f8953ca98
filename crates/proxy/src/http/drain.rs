//! Draining an `http` connection (graceful shutdown, reload: `Session::on_drain`), as nginx
//! does: a connection idle between requests closes now; a request under way is answered
//! with `Connection: close` (or, if its head is already out, the connection closes after
//! it); a request still arriving is served, then the connection closes. Tunnels go on
//! until they end or the drain deadline cuts them.

use tether_core::Cx;

use super::{HttpSession, Phase};

pub(super) fn drain(s: &mut HttpSession, cx: &mut Cx<'_>) {
    s.draining = true;
    match s.phase {
        Phase::Head => {
            s.gather(cx);
            // A fresh connection has a request on its way: serve it. One that already
            // served a request and has nothing buffered is idle keep-alive: close it.
            if s.buf.is_empty() && s.served {
                cx.close();
            }
        }
        Phase::Busy => s.keep_alive = false,
        Phase::Tunnel | Phase::Closing => {}
    }
}
