//! Reads a request's protobuf bytes straight into a view, borrowing every string, id and
//! attribute from the bytes: no allocation per field, as prost makes when it decodes into owned
//! messages. What every signal shares — the wire format, attributes and values, and the
//! resource and scope blocks around the records — is here; each signal reads its own records
//! (`spans/protobuf.rs`, `logs/protobuf.rs`, `metrics/protobuf.rs`).
//!
//! A reader takes only what it can read exactly as prost would. It declines (`None`) anything
//! else, and the caller then decodes with prost as before: invalid UTF-8 (prost's path repairs
//! it), groups, malformed varints or lengths, a message field given twice (prost merges the
//! two), a value with more than one of its fields set, a resource's entity references (not
//! read here), and nested values that prost would not decode, or that nest deep enough to come
//! near prost's limit of 100 message levels (see [`MAX_VALUE_DEPTH`]). Unknown fields are
//! skipped, as prost skips them.

use super::attributes::Attr;
use super::view::{BlockView, Origins, ResourceView};
use crate::schema::attributes::ValueRef;

/// How many message levels a nested value may hold below itself. Prost refuses a message
/// nested more than 100 levels below the request; the deepest value a reader takes, a metric
/// exemplar's attribute, is itself 8 levels down (request, resource block, scope block, metric,
/// its data, point, exemplar, attribute), a span event's 6 and a log body 4. One bound for all,
/// with room to spare: a real value nests a few levels, and a deeper one only takes prost's path.
pub const MAX_VALUE_DEPTH: u32 = 100 - 8 - 4;

pub const VARINT: u8 = 0;
pub const I64: u8 = 1;
pub const LEN: u8 = 2;
pub const I32: u8 = 5;

/// A cursor over one message's bytes.
pub struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// A varint of at most ten bytes, the tenth at most 1, as prost accepts them.
    #[inline]
    pub fn varint(&mut self) -> Option<u64> {
        if let Some((&byte, rest)) = self.buf.split_first()
            && byte < 0x80
        {
            self.buf = rest;
            return Some(u64::from(byte));
        }
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            if i == 9 && byte > 1 {
                return None;
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Some(value);
            }
        }
        None
    }

    /// The next field's number and wire type; `None` at the end of the message too, so
    /// callers check [`Self::done`] to tell the end from an error.
    #[inline]
    pub fn key(&mut self) -> Option<(u32, u8)> {
        let key = self.varint()?;
        let key = u32::try_from(key).ok()?;
        let (tag, wire) = (key >> 3, (key & 7) as u8);
        (tag > 0 && wire <= 5).then_some((tag, wire))
    }

    pub fn done(&self) -> bool {
        self.buf.is_empty()
    }

    #[inline]
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        if len > self.buf.len() {
            return None;
        }
        let (value, rest) = self.buf.split_at(len);
        self.buf = rest;
        Some(value)
    }

    /// The next string, `None` when it is not UTF-8.
    #[inline]
    pub fn str(&mut self) -> Option<&'a str> {
        let bytes = self.bytes()?;
        // Nearly every string of telemetry (keys, names, ids, routes) is short and ASCII. The
        // standard check walks a short string byte by byte, ~109 instructions per call here
        // (docs/benchmarks.md, "Where a span's instructions go now"); the ASCII test reads it a
        // word at a time.
        if bytes.is_ascii() {
            // SAFETY: ASCII bytes are valid UTF-8.
            return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
        }
        std::str::from_utf8(bytes).ok()
    }

    #[inline]
    pub fn fixed64(&mut self) -> Option<u64> {
        let (value, rest) = self.buf.split_first_chunk::<8>()?;
        self.buf = rest;
        Some(u64::from_le_bytes(*value))
    }

    #[inline]
    pub fn fixed32(&mut self) -> Option<u32> {
        let (value, rest) = self.buf.split_first_chunk::<4>()?;
        self.buf = rest;
        Some(u32::from_le_bytes(*value))
    }

    /// Skips a field this reader does not use.
    pub fn skip(&mut self, wire: u8) -> Option<()> {
        match wire {
            VARINT => self.varint().map(drop),
            I64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            I32 => self.fixed32().map(drop),
            _ => None,
        }
    }
}

/// Checks a field's wire type.
#[inline]
pub fn expect(wire: u8, want: u8) -> Option<()> {
    (wire == want).then_some(())
}

/// Reads an export request of any signal — its resource blocks, their scope blocks — handing
/// each record's bytes to `record`, which must add exactly one record to the signal's view.
/// Declines as the module says.
pub fn read_blocks<'a>(
    bytes: &'a [u8],
    origins: &mut Origins<'a>,
    mut record: impl FnMut(&'a [u8]) -> Option<()>,
) -> Option<()> {
    let mut records = 0;
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        let (tag, wire) = fields.key()?;
        match tag {
            1 => {
                expect(wire, LEN)?;
                resource_block(origins, fields.bytes()?, &mut records, &mut record)?;
            }
            _ => fields.skip(wire)?,
        }
    }
    Some(())
}

/// A `ResourceSpans` / `ResourceLogs` / `ResourceMetrics`: resource 1, scope blocks 2, schema
/// URL 3.
fn resource_block<'a>(
    origins: &mut Origins<'a>,
    bytes: &'a [u8],
    records: &mut usize,
    record: &mut impl FnMut(&'a [u8]) -> Option<()>,
) -> Option<()> {
    let index = origins.resources.len();
    origins.resources.push(ResourceView::default());
    let mut resource = ResourceView::default();
    let mut seen_resource = false;
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        let (tag, wire) = fields.key()?;
        match tag {
            1 => {
                expect(wire, LEN)?;
                if std::mem::replace(&mut seen_resource, true) {
                    return None;
                }
                let start = origins.attributes.len();
                let mut r = Fields::new(fields.bytes()?);
                while !r.done() {
                    let (tag, wire) = r.key()?;
                    match tag {
                        1 => {
                            expect(wire, LEN)?;
                            let attr = attribute(r.bytes()?)?;
                            origins.attributes.push(attr);
                        }
                        2 => {
                            expect(wire, VARINT)?;
                            resource.dropped = r.varint()? as u32;
                        }
                        // Entity references: decoded by prost, not read here.
                        3 => return None,
                        _ => r.skip(wire)?,
                    }
                }
                resource.attributes = start..origins.attributes.len();
            }
            2 => {
                expect(wire, LEN)?;
                scope_block(origins, index, fields.bytes()?, records, record)?;
            }
            3 => {
                expect(wire, LEN)?;
                resource.schema_url = fields.str()?;
            }
            _ => fields.skip(wire)?,
        }
    }
    origins.resources[index] = resource;
    Some(())
}

/// A `ScopeSpans` / `ScopeLogs` / `ScopeMetrics`: scope 1, records (spans, log records or
/// metrics) 2, schema URL 3.
fn scope_block<'a>(
    origins: &mut Origins<'a>,
    resource: usize,
    bytes: &'a [u8],
    records: &mut usize,
    record: &mut impl FnMut(&'a [u8]) -> Option<()>,
) -> Option<()> {
    let first = *records;
    let mut block = BlockView {
        resource,
        ..BlockView::default()
    };
    let mut seen_scope = false;
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        let (tag, wire) = fields.key()?;
        match tag {
            1 => {
                expect(wire, LEN)?;
                if std::mem::replace(&mut seen_scope, true) {
                    return None;
                }
                let start = origins.attributes.len();
                let mut s = Fields::new(fields.bytes()?);
                while !s.done() {
                    let (tag, wire) = s.key()?;
                    match tag {
                        1 => {
                            expect(wire, LEN)?;
                            block.scope_name = s.str()?;
                        }
                        2 => {
                            expect(wire, LEN)?;
                            block.scope_version = s.str()?;
                        }
                        3 => {
                            expect(wire, LEN)?;
                            let attr = attribute(s.bytes()?)?;
                            origins.attributes.push(attr);
                        }
                        4 => {
                            expect(wire, VARINT)?;
                            block.scope_dropped = s.varint()? as u32;
                        }
                        _ => s.skip(wire)?,
                    }
                }
                block.scope_attributes = start..origins.attributes.len();
            }
            2 => {
                expect(wire, LEN)?;
                record(fields.bytes()?)?;
                *records += 1;
            }
            3 => {
                expect(wire, LEN)?;
                block.schema_url = fields.str()?;
            }
            _ => fields.skip(wire)?,
        }
    }
    block.records = first..*records;
    origins.blocks.push(block);
    Some(())
}

/// A `KeyValue`.
#[inline]
pub fn attribute(bytes: &[u8]) -> Option<Attr<'_>> {
    let mut attr = Attr {
        key: "",
        value: ValueRef::Empty,
    };
    let mut seen_value = false;
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        match fields.key()? {
            (1, LEN) => attr.key = fields.str()?,
            (2, LEN) => {
                if std::mem::replace(&mut seen_value, true) {
                    return None;
                }
                attr.value = value(fields.bytes()?)?;
            }
            (3, VARINT) => {
                fields.varint()?;
            }
            (1..=3, _) => return None,
            (_, wire) => fields.skip(wire)?,
        }
    }
    Some(attr)
}

/// An `AnyValue`.
#[inline]
pub fn value(bytes: &[u8]) -> Option<ValueRef<'_>> {
    let mut value = ValueRef::Empty;
    let mut seen = false;
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        let (tag, wire) = fields.key()?;
        if (1..=8).contains(&tag) && std::mem::replace(&mut seen, true) {
            return None;
        }
        value = match (tag, wire) {
            (1, LEN) => ValueRef::Str(fields.str()?),
            (2, VARINT) => ValueRef::Bool(fields.varint()? != 0),
            (3, VARINT) => ValueRef::Int(fields.varint()? as i64),
            (4, I64) => ValueRef::Double(f64::from_bits(fields.fixed64()?)),
            (5 | 6, LEN) => {
                fields.bytes()?;
                // Kept as bytes and decoded by prost when encoded: checked here to decode.
                nested(bytes, MAX_VALUE_DEPTH)?;
                ValueRef::NestedProtobuf(bytes)
            }
            (7, LEN) => ValueRef::Bytes(fields.bytes()?),
            (8, VARINT) => ValueRef::Strindex(fields.varint()? as i32),
            (1..=8, _) => return None,
            (_, wire) => {
                fields.skip(wire)?;
                value
            }
        };
    }
    Some(value)
}

/// Checks a nested `AnyValue` as prost decodes it, without building it: every field it knows
/// has its wire type, strings are UTF-8, varints and lengths are well formed (unknown fields
/// skipped, groups declined). Returns how many message levels it holds below itself (an array
/// 1, its items 2, a key-value list 1, its pairs 2, their values 3, and so on down); `None`
/// for what prost refuses, or past `budget`. A field given twice counts the deeper of the two,
/// never less than what prost merges them into; prost also counts an unknown field inside the
/// deepest message as one more level, which [`MAX_VALUE_DEPTH`]'s spare levels cover.
fn nested(any_value: &[u8], budget: u32) -> Option<u32> {
    let mut deepest = 0;
    let mut fields = Fields::new(any_value);
    while !fields.done() {
        match fields.key()? {
            (1, LEN) => {
                fields.str()?;
            }
            (2 | 3 | 8, VARINT) => {
                fields.varint()?;
            }
            (4, I64) => {
                fields.fixed64()?;
            }
            (7, LEN) => {
                fields.bytes()?;
            }
            // An `ArrayValue`: its values, field 1.
            (5, LEN) => {
                let mut array = Fields::new(fields.bytes()?);
                deepest = deepest.max(1);
                while !array.done() {
                    match array.key()? {
                        (1, LEN) => {
                            let below = budget.checked_sub(2)?;
                            deepest = deepest.max(2 + nested(array.bytes()?, below)?);
                        }
                        (1, _) => return None,
                        (_, wire) => array.skip(wire)?,
                    }
                }
            }
            // A `KeyValueList`: its pairs, field 1, each a `KeyValue`.
            (6, LEN) => {
                let mut list = Fields::new(fields.bytes()?);
                deepest = deepest.max(1);
                while !list.done() {
                    match list.key()? {
                        (1, LEN) => {
                            deepest = deepest.max(2 + pair(list.bytes()?, budget.checked_sub(2)?)?);
                        }
                        (1, _) => return None,
                        (_, wire) => list.skip(wire)?,
                    }
                }
            }
            (1..=8, _) => return None,
            (_, wire) => fields.skip(wire)?,
        }
    }
    (deepest <= budget).then_some(deepest)
}

/// A nested `KeyValue`, as [`nested`] checks an `AnyValue`: its key, its value (one level below),
/// its key's string-table index.
fn pair(bytes: &[u8], budget: u32) -> Option<u32> {
    let mut deepest = 0;
    let mut fields = Fields::new(bytes);
    while !fields.done() {
        match fields.key()? {
            (1, LEN) => {
                fields.str()?;
            }
            (2, LEN) => {
                let below = budget.checked_sub(1)?;
                deepest = deepest.max(1 + nested(fields.bytes()?, below)?);
            }
            (3, VARINT) => {
                fields.varint()?;
            }
            (1..=3, _) => return None,
            (_, wire) => fields.skip(wire)?,
        }
    }
    Some(deepest)
}

#[cfg(test)]
mod tests {
    use super::Fields;

    /// `strings` as consecutive length-delimited fields' payloads (lengths under 128).
    fn delimited(strings: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for s in strings {
            out.push(u8::try_from(s.len()).unwrap());
            out.extend_from_slice(s);
        }
        out
    }

    #[test]
    fn strings_are_read_whether_ascii_or_not_and_invalid_utf8_is_declined() {
        let long_ascii = b"http.response.status_code and more than two words";
        let bytes = delimited(&[b"", b"GET", long_ascii, "caf\u{e9} \u{1f600}".as_bytes()]);
        let mut fields = Fields::new(&bytes);
        assert_eq!(fields.str(), Some(""));
        assert_eq!(fields.str(), Some("GET"));
        assert_eq!(fields.str().map(str::as_bytes), Some(&long_ascii[..]));
        assert_eq!(fields.str(), Some("caf\u{e9} \u{1f600}"));
        assert!(fields.done());

        // Not UTF-8: a lone continuation byte, a truncated sequence, a byte never valid; short
        // and past a word's length.
        for bad in [
            &b"\x80"[..],
            b"ok \xc3",
            b"\xff",
            b"twelve bytes\xffand more",
        ] {
            let bytes = delimited(&[bad]);
            assert_eq!(Fields::new(&bytes).str(), None, "{bad:?}");
        }
        // A length past the end.
        assert_eq!(Fields::new(&[5, b'a']).str(), None);
    }
}
