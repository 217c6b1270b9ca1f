//! Pages gzipped by one compressor per thread, reset between pages instead of made anew: a gzip
//! stream's state (some 300 KB for zlib at its default window) was allocated and cleared for every
//! page the compression layer gzipped, 9% of the CPU of a page rendered from Redis (profiled), and
//! 64 of them at once when 64 readers missed together. Pages are gzipped here, by their handler and
//! by the page tier alike, so both send the same bytes under one tag; the compression layer leaves
//! an answer with a `Content-Encoding` alone, and still gzips every other answer.

use std::cell::RefCell;

use axum::body::Bytes;
use flate2::{Compress, Compression, FlushCompress, Status};

/// The gzip level of every page (see `GZIP_LEVEL`'s reason in `web`).
use super::GZIP_LEVEL;

thread_local! {
    static COMPRESSOR: RefCell<Option<Compress>> = const { RefCell::new(None) };
}

/// `body` gzipped (level `GZIP_LEVEL`, a 32 KB window), in a block of its size.
pub fn gzip(body: &[u8]) -> Bytes {
    COMPRESSOR.with_borrow_mut(|kept| {
        let compressor = kept.get_or_insert_with(|| Compress::new_gzip(Compression::new(GZIP_LEVEL), 15));
        compressor.reset();
        let mut out = Vec::with_capacity(body.len() / 4 + 64);
        loop {
            let read = usize::try_from(compressor.total_in()).unwrap_or(usize::MAX).min(body.len());
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            match compressor.compress_vec(&body[read..], &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {}
                // compressing to memory fails only on a bug of the library: a fresh compressor next
                // time, and this page by one of its own
                Err(_) => {
                    *kept = None;
                    return anew(body);
                }
            }
        }
        // the spare capacity would be kept, and not counted, for as long as a kept page
        out.shrink_to_fit();
        Bytes::from(out)
    })
}

/// `body` gzipped by a compressor of its own.
fn anew(body: &[u8]) -> Bytes {
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::new(GZIP_LEVEL));
    // writing to memory cannot fail
    let _ = std::io::Write::write_all(&mut gz, body);
    Bytes::from(gz.finish().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).unwrap();
        out
    }

    #[test]
    fn every_page_gzipped_is_the_page_whatever_came_before_it() {
        let pages: Vec<Vec<u8>> = vec![
            b"<p>one</p>".repeat(3000),
            Vec::new(),
            (0..200_000u32).map(|n| (n.wrapping_mul(2_654_435_761) >> 24) as u8).collect(),
            b"<p>two</p>".repeat(10),
        ];
        for page in pages.iter().chain(pages.iter()) {
            let gzipped = gzip(page);
            assert_eq!(&gunzip(&gzipped), page);
            assert_eq!(gzipped, gzip(page), "the same page, the same bytes");
        }
    }
}
