//! HPACK encoding with a dynamic table, for the client side: nghttp2's deflater (by
//! `libnghttp2-sys`, in the same confined-unsafe style as the inflater of `headers.rs`).
//! Names are lowercased and the connection-specific fields of HTTP/1.1 are dropped
//! (RFC 9113 §8.2.2); `te` is kept only as `te: trailers`. nghttp2 never indexes
//! `authorization` and short `cookie` values by itself (RFC 7541 §7.1.3).

use std::ptr::{self, NonNull};

use bytes::{Bytes, BytesMut};
use libnghttp2_sys as ng;

use crate::headers::CONNECTION_SPECIFIC;

/// The dynamic table the encoder may use at most (the peer may lower it with
/// SETTINGS_HEADER_TABLE_SIZE, never raise it past this).
pub const ENCODER_TABLE_MAX: usize = 4096;

/// HPACK failed (nghttp2 could not allocate, or the encoder's state is lost): the
/// connection cannot send header blocks any more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeError;

/// The owner of one `nghttp2_hd_deflater`: made by `nghttp2_hd_deflate_new`, freed on drop.
struct Deflater(NonNull<ng::nghttp2_hd_deflater>);

// SAFETY: a deflater is plain memory owned by this value alone (nghttp2 keeps no reference
// to it and has no thread-local state); moving it to another thread is sound.
unsafe impl Send for Deflater {}

impl Deflater {
    fn new() -> Option<Deflater> {
        let mut raw: *mut ng::nghttp2_hd_deflater = ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; on success nghttp2 stores a new deflater.
        let rv = unsafe { ng::nghttp2_hd_deflate_new(&mut raw, ENCODER_TABLE_MAX) };
        if rv != 0 {
            return None;
        }
        NonNull::new(raw).map(Deflater)
    }
}

impl Drop for Deflater {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `nghttp2_hd_deflate_new` and is freed once, here.
        unsafe { ng::nghttp2_hd_deflate_del(self.0.as_ptr()) }
    }
}

/// One connection's HPACK encoder.
pub struct HeaderEncoder {
    /// `None` if nghttp2 could not allocate one, or after a failure: every block fails.
    hpack: Option<Deflater>,
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        HeaderEncoder::new()
    }
}

impl HeaderEncoder {
    pub fn new() -> HeaderEncoder {
        HeaderEncoder {
            hpack: Deflater::new(),
        }
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE (capped at `ENCODER_TABLE_MAX`); the next
    /// block starts with the table size update the RFC requires.
    pub fn set_table_size(&mut self, size: u32) -> Result<(), EncodeError> {
        let d = self.hpack.as_ref().ok_or(EncodeError)?;
        let size = (size as usize).min(ENCODER_TABLE_MAX);
        // SAFETY: the deflater is live.
        let rv = unsafe { ng::nghttp2_hd_deflate_change_table_size(d.0.as_ptr(), size) };
        if rv != 0 {
            self.hpack = None;
            return Err(EncodeError);
        }
        Ok(())
    }

    /// Encode one header block: pseudo fields first as given, then the regular fields
    /// (lowercased, connection-specific ones dropped).
    pub fn encode(&mut self, fields: &[(&[u8], &[u8])]) -> Result<Bytes, EncodeError> {
        let d = self.hpack.as_ref().ok_or(EncodeError)?.0;
        // Owned, lowercased names where a name has an uppercase letter.
        let mut kept: Vec<(std::borrow::Cow<[u8]>, &[u8])> = Vec::with_capacity(fields.len());
        for &(name, value) in fields {
            let name: std::borrow::Cow<[u8]> = if name.iter().any(u8::is_ascii_uppercase) {
                name.to_ascii_lowercase().into()
            } else {
                name.into()
            };
            if CONNECTION_SPECIFIC.contains(&&name[..]) {
                continue;
            }
            if &name[..] == b"te" && !value.eq_ignore_ascii_case(b"trailers") {
                continue;
            }
            kept.push((name, value));
        }
        let nva: Vec<ng::nghttp2_nv> = kept
            .iter()
            .map(|(n, v)| ng::nghttp2_nv {
                // nghttp2 only reads them (the `*mut` is the C API's spelling).
                name: n.as_ptr() as *mut u8,
                value: v.as_ptr() as *mut u8,
                namelen: n.len(),
                valuelen: v.len(),
                flags: ng::NGHTTP2_NV_FLAG_NONE as u8,
            })
            .collect();
        // SAFETY: the deflater is live; `nva` points at `nva.len()` fields whose names and
        // values outlive the call.
        let bound = unsafe { ng::nghttp2_hd_deflate_bound(d.as_ptr(), nva.as_ptr(), nva.len()) };
        let mut buf = BytesMut::zeroed(bound);
        // SAFETY: as above; `buf` is `bound` writable bytes, which nghttp2 says is enough.
        let n = unsafe {
            ng::nghttp2_hd_deflate_hd2(
                d.as_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                nva.as_ptr(),
                nva.len(),
            )
        };
        let Ok(n) = usize::try_from(n) else {
            // nghttp2: once deflating fails, every later call fails too.
            self.hpack = None;
            return Err(EncodeError);
        };
        buf.truncate(n);
        Ok(buf.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::HeaderDecoder;

    #[test]
    fn blocks_round_trip_through_the_inflater_with_the_dynamic_table() {
        let mut enc = HeaderEncoder::new();
        let mut dec = HeaderDecoder::new(64 * 1024);
        let req: &[(&[u8], &[u8])] = &[
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":authority", b"example.org"),
            (b":path", b"/a"),
            (b"X-Custom", b"v"),
            (b"connection", b"keep-alive"),
            (b"te", b"gzip"),
            (b"te", b"trailers"),
        ];
        let first = enc.encode(req).expect("encode");
        let second = enc.encode(req).expect("encode");
        // The second block refers to the first's entries in the dynamic table.
        assert!(second.len() < first.len() / 2, "{second:?} vs {first:?}");
        for block in [first, second] {
            let got = dec.decode(&block).expect("decode");
            let got: Vec<(&[u8], &[u8])> = got.iter().map(|(n, v)| (&n[..], &v[..])).collect();
            assert_eq!(
                got,
                vec![
                    (&b":method"[..], &b"GET"[..]),
                    (b":scheme", b"http"),
                    (b":authority", b"example.org"),
                    (b":path", b"/a"),
                    (b"x-custom", b"v"),
                    (b"te", b"trailers"),
                ]
            );
        }
        enc.set_table_size(0).expect("size");
        let third = enc.encode(req).expect("encode");
        assert_eq!(dec.decode(&third).expect("decode").len(), 6);
    }
}
