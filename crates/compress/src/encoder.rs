//! The streaming encoder: one answer's body in, compressed bytes out, chunk by chunk. It
//! never holds the whole body; its state is the coding's window and tables (bounded by
//! [`BROTLI_LGWIN`] and [`ZSTD_WINDOW_LOG`]) plus a small output buffer.

use std::io::{self, Write};

use bytes::buf::Writer;
use bytes::{BufMut, BytesMut};

use crate::Coding;

/// Brotli's window: 2^19 = 512 KiB (nginx-brotli's default; the library's is 22, 4 MiB).
/// The brotli encoder buffers a metablock of twice the window, so its heap is about ten
/// times the window: 4.7-5.7 MiB per stream at 19, 8.4-10.3 MiB at 20 (README, "Memory").
pub const BROTLI_LGWIN: u32 = 19;

/// zstd's window: 2^20 = 1 MiB, set for levels whose default is larger (level 3's default
/// is 2 MiB; levels 1-2 keep their 512 KiB/1 MiB). RFC 8878 asks HTTP encoders for at most
/// 8 MiB.
pub const ZSTD_WINDOW_LOG: u32 = 20;

/// The brotli encoder's output buffer (bytes go from it to the sink at each write).
const BROTLI_BUFFER: usize = 16 << 10;

/// A streaming compressor for one answer body.
///
/// Call [`feed`](Encoder::feed) with each chunk of the body as it arrives, then
/// [`flush`](Encoder::flush) when the chunks read so far should reach the client now
/// (before waiting on the backend again), and [`finish`](Encoder::finish) once at the
/// end. Each call appends the compressed bytes it can give to `out` (zero-copy when `out`
/// is empty: it then takes over the encoder's buffer). `feed` alone may append nothing:
/// the coding holds input back to find matches.
pub struct Encoder {
    coding: Coding,
    inner: Inner,
    bytes_in: u64,
    bytes_out: u64,
}

enum Inner {
    Gzip(flate2::write::GzEncoder<Writer<BytesMut>>),
    Brotli(Box<brotli::CompressorWriter<Writer<BytesMut>>>),
    Zstd(zstd::stream::write::Encoder<'static, Writer<BytesMut>>),
}

impl Encoder {
    /// An encoder for `coding` at `level`, clamped into [`Coding::level_range`].
    /// Fails only if zstd cannot allocate or configure its context.
    pub fn new(coding: Coding, level: u32) -> io::Result<Encoder> {
        let range = coding.level_range();
        let level = level.clamp(*range.start(), *range.end());
        let sink = BytesMut::new().writer();
        let inner = match coding {
            Coding::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                sink,
                flate2::Compression::new(level),
            )),
            Coding::Brotli => Inner::Brotli(Box::new(brotli::CompressorWriter::new(
                sink,
                BROTLI_BUFFER,
                level,
                BROTLI_LGWIN,
            ))),
            Coding::Zstd => {
                // level is at most 22, so it fits an i32.
                let mut z = zstd::stream::write::Encoder::new(sink, level as i32)?;
                if level >= 3 {
                    z.window_log(ZSTD_WINDOW_LOG)?;
                }
                // `zstd -d` and browsers check it; it costs about 1% of the CPU.
                z.include_checksum(true)?;
                Inner::Zstd(z)
            }
        };
        Ok(Encoder {
            coding,
            inner,
            bytes_in: 0,
            bytes_out: 0,
        })
    }

    /// The coding this encoder produces (for `Content-Encoding`).
    pub fn coding(&self) -> Coding {
        self.coding
    }

    /// Body bytes fed so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Compressed bytes handed out so far.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }

    /// Compress `input` (the next chunk of the body), appending what is ready to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut BytesMut) -> io::Result<()> {
        match &mut self.inner {
            Inner::Gzip(e) => e.write_all(input)?,
            Inner::Brotli(e) => e.write_all(input)?,
            Inner::Zstd(e) => e.write_all(input)?,
        }
        self.bytes_in += input.len() as u64;
        self.drain(out);
        Ok(())
    }

    /// Sync flush: append to `out` everything needed to decode all input fed so far, so
    /// the client can use it before the body ends. Costs a few bytes (an empty deflate
    /// block, a brotli metablock end, a zstd block header) and some ratio; call it when
    /// the backend has nothing more to read for now, not after every chunk.
    pub fn flush(&mut self, out: &mut BytesMut) -> io::Result<()> {
        match &mut self.inner {
            Inner::Gzip(e) => e.flush()?,
            Inner::Brotli(e) => e.flush()?,
            Inner::Zstd(e) => e.flush()?,
        }
        self.drain(out);
        Ok(())
    }

    /// End the stream: append the rest of the compressed body and its trailer to `out`.
    pub fn finish(mut self, out: &mut BytesMut) -> io::Result<()> {
        let mut sink = match self.inner {
            Inner::Gzip(e) => e.finish()?,
            Inner::Brotli(e) => e.into_inner(),
            Inner::Zstd(e) => e.finish()?,
        }
        .into_inner();
        self.bytes_out += sink.len() as u64;
        out.unsplit(sink.split());
        Ok(())
    }

    /// Move what the coding wrote into its sink to `out`.
    fn drain(&mut self, out: &mut BytesMut) {
        let sink = match &mut self.inner {
            Inner::Gzip(e) => e.get_mut().get_mut(),
            Inner::Brotli(e) => e.get_mut().get_mut(),
            Inner::Zstd(e) => e.get_mut().get_mut(),
        };
        if sink.is_empty() {
            return;
        }
        self.bytes_out += sink.len() as u64;
        out.unsplit(sink.split());
    }
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("coding", &self.coding)
            .field("bytes_in", &self.bytes_in)
            .field("bytes_out", &self.bytes_out)
            .finish()
    }
}
