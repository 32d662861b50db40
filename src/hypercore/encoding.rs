//! Compact-encoding primitives, byte-compatible with npm `compact-encoding` 3.5.2 (the version
//! JS hypercore 11.37.1 installs; the wire format is unchanged since 2.x).
//!
//! Shapes on the wire:
//! - `uint`: varint. `n <= 0xfc` is one byte; otherwise a prefix byte `0xfd` + u16 LE,
//!   `0xfe` + u32 LE, or `0xff` + u64 LE.
//! - `uint8/16/24/32/64`: fixed-width little endian.
//! - `fixedN`: N raw bytes.
//! - `buffer` / `string`: `uint` byte length, then the bytes. In compact-encoding 3.x `buffer`
//!   decodes a zero length as an empty buffer; `optionalBuffer` decodes a zero length as `null`.
//!   Both encode "nothing" as the single byte `0x00`.
//! - `array(enc)`: `uint` element count, then the elements (JS refuses counts above 0x100000).
//! - `bool`: one byte, `1` is true.
//! - flags: a `uint` whose bits say which optional fields follow (see `messages`).
//!
//! [`Decoder`] never panics and never allocates more than the remaining input could fill, so a
//! hostile length prefix costs nothing. Trailing bytes after a message are left to the caller (JS
//! ignores them, which is how new optional fields stay backwards compatible).

/// Largest element count [`Decoder::array`] accepts, as JS `c.array` ("Array is too big").
pub const MAX_ARRAY_LEN: u64 = 0x10_0000;

/// Why decoding failed. Every variant means "this input is not a valid message"; none is a bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended early: `needed` bytes were wanted at offset `at`, only `remaining` were left.
    #[error("truncated input: needed {needed} bytes at offset {at}, {remaining} left")]
    OutOfBounds {
        /// Byte offset in the input where the read started.
        at: usize,
        /// How many bytes the read needed.
        needed: u64,
        /// How many bytes were left.
        remaining: usize,
    },
    /// An array length prefix above [`MAX_ARRAY_LEN`].
    #[error("array of {0} elements is too big (max {MAX_ARRAY_LEN})")]
    ArrayTooBig(u64),
    /// A `uint` does not fit the Rust type it is decoded into (e.g. a count larger than `usize`).
    #[error("integer {0} out of range for {1}")]
    IntOutOfRange(u64, &'static str),
    /// A `string` is not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A structurally valid value the schema does not allow (unknown enum id, wrong fixed length).
    #[error("invalid value: {0}")]
    Invalid(String),
}

/// Number of bytes [`Encoder::uint`] writes for `n` (JS `c.uint.preencode`).
pub fn uint_len(n: u64) -> usize {
    if n <= 0xfc {
        1
    } else if n <= 0xffff {
        3
    } else if n <= 0xffff_ffff {
        5
    } else {
        9
    }
}

/// Writes compact-encoding values into a growing `Vec<u8>`.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty encoder with room for `cap` bytes.
    pub fn with_capacity(cap: usize) -> Self {
        Self {
            buf: Vec::with_capacity(cap),
        }
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Number of bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Consumes the encoder, returning the bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// `c.uint`: varint with `0xfd`/`0xfe`/`0xff` prefixes for 16/32/64-bit LE values.
    pub fn uint(&mut self, n: u64) -> &mut Self {
        if n <= 0xfc {
            self.buf.push(n as u8);
        } else if n <= 0xffff {
            self.buf.push(0xfd);
            self.buf.extend_from_slice(&(n as u16).to_le_bytes());
        } else if n <= 0xffff_ffff {
            self.buf.push(0xfe);
            self.buf.extend_from_slice(&(n as u32).to_le_bytes());
        } else {
            self.buf.push(0xff);
            self.buf.extend_from_slice(&n.to_le_bytes());
        }
        self
    }

    /// `c.uint8`: one byte.
    pub fn uint8(&mut self, n: u8) -> &mut Self {
        self.buf.push(n);
        self
    }

    /// `c.uint16`: 2 bytes LE.
    pub fn uint16(&mut self, n: u16) -> &mut Self {
        self.buf.extend_from_slice(&n.to_le_bytes());
        self
    }

    /// `c.uint24`: the low 3 bytes of `n`, LE (higher bits are dropped).
    pub fn uint24(&mut self, n: u32) -> &mut Self {
        self.buf.extend_from_slice(&n.to_le_bytes()[..3]);
        self
    }

    /// `c.uint32`: 4 bytes LE.
    pub fn uint32(&mut self, n: u32) -> &mut Self {
        self.buf.extend_from_slice(&n.to_le_bytes());
        self
    }

    /// `c.uint64`: 8 bytes LE.
    pub fn uint64(&mut self, n: u64) -> &mut Self {
        self.buf.extend_from_slice(&n.to_le_bytes());
        self
    }

    /// `c.fixed(n)` / `c.raw`: the bytes as they are, no length prefix.
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// `c.fixed32`: 32 raw bytes.
    pub fn fixed32(&mut self, b: &[u8; 32]) -> &mut Self {
        self.raw(b)
    }

    /// `c.fixed64`: 64 raw bytes.
    pub fn fixed64(&mut self, b: &[u8; 64]) -> &mut Self {
        self.raw(b)
    }

    /// `c.buffer`: `uint` length then the bytes.
    pub fn buffer(&mut self, b: &[u8]) -> &mut Self {
        self.uint(b.len() as u64);
        self.raw(b)
    }

    /// `c.optionalBuffer`: `None` (and, as in JS, an empty buffer) is the single byte `0`.
    pub fn optional_buffer(&mut self, b: Option<&[u8]>) -> &mut Self {
        match b {
            Some(b) => self.buffer(b),
            None => self.uint8(0),
        }
    }

    /// `c.string` (utf8): `uint` byte length then the UTF-8 bytes.
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.buffer(s.as_bytes())
    }

    /// `c.bool`: `1` or `0`.
    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.uint8(b as u8)
    }

    /// `c.array(enc)`: `uint` count, then each element written by `f`.
    pub fn array<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.uint(items.len() as u64);
        for item in items {
            f(self, item);
        }
        self
    }

    /// `c.uint32array`: `uint` element count, then each element as u32 LE.
    pub fn uint32_array(&mut self, items: &[u32]) -> &mut Self {
        self.uint(items.len() as u64);
        for n in items {
            self.uint32(*n);
        }
        self
    }
}

/// Reads compact-encoding values from a byte slice, front to back.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder positioned at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Byte offset of the next read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when every byte was read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Takes the next `n` bytes, or [`DecodeError::OutOfBounds`].
    pub fn take(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let remaining = self.remaining();
        if n > remaining as u64 {
            return Err(DecodeError::OutOfBounds {
                at: self.pos,
                needed: n,
                remaining,
            });
        }
        let n = n as usize;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array_n<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    /// `c.uint` (see [`Encoder::uint`]). Non-minimal encodings are accepted, as in JS.
    pub fn uint(&mut self) -> Result<u64, DecodeError> {
        match self.uint8()? {
            a @ 0..=0xfc => Ok(a as u64),
            0xfd => Ok(self.uint16()? as u64),
            0xfe => Ok(self.uint32()? as u64),
            _ => self.uint64(),
        }
    }

    /// `c.uint` read as a `usize` (a length or count); errors if it does not fit.
    pub fn uint_usize(&mut self) -> Result<usize, DecodeError> {
        let n = self.uint()?;
        usize::try_from(n).map_err(|_| DecodeError::IntOutOfRange(n, "usize"))
    }

    /// `c.uint8`.
    pub fn uint8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array_n::<1>()?[0])
    }

    /// `c.uint16` (LE).
    pub fn uint16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array_n()?))
    }

    /// `c.uint24` (LE, 3 bytes).
    pub fn uint24(&mut self) -> Result<u32, DecodeError> {
        let b: [u8; 3] = self.array_n()?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }

    /// `c.uint32` (LE).
    pub fn uint32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array_n()?))
    }

    /// `c.uint64` (LE). JS rejects values above 2^53-1; we accept the full u64 range.
    pub fn uint64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array_n()?))
    }

    /// `c.fixed32`.
    pub fn fixed32(&mut self) -> Result<[u8; 32], DecodeError> {
        self.array_n()
    }

    /// `c.fixed64`.
    pub fn fixed64(&mut self) -> Result<[u8; 64], DecodeError> {
        self.array_n()
    }

    /// `c.buffer`: length-prefixed bytes (zero length gives an empty slice).
    pub fn buffer(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.uint()?;
        self.take(len)
    }

    /// `c.optionalBuffer`: zero length decodes as `None`.
    pub fn optional_buffer(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        let b = self.buffer()?;
        Ok(if b.is_empty() { None } else { Some(b) })
    }

    /// `c.string` (utf8).
    pub fn string(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.buffer()?).map_err(|_| DecodeError::InvalidUtf8)
    }

    /// `c.bool`: true only for the byte `1`, as JS.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.uint8()? == 1)
    }

    /// `c.raw`: all the remaining bytes.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// `c.array(enc)`: a count then that many elements, each read by `f`. Refuses counts above
    /// [`MAX_ARRAY_LEN`]; preallocates at most one slot per remaining input byte.
    pub fn array<T>(
        &mut self,
        mut f: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let len = self.uint()?;
        if len > MAX_ARRAY_LEN {
            return Err(DecodeError::ArrayTooBig(len));
        }
        let mut out = Vec::with_capacity((len as usize).min(self.remaining()));
        for _ in 0..len {
            out.push(f(self)?);
        }
        Ok(out)
    }

    /// `c.uint32array`: a count then that many u32 LE.
    pub fn uint32_array(&mut self) -> Result<Vec<u32>, DecodeError> {
        let len = self.uint()?;
        let bytes = self.take(len.saturating_mul(4))?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// A value with a compact encoding (a JS `{ preencode, encode, decode }` triple).
pub trait CompactEncoding: Sized {
    /// Appends the encoding of `self`.
    fn encode(&self, enc: &mut Encoder);

    /// Reads one value; errors on truncated or invalid input.
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError>;

    /// `c.encode(enc, value)`: the encoding as a fresh `Vec<u8>`.
    fn to_bytes(&self) -> Vec<u8> {
        let mut enc = Encoder::new();
        self.encode(&mut enc);
        enc.into_vec()
    }

    /// `c.decode(enc, bytes)`: decodes one value from the front of `bytes`; trailing bytes are
    /// ignored, as JS does.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode(&mut Decoder::new(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_boundaries() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0]),
            (0xfc, &[0xfc]),
            (0xfd, &[0xfd, 0xfd, 0x00]),
            (0xffff, &[0xfd, 0xff, 0xff]),
            (0x1_0000, &[0xfe, 0, 0, 1, 0]),
            (0xffff_ffff, &[0xfe, 0xff, 0xff, 0xff, 0xff]),
            (0x1_0000_0000, &[0xff, 0, 0, 0, 0, 1, 0, 0, 0]),
        ];
        for (n, bytes) in cases {
            let mut e = Encoder::new();
            e.uint(*n);
            assert_eq!(e.as_slice(), *bytes, "encode {n}");
            assert_eq!(uint_len(*n), bytes.len());
            assert_eq!(Decoder::new(bytes).uint().unwrap(), *n, "decode {n}");
        }
    }

    #[test]
    fn truncation_is_an_error() {
        for bytes in [
            &[][..],
            &[0xfd, 1],
            &[0xfe, 1, 2, 3],
            &[0xff, 1, 2, 3, 4, 5, 6, 7],
        ] {
            assert!(matches!(
                Decoder::new(bytes).uint(),
                Err(DecodeError::OutOfBounds { .. })
            ));
        }
        assert!(Decoder::new(&[5, 1, 2]).buffer().is_err());
        assert!(Decoder::new(&[0; 31]).fixed32().is_err());
    }

    #[test]
    fn hostile_lengths_do_not_allocate() {
        // A buffer claiming u64::MAX bytes.
        let mut e = Encoder::new();
        e.uint(u64::MAX);
        assert!(Decoder::new(e.as_slice()).buffer().is_err());
        assert!(Decoder::new(e.as_slice()).uint32_array().is_err());
        // An array claiming the max count with no content: fails without a huge allocation.
        let mut e = Encoder::new();
        e.uint(MAX_ARRAY_LEN);
        assert!(Decoder::new(e.as_slice()).array(|d| d.uint()).is_err());
        let mut e = Encoder::new();
        e.uint(MAX_ARRAY_LEN + 1);
        assert_eq!(
            Decoder::new(e.as_slice()).array(|d| d.uint()),
            Err(DecodeError::ArrayTooBig(MAX_ARRAY_LEN + 1))
        );
    }

    #[test]
    fn buffers_strings_and_optionals() {
        let mut e = Encoder::new();
        e.buffer(b"abc")
            .string("hé")
            .optional_buffer(None)
            .optional_buffer(Some(b"x"))
            .bool(true)
            .uint32_array(&[1, 0x01020304]);
        let bytes = e.into_vec();
        assert_eq!(
            bytes,
            [3, b'a', b'b', b'c', 3, b'h', 0xc3, 0xa9, 0, 1, b'x', 1, 2, 1, 0, 0, 0, 4, 3, 2, 1]
        );
        let mut d = Decoder::new(&bytes);
        assert_eq!(d.buffer().unwrap(), b"abc");
        assert_eq!(d.string().unwrap(), "hé");
        assert_eq!(d.optional_buffer().unwrap(), None);
        assert_eq!(d.optional_buffer().unwrap(), Some(&b"x"[..]));
        assert!(d.bool().unwrap());
        assert_eq!(d.uint32_array().unwrap(), vec![1, 0x01020304]);
        assert!(d.is_empty());
        assert_eq!(
            Decoder::new(&[2, 0xff, 0xfe]).string(),
            Err(DecodeError::InvalidUtf8)
        );
    }

    #[test]
    fn fixed_width_ints_are_little_endian() {
        let mut e = Encoder::new();
        e.uint16(0x0102)
            .uint24(0x030405)
            .uint32(0x06070809)
            .uint64(0x0a0b0c0d0e0f1011);
        let b = e.into_vec();
        assert_eq!(
            b,
            [2, 1, 5, 4, 3, 9, 8, 7, 6, 0x11, 0x10, 0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a]
        );
        let mut d = Decoder::new(&b);
        assert_eq!(d.uint16().unwrap(), 0x0102);
        assert_eq!(d.uint24().unwrap(), 0x030405);
        assert_eq!(d.uint32().unwrap(), 0x06070809);
        assert_eq!(d.uint64().unwrap(), 0x0a0b0c0d0e0f1011);
    }
}
