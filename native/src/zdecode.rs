//! Decoding of the feed's compressed topics (`CarData.z`, `Position.z`).
//!
//! A payload is base64 (standard alphabet, canonical padding) of a raw deflate stream
//! (no zlib header) of UTF-8 JSON, possibly starting with a byte-order mark.
//!
//! The semantics follow `base64.b64decode(p, validate=True)`, `zlib.decompress(raw,
//! wbits=-15)` and `bytes.decode("utf-8-sig")` as of Python 3.13: non-zero trailing bits
//! in the last base64 symbol are accepted, excess `=` after a complete quantum is not
//! (Python 3.11/3.12 ignore it), and bytes after the end of the final deflate block are
//! ignored like `zlib.decompress` does.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use std::cell::RefCell;

use flate2::{Decompress, FlushDecompress, Status};

use crate::error::{Error, Result};

/// Default cap on the inflated size of one payload (real ones are a few KiB).
pub const MAX_DECODED_BYTES: usize = 64 * 1024 * 1024;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Largest base64-decoding buffer a decoder keeps between payloads.
const KEEP_BUFFER_BYTES: usize = 1 << 20;

/// Strict standard base64, like `base64.b64decode(..., validate=True)`.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// First guess of the inflated size; the feed's JSON deflates 4–8×.
fn initial_capacity(compressed_len: usize) -> usize {
    compressed_len.saturating_mul(8).max(4096)
}

/// A reusable decoder: keeps its inflate state and base64 buffer between payloads.
pub struct ZDecoder {
    inflater: Decompress,
    compressed: Vec<u8>,
    /// Inflated text of the last [`ZDecoder::decode_str`], reused so that a sequence of
    /// payloads costs no allocation (and no page faults) per payload.
    inflated: Vec<u8>,
    limit: usize,
}

impl Default for ZDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ZDecoder {
    /// A decoder with the default size cap [`MAX_DECODED_BYTES`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_limit(MAX_DECODED_BYTES)
    }

    /// A decoder that rejects payloads inflating to more than `limit` bytes.
    #[must_use]
    pub fn with_limit(limit: usize) -> Self {
        Self {
            inflater: Decompress::new(false),
            compressed: Vec::new(),
            inflated: Vec::new(),
            limit,
        }
    }

    /// Decodes one payload: base64 → raw inflate → strip BOM → UTF-8.
    ///
    /// # Errors
    ///
    /// [`Error::Base64`], [`Error::Deflate`], [`Error::TooLarge`] or [`Error::Utf8`].
    pub fn decode(&mut self, payload: &[u8]) -> Result<String> {
        self.unbase64(payload)?;
        let mut out = Vec::new();
        self.inflate(&mut out)?;
        if out.starts_with(UTF8_BOM) {
            out.drain(..UTF8_BOM.len());
        }
        Ok(String::from_utf8(out)?)
    }

    /// [`ZDecoder::decode`] into the decoder's own buffer: the text is borrowed until the
    /// next call. For callers that parse the text and drop it (the telemetry decoders).
    ///
    /// # Errors
    ///
    /// As [`ZDecoder::decode`].
    pub fn decode_str(&mut self, payload: &[u8]) -> Result<&str> {
        self.unbase64(payload)?;
        let mut out = std::mem::take(&mut self.inflated);
        if out.capacity() > KEEP_BUFFER_BYTES {
            out = Vec::new(); // as for `compressed`
        }
        let inflated = self.inflate(&mut out);
        self.inflated = out;
        inflated?;
        let text = self
            .inflated
            .strip_prefix(UTF8_BOM)
            .unwrap_or(&self.inflated);
        match std::str::from_utf8(text) {
            Ok(text) => Ok(text),
            // Rare: the owned copy only gives the error the type `decode` reports.
            Err(_) => Err(String::from_utf8(text.to_vec()).unwrap_err().into()),
        }
    }

    /// Base64-decodes `payload` into `self.compressed`.
    fn unbase64(&mut self, payload: &[u8]) -> Result<()> {
        if self.compressed.capacity() > KEEP_BUFFER_BYTES {
            self.compressed = Vec::new(); // don't hold on to one huge payload's buffer
        }
        self.compressed.clear();
        BASE64.decode_vec(payload, &mut self.compressed)?;
        Ok(())
    }

    /// Inflates `self.compressed` in one pass into `out` (cleared first), which must hold
    /// all of it.
    ///
    /// A fresh stream finished in one call is decoded straight into the output buffer
    /// (when the buffer turns out too small, it starts over with a bigger one). Besides
    /// being fast, this makes every flate2 backend reject back-references before the
    /// start of the data as zlib does (`miniz_oxide` would otherwise read them from an
    /// all-zero window); the crate uses the zlib-rs backend.
    fn inflate(&mut self, out: &mut Vec<u8>) -> Result<()> {
        // One byte more than the limit tells "exactly at the limit" from "beyond".
        let hard_cap = self.limit.saturating_add(1);
        let mut capacity = initial_capacity(self.compressed.len()).min(hard_cap);
        loop {
            out.clear();
            out.reserve(capacity);
            self.inflater.reset(false);
            let status = self
                .inflater
                .decompress_vec(&self.compressed, out, FlushDecompress::Finish)
                .map_err(|e| Error::Deflate(e.message().unwrap_or("corrupt data").to_owned()))?;
            match status {
                Status::StreamEnd if out.len() <= self.limit => return Ok(()),
                Status::StreamEnd => return Err(Error::TooLarge { limit: self.limit }),
                // Output stops short of a full buffer only when the input ran out.
                Status::Ok | Status::BufError if out.len() < out.capacity() => {
                    return Err(Error::Deflate("incomplete or truncated stream".to_owned()));
                }
                Status::Ok | Status::BufError => {
                    if out.capacity() >= hard_cap {
                        return Err(Error::TooLarge { limit: self.limit });
                    }
                    capacity = out.capacity().saturating_mul(2).min(hard_cap);
                }
            }
        }
    }
}

/// Decodes one payload with the default size cap.
///
/// # Errors
///
/// See [`ZDecoder::decode`].
pub fn decode_z(payload: &[u8]) -> Result<String> {
    with_decoder(|decoder| decoder.decode(payload))
}

/// Runs `f` with this thread's decoder: the inflate state (~40 KiB) is set up once per
/// thread instead of once per call.
pub(crate) fn with_decoder<T>(f: impl FnOnce(&mut ZDecoder) -> T) -> T {
    thread_local! {
        static DECODER: RefCell<ZDecoder> = RefCell::new(ZDecoder::new());
    }
    DECODER.with_borrow_mut(f)
}

/// Decodes a batch in order, stopping at the first bad item.
///
/// Items may arrive already failed (e.g. a non-ASCII `str`); either way the error is
/// reported as [`Error::Item`] with the item's index.
///
/// # Errors
///
/// The first item's error, wrapped in [`Error::Item`].
pub fn decode_z_many<'a, I>(payloads: I) -> Result<Vec<String>>
where
    I: IntoIterator<Item = Result<&'a [u8]>>,
{
    with_decoder(|decoder| {
        payloads
            .into_iter()
            .enumerate()
            .map(|(index, payload)| {
                payload
                    .and_then(|p| decoder.decode(p))
                    .map_err(|e| e.at(index))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use flate2::write::DeflateEncoder;
    use flate2::Compression;
    use std::io::Write as _;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut enc = DeflateEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn encode(data: &[u8]) -> String {
        STANDARD.encode(deflate(data))
    }

    #[test]
    fn round_trip() {
        let json = r#"{"Entries":[{"Utc":"2023-05-26T15:31:50.0Z","Cars":{"1":{"Channels":{"0":11000}}}}]}"#;
        assert_eq!(decode_z(encode(json.as_bytes()).as_bytes()).unwrap(), json);
        let text = "ünïcödé ✓ ".repeat(5000);
        assert_eq!(decode_z(encode(text.as_bytes()).as_bytes()).unwrap(), text);
    }

    #[test]
    fn round_trip_grows_past_first_guess() {
        // Compresses ~1000×, far beyond the initial capacity guess.
        let text = "0".repeat(3_000_000);
        assert_eq!(decode_z(encode(text.as_bytes()).as_bytes()).unwrap(), text);
    }

    #[test]
    fn strips_one_bom() {
        let with_bom = "\u{feff}{\"a\":1}";
        assert_eq!(
            decode_z(encode(with_bom.as_bytes()).as_bytes()).unwrap(),
            "{\"a\":1}"
        );
        let two = "\u{feff}\u{feff}x";
        assert_eq!(
            decode_z(encode(two.as_bytes()).as_bytes()).unwrap(),
            "\u{feff}x"
        );
    }

    #[test]
    fn empty_text() {
        assert_eq!(decode_z(encode(b"").as_bytes()).unwrap(), "");
    }

    #[test]
    fn base64_errors() {
        let good = encode(b"{}");
        for bad in [
            format!("{good}\n"),
            format!(" {good}"),
            good.trim_end_matches('=').to_owned(),
            format!("{good}="),
            format!("{good}A"),
            format!("={good}"),
            "A".to_owned(),
            "AA=A".to_owned(),
            "AAAA====".to_owned(),
            "-_-_".to_owned(), // URL-safe alphabet
        ] {
            let err = decode_z(bad.as_bytes()).unwrap_err();
            assert!(matches!(err, Error::Base64(_)), "{bad:?}: {err}");
            assert!(err.to_string().starts_with("invalid base64: "));
        }
    }

    #[test]
    fn accepts_non_zero_trailing_bits() {
        // Like Python: "AB==" decodes to b"\x00" although its last 4 bits are not zero.
        let mut decoder = ZDecoder::new();
        decoder.compressed.clear();
        BASE64.decode_vec("AB==", &mut decoder.compressed).unwrap();
        assert_eq!(decoder.compressed, [0]);
        // "AwA=" is a final empty stored-or-fixed block in 2 bytes: 0x03 0x00.
        assert_eq!(decode_z(b"AwA=").unwrap(), "");
        assert_eq!(decode_z(b"AwB=").unwrap(), "");
    }

    #[test]
    fn deflate_errors() {
        for bad in [
            &b""[..],                // no stream at all
            b"\x07",                 // reserved block type 3
            b"\x01\x05\x00\x00\x00", // stored block, LEN/NLEN mismatch
            b"\x00\x05\x00\xfa\xff", // stored block, not final, and truncated
        ] {
            let err = decode_z(STANDARD.encode(bad).as_bytes()).unwrap_err();
            assert!(matches!(err, Error::Deflate(_)), "{bad:?}: {err}");
            assert!(err.to_string().starts_with("invalid deflate stream: "));
        }
        // A zlib (not raw) stream is rejected: its header is not a valid block.
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
        zlib.write_all(b"{\"a\":[1,2,3]}").unwrap();
        let zlib = STANDARD.encode(zlib.finish().unwrap());
        assert!(decode_z(zlib.as_bytes()).is_err());
    }

    #[test]
    fn truncated_stream() {
        let full = deflate("abc".repeat(1000).as_bytes());
        for cut in [1, full.len() / 2, full.len() - 1] {
            let err = decode_z(STANDARD.encode(&full[..cut]).as_bytes()).unwrap_err();
            assert_eq!(
                err.to_string(),
                "invalid deflate stream: incomplete or truncated stream"
            );
        }
    }

    #[test]
    fn distance_before_start_is_rejected() {
        // Fixed-Huffman block: length 3 (code 257), distance 1 (code 0), end of block —
        // a back-reference with nothing before it. zlib: "invalid distance too far back".
        // Bits (LSB first): 1 (final), 10 (fixed), 0000001 (257), 00000 (dist 0), 0000000.
        let stream = [0x03, 0x02, 0x00, 0x00];
        let err = decode_z(STANDARD.encode(stream).as_bytes()).unwrap_err();
        assert!(matches!(err, Error::Deflate(_)), "{err}");
        assert!(!err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn trailing_bytes_after_final_block_are_ignored() {
        let mut stream = deflate(b"{}");
        stream.extend_from_slice(b"garbage");
        assert_eq!(decode_z(STANDARD.encode(stream).as_bytes()).unwrap(), "{}");
    }

    #[test]
    fn decode_str_is_decode_with_a_reused_buffer() {
        let mut decoder = ZDecoder::new();
        let long = "ä".repeat(100_000); // grows the buffer past the first guess
        for text in [&long, "\u{feff}{}", "", "\u{feff}\u{feff}x", "short"] {
            let payload = encode(text.as_bytes());
            let owned = decoder.decode(payload.as_bytes()).unwrap();
            assert_eq!(decoder.decode_str(payload.as_bytes()).unwrap(), owned);
        }
        for bad in [
            encode(b"\xff"),
            encode(b"\xef\xbb\xbf\xed\xa0\x80"),
            "!".to_owned(),
        ] {
            let owned = decoder.decode(bad.as_bytes()).unwrap_err().to_string();
            let borrowed = decoder.decode_str(bad.as_bytes()).unwrap_err().to_string();
            assert_eq!(borrowed, owned);
        }
        let mut small = ZDecoder::with_limit(9_999);
        let big = encode(&[b' '; 10_000]);
        assert!(matches!(
            small.decode_str(big.as_bytes()),
            Err(Error::TooLarge { .. })
        ));
        assert_eq!(small.decode_str(encode(b"ok").as_bytes()).unwrap(), "ok");
    }

    #[test]
    fn invalid_utf8() {
        let err = decode_z(encode(b"{\"a\":\"\xff\"}").as_bytes()).unwrap_err();
        assert!(matches!(err, Error::Utf8(_)), "{err}");
        assert!(err.to_string().starts_with("invalid UTF-8"));
        // Surrogates are not UTF-8 either.
        assert!(decode_z(encode(b"\xed\xa0\x80").as_bytes()).is_err());
    }

    #[test]
    fn size_cap() {
        let data = vec![b' '; 10_000];
        let payload = encode(&data);
        let mut exact = ZDecoder::with_limit(10_000);
        assert_eq!(exact.decode(payload.as_bytes()).unwrap().len(), 10_000);
        let mut small = ZDecoder::with_limit(9_999);
        let err = small.decode(payload.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "decoded payload exceeds 9999 bytes");
        // The decoder stays usable after an error.
        assert_eq!(small.decode(encode(b"ok").as_bytes()).unwrap(), "ok");
    }

    #[test]
    fn bomb_is_capped_by_default() {
        let payload = encode(&vec![0u8; MAX_DECODED_BYTES + 1]);
        let err = decode_z(payload.as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    limit: MAX_DECODED_BYTES
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn many_reports_first_bad_index() {
        let good = encode(b"[1]");
        let items: Vec<Result<&[u8]>> = vec![
            Ok(good.as_bytes()),
            Ok(good.as_bytes()),
            Ok(b"!!!!"),
            Err(Error::NonAscii),
        ];
        let err = decode_z_many(items).unwrap_err();
        assert!(matches!(err, Error::Item { index: 2, .. }), "{err}");
        assert!(err.to_string().starts_with("payload 2: invalid base64: "));

        let items: Vec<Result<&[u8]>> = vec![Ok(good.as_bytes()), Err(Error::NonAscii)];
        let err = decode_z_many(items).unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload 1: invalid base64: string payload contains non-ASCII characters"
        );
        assert!(!err.is_type_error());
        assert!(Error::WrongType("x".into()).at(0).is_type_error());

        let items = (0..3).map(|_| Ok(good.as_bytes()));
        assert_eq!(decode_z_many(items).unwrap(), vec!["[1]"; 3]);
        assert!(decode_z_many(Vec::<Result<&[u8]>>::new())
            .unwrap()
            .is_empty());
    }
}
