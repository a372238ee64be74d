//! A-XDR `Data` (IEC 62056-6-2): the typed values a COSEM data-notification carries.
//!
//! A value is parsed into one flat list in pre-order: an array or structure is a node
//! holding its element count, followed by its elements (see [`end`] to step over one).
//! That costs one allocation per message instead of one per structure. Every length
//! and count read from the wire is checked against the bytes actually present, and
//! nesting is capped, so hostile input costs memory proportional to its own size.

use alloc::vec::Vec;

use super::DlmsError;

/// The deepest nesting of arrays and structures accepted.
pub const MAX_DEPTH: usize = 16;

/// One node of a flattened A-XDR value.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Data<'a> {
    /// `null-data` (tag 0).
    Null,
    /// `array` (tag 1): this many elements (of one type) follow.
    Array(u32),
    /// `structure` (tag 2): this many elements (of any type) follow.
    Structure(u32),
    /// `boolean` (tag 3).
    Bool(bool),
    /// `bit-string` (tag 4): the number of bits and the bytes holding them.
    BitString(u32, &'a [u8]),
    /// A signed integer: `integer`, `long`, `double-long`, `long64` (tags 15, 16, 5, 20).
    Int(i64),
    /// An unsigned integer: `unsigned`, `long-unsigned`, `double-long-unsigned`,
    /// `long64-unsigned` (tags 17, 18, 6, 21).
    UInt(u64),
    /// `enum` (tag 22).
    Enum(u8),
    /// `float32` (tag 23).
    Float32(f32),
    /// `float64` (tag 24).
    Float64(f64),
    /// `octet-string` (tag 9).
    OctetString(&'a [u8]),
    /// `visible-string` (tag 10).
    VisibleString(&'a [u8]),
    /// `utf8-string` (tag 12).
    Utf8String(&'a [u8]),
    /// `bcd` (tag 13).
    Bcd(u8),
    /// `date-time` (tag 25): the 12 bytes of a COSEM date-time.
    DateTime(&'a [u8]),
    /// `date` (tag 26): 5 bytes.
    Date(&'a [u8]),
    /// `time` (tag 27): 4 bytes.
    Time(&'a [u8]),
}

/// A-XDR tags of [`Data`].
pub mod tag {
    /// `null-data`.
    pub const NULL: u8 = 0;
    /// `array`.
    pub const ARRAY: u8 = 1;
    /// `structure`.
    pub const STRUCTURE: u8 = 2;
    /// `boolean`.
    pub const BOOLEAN: u8 = 3;
    /// `bit-string`.
    pub const BIT_STRING: u8 = 4;
    /// `double-long` (i32).
    pub const DOUBLE_LONG: u8 = 5;
    /// `double-long-unsigned` (u32).
    pub const DOUBLE_LONG_UNSIGNED: u8 = 6;
    /// `octet-string`.
    pub const OCTET_STRING: u8 = 9;
    /// `visible-string`.
    pub const VISIBLE_STRING: u8 = 10;
    /// `utf8-string`.
    pub const UTF8_STRING: u8 = 12;
    /// `bcd`.
    pub const BCD: u8 = 13;
    /// `integer` (i8).
    pub const INTEGER: u8 = 15;
    /// `long` (i16).
    pub const LONG: u8 = 16;
    /// `unsigned` (u8).
    pub const UNSIGNED: u8 = 17;
    /// `long-unsigned` (u16).
    pub const LONG_UNSIGNED: u8 = 18;
    /// `long64` (i64).
    pub const LONG64: u8 = 20;
    /// `long64-unsigned` (u64).
    pub const LONG64_UNSIGNED: u8 = 21;
    /// `enum`.
    pub const ENUM: u8 = 22;
    /// `float32`.
    pub const FLOAT32: u8 = 23;
    /// `float64`.
    pub const FLOAT64: u8 = 24;
    /// `date-time`.
    pub const DATE_TIME: u8 = 25;
    /// `date`.
    pub const DATE: u8 = 26;
    /// `time`.
    pub const TIME: u8 = 27;
}

/// A cursor over A-XDR bytes.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not yet read.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// The next byte without consuming it.
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Takes `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DlmsError> {
        let end = self.pos.checked_add(n).ok_or(DlmsError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DlmsError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    /// Takes one byte.
    pub fn u8(&mut self) -> Result<u8, DlmsError> {
        Ok(self.take(1)?[0])
    }

    /// Takes `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DlmsError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// Takes an A-XDR / BER length: one byte below 0x80, else 0x8N and N big-endian bytes
    /// (N ≤ 4). The length is not trusted: callers check it against the bytes left.
    pub fn length(&mut self) -> Result<usize, DlmsError> {
        let first = self.u8()?;
        if first < 0x80 {
            return Ok(usize::from(first));
        }
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return Err(DlmsError::Syntax("length field of more than four bytes"));
        }
        let mut len: u64 = 0;
        for &b in self.take(n)? {
            len = len << 8 | u64::from(b);
        }
        usize::try_from(len).map_err(|_| DlmsError::TooLong)
    }

    /// Takes a length-prefixed run of bytes whose length must fit in what is left.
    pub fn sized(&mut self) -> Result<&'a [u8], DlmsError> {
        let n = self.length()?;
        self.take(n)
    }
}

/// Parses one `Data` value at the start of `buf` into its flat node list; returns the
/// nodes and the bytes used.
pub fn parse(buf: &[u8]) -> Result<(Vec<Data<'_>>, usize), DlmsError> {
    let mut r = Reader::new(buf);
    let mut nodes = Vec::new();
    read(&mut r, &mut nodes)?;
    Ok((nodes, r.position()))
}

/// Reads one `Data` value from a reader, appending its nodes to `out`.
pub fn read<'a>(r: &mut Reader<'a>, out: &mut Vec<Data<'a>>) -> Result<(), DlmsError> {
    // Elements still to read at each open nesting level.
    let mut open = [0u32; MAX_DEPTH + 1];
    let mut depth = 0usize;
    open[0] = 1;
    loop {
        while depth > 0 && open[depth] == 0 {
            depth -= 1;
        }
        if open[depth] == 0 {
            return Ok(());
        }
        open[depth] -= 1;
        let node = node(r)?;
        out.push(node);
        if let Data::Array(n) | Data::Structure(n) = node {
            if n > 0 {
                if depth == MAX_DEPTH {
                    return Err(DlmsError::Cosem("data nested too deeply"));
                }
                depth += 1;
                open[depth] = n;
            }
        }
    }
}

/// Reads one node (a container's header, or a whole scalar value).
fn node<'a>(r: &mut Reader<'a>) -> Result<Data<'a>, DlmsError> {
    let t = r.u8()?;
    Ok(match t {
        tag::NULL => Data::Null,
        tag::ARRAY | tag::STRUCTURE => {
            let n = r.length()?;
            // Every element takes at least one byte: a count beyond the bytes left is a lie.
            if n > r.rest().len() {
                return Err(DlmsError::Truncated);
            }
            if t == tag::ARRAY {
                Data::Array(n as u32)
            } else {
                Data::Structure(n as u32)
            }
        }
        tag::BOOLEAN => Data::Bool(r.u8()? != 0),
        tag::BIT_STRING => {
            let bits = r.length()?;
            let bytes = r.take(bits.div_ceil(8))?;
            Data::BitString(bits as u32, bytes)
        }
        tag::DOUBLE_LONG => Data::Int(i64::from(i32::from_be_bytes(r.array()?))),
        tag::DOUBLE_LONG_UNSIGNED => Data::UInt(u64::from(u32::from_be_bytes(r.array()?))),
        tag::OCTET_STRING => Data::OctetString(r.sized()?),
        tag::VISIBLE_STRING => Data::VisibleString(r.sized()?),
        tag::UTF8_STRING => Data::Utf8String(r.sized()?),
        tag::BCD => Data::Bcd(r.u8()?),
        tag::INTEGER => Data::Int(i64::from(r.u8()? as i8)),
        tag::LONG => Data::Int(i64::from(i16::from_be_bytes(r.array()?))),
        tag::UNSIGNED => Data::UInt(u64::from(r.u8()?)),
        tag::LONG_UNSIGNED => Data::UInt(u64::from(u16::from_be_bytes(r.array()?))),
        tag::LONG64 => Data::Int(i64::from_be_bytes(r.array()?)),
        tag::LONG64_UNSIGNED => Data::UInt(u64::from_be_bytes(r.array()?)),
        tag::ENUM => Data::Enum(r.u8()?),
        tag::FLOAT32 => Data::Float32(f32::from_be_bytes(r.array()?)),
        tag::FLOAT64 => Data::Float64(f64::from_be_bytes(r.array()?)),
        tag::DATE_TIME => Data::DateTime(r.take(12)?),
        tag::DATE => Data::Date(r.take(5)?),
        tag::TIME => Data::Time(r.take(4)?),
        _ => return Err(DlmsError::Cosem("unknown A-XDR data type")),
    })
}

/// The index just after the value that starts at node `i` (its whole subtree).
pub fn end(nodes: &[Data<'_>], i: usize) -> usize {
    let mut j = i + 1;
    if let Some(Data::Array(n) | Data::Structure(n)) = nodes.get(i) {
        for _ in 0..*n {
            j = end(nodes, j);
        }
    }
    j
}

/// Appends an A-XDR length.
pub fn write_length(out: &mut Vec<u8>, n: usize) {
    if n < 0x80 {
        out.push(n as u8);
    } else if n <= 0xFF {
        out.extend_from_slice(&[0x81, n as u8]);
    } else if n <= 0xFFFF {
        out.push(0x82);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x84);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Appends flattened values in A-XDR (the inverse of [`parse`]; integers use the
/// narrowest type of their signedness that holds them).
pub fn write(out: &mut Vec<u8>, nodes: &[Data<'_>]) {
    for d in nodes {
        write_node(out, d);
    }
}

fn write_node(out: &mut Vec<u8>, d: &Data<'_>) {
    match d {
        Data::Null => out.push(tag::NULL),
        Data::Array(n) | Data::Structure(n) => {
            out.push(if matches!(d, Data::Array(_)) {
                tag::ARRAY
            } else {
                tag::STRUCTURE
            });
            write_length(out, *n as usize);
        }
        Data::Bool(b) => out.extend_from_slice(&[tag::BOOLEAN, u8::from(*b)]),
        Data::BitString(bits, bytes) => {
            out.push(tag::BIT_STRING);
            write_length(out, *bits as usize);
            out.extend_from_slice(bytes);
        }
        Data::Int(i) => {
            if let Ok(v) = i8::try_from(*i) {
                out.extend_from_slice(&[tag::INTEGER, v as u8]);
            } else if let Ok(v) = i16::try_from(*i) {
                out.push(tag::LONG);
                out.extend_from_slice(&v.to_be_bytes());
            } else if let Ok(v) = i32::try_from(*i) {
                out.push(tag::DOUBLE_LONG);
                out.extend_from_slice(&v.to_be_bytes());
            } else {
                out.push(tag::LONG64);
                out.extend_from_slice(&i.to_be_bytes());
            }
        }
        Data::UInt(u) => {
            if let Ok(v) = u8::try_from(*u) {
                out.extend_from_slice(&[tag::UNSIGNED, v]);
            } else if let Ok(v) = u16::try_from(*u) {
                out.push(tag::LONG_UNSIGNED);
                out.extend_from_slice(&v.to_be_bytes());
            } else if let Ok(v) = u32::try_from(*u) {
                out.push(tag::DOUBLE_LONG_UNSIGNED);
                out.extend_from_slice(&v.to_be_bytes());
            } else {
                out.push(tag::LONG64_UNSIGNED);
                out.extend_from_slice(&u.to_be_bytes());
            }
        }
        Data::Enum(e) => out.extend_from_slice(&[tag::ENUM, *e]),
        Data::Float32(f) => {
            out.push(tag::FLOAT32);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Data::Float64(f) => {
            out.push(tag::FLOAT64);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Data::OctetString(s) | Data::VisibleString(s) | Data::Utf8String(s) => {
            out.push(match d {
                Data::OctetString(_) => tag::OCTET_STRING,
                Data::VisibleString(_) => tag::VISIBLE_STRING,
                _ => tag::UTF8_STRING,
            });
            write_length(out, s.len());
            out.extend_from_slice(s);
        }
        Data::Bcd(b) => out.extend_from_slice(&[tag::BCD, *b]),
        Data::DateTime(s) | Data::Date(s) | Data::Time(s) => {
            out.push(match d {
                Data::DateTime(_) => tag::DATE_TIME,
                Data::Date(_) => tag::DATE,
                _ => tag::TIME,
            });
            out.extend_from_slice(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn round_trips_every_type() {
        let dt = [0x07, 0xE5, 9, 27, 1, 9, 47, 15, 0, 0xFF, 0x88, 0x80];
        let d = vec![
            Data::Structure(20),
            Data::Null,
            Data::Array(2),
            Data::UInt(1),
            Data::UInt(300),
            Data::Bool(true),
            Data::BitString(12, &[0xAB, 0xC0]),
            Data::Int(-5),
            Data::Int(-3000),
            Data::Int(-70000),
            Data::Int(i64::MIN),
            Data::UInt(70000),
            Data::UInt(u64::MAX),
            Data::Enum(27),
            Data::Float32(1.5),
            Data::Float64(-2.25),
            Data::OctetString(&[1, 0, 1, 8, 0, 255]),
            Data::VisibleString(b"KFM_001"),
            Data::Utf8String("Zähler".as_bytes()),
            Data::Bcd(0x12),
            Data::DateTime(&dt),
            Data::Date(&dt[..5]),
            Data::Time(&dt[5..9]),
        ];
        let mut out = Vec::new();
        write(&mut out, &d);
        assert_eq!(parse(&out).unwrap(), (d.clone(), out.len()));
        assert_eq!(end(&d, 0), d.len());
        assert_eq!(end(&d, 2), 5);
    }

    #[test]
    fn rejects_truncation_garbage_and_huge_lengths() {
        assert_eq!(parse(&[]), Err(DlmsError::Truncated));
        assert_eq!(parse(&[6, 0, 0]), Err(DlmsError::Truncated));
        assert!(parse(&[0x63]).is_err());
        // An array claiming four billion elements in five bytes.
        assert_eq!(
            parse(&[1, 0x84, 0xFF, 0xFF, 0xFF, 0xFF, 0]),
            Err(DlmsError::Truncated)
        );
        assert!(parse(&[9, 0x88, 1, 2, 3, 4, 5, 6, 7, 8]).is_err());
        // Deep nesting is refused, not recursed into.
        let deep = [2u8, 1].repeat(1000);
        assert!(parse(&deep).is_err());
    }
}
