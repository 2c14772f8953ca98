//! HTTP/2's side of phase 6½ (`http/form_body.rs`): a stream whose urlencoded body the
//! `session_id` affinity must read waits in `Work::ReadingForm`, its DATA kept in `Early`
//! (not acknowledged, as in the gate: `session_form_max_bytes` is at most the stream's
//! 256 KiB window), until the `Content-Length` bytes came or the stream ended.

use tether_core::Cx;

use super::stream::Work;
use super::upstream::Early;
use super::H2Session;
use crate::http::form_body;
use crate::http::phases::Proxied;

/// A stream reading its form body.
pub(super) struct FormWait {
    pub req: Proxied,
    pub early: Early,
}

impl H2Session {
    /// Read the form first when the affinity needs it, then pick.
    pub(super) fn read_form(&mut self, cx: &mut Cx<'_>, id: u32, mut req: Proxied, early: Early) {
        let need = form_body::wanted(&req);
        if need == 0 {
            return self.pick(cx, id, req, None, early);
        }
        if early.len() >= need {
            req.form = Some(early.first(need));
            return self.pick(cx, id, req, None, early);
        }
        if early.ended() {
            // Shorter than it said: balanced without an id (tether-h2 refuses such a
            // stream anyway).
            return self.pick(cx, id, req, None, early);
        }
        if let Some(s) = self.streams.get_mut(&id) {
            s.work = Work::ReadingForm(Box::new(FormWait { req, early }));
        }
    }

    /// DATA came for a stream in `Work::ReadingForm`.
    pub(super) fn form_data(&mut self, cx: &mut Cx<'_>, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if !matches!(s.work, Work::ReadingForm(_)) {
            return;
        }
        let Work::ReadingForm(f) = std::mem::replace(&mut s.work, Work::Gone) else {
            return;
        };
        let FormWait { req, early } = *f;
        self.read_form(cx, id, req, early);
    }
}
