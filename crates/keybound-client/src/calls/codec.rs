//! The bytes a call to the module carries: a sequence of values, each a tag byte and
//! its payload (little-endian), written by `js/engine.js` and read here, and the same
//! shape back.
//!
//! | tag | value | payload |
//! |---|---|---|
//! | 0 | absent (`undefined`, `null`) | none |
//! | 1 | number (`f64`; booleans travel as 0 and 1) | 8 bytes |
//! | 2 | string | `u32` length, UTF-8 |
//! | 3 | bytes | `u32` length, the bytes |
//! | 4 | list of numbers | `u32` count, 8 bytes each |

#[allow(unused_imports)]
use crate::prelude::*;

/// The tags of the table above.
pub(crate) mod tag {
    pub(crate) const ABSENT: u8 = 0;
    pub(crate) const NUMBER: u8 = 1;
    pub(crate) const STRING: u8 = 2;
    pub(crate) const BYTES: u8 = 3;
    pub(crate) const NUMBERS: u8 = 4;
}

/// Reads a call's arguments in order; `None` when the next one is missing or of
/// another type (a driver bug, answered with a refused call, never a panic).
pub(crate) struct Args<'a> {
    rest: &'a [u8],
}

impl<'a> Args<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(head)
    }

    fn tag(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn len(&mut self) -> Option<usize> {
        let bytes = self.take(4)?.first_chunk::<4>()?;
        usize::try_from(u32::from_le_bytes(*bytes)).ok()
    }

    fn f64_payload(&mut self) -> Option<f64> {
        Some(f64::from_le_bytes(*self.take(8)?.first_chunk::<8>()?))
    }

    /// A number.
    pub(crate) fn number(&mut self) -> Option<f64> {
        (self.tag()? == tag::NUMBER).then_some(())?;
        self.f64_payload()
    }

    /// A number as an integer (JavaScript's `>>> 0` for `u32`, saturating).
    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(self.number()? as u32)
    }

    /// A boolean (a number, true unless 0).
    pub(crate) fn flag(&mut self) -> Option<bool> {
        Some(self.number()? != 0.0)
    }

    /// A string or nothing.
    pub(crate) fn maybe_str(&mut self) -> Option<Option<&'a str>> {
        match self.tag()? {
            tag::ABSENT => Some(None),
            tag::STRING => {
                let n = self.len()?;
                core::str::from_utf8(self.take(n)?).ok().map(Some)
            }
            _ => None,
        }
    }

    /// A string or nothing, owned.
    pub(crate) fn maybe_string(&mut self) -> Option<Option<String>> {
        Some(self.maybe_str()?.map(str::to_owned))
    }

    /// A string.
    pub(crate) fn str(&mut self) -> Option<&'a str> {
        self.maybe_str()?
    }

    /// Bytes.
    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        (self.tag()? == tag::BYTES).then_some(())?;
        let n = self.len()?;
        self.take(n)
    }

    /// A list of numbers.
    pub(crate) fn numbers(&mut self) -> Option<Vec<f64>> {
        (self.tag()? == tag::NUMBERS).then_some(())?;
        let n = self.len()?;
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.f64_payload()?);
        }
        Some(out)
    }
}

/// Writes a call's result.
#[derive(Default)]
pub(crate) struct Out(pub(crate) Vec<u8>);

impl Out {
    fn len(&mut self, n: usize) {
        self.0.extend_from_slice(&(n as u32).to_le_bytes());
    }

    pub(crate) fn absent(&mut self) {
        self.0.push(tag::ABSENT);
    }

    pub(crate) fn number(&mut self, n: f64) {
        self.0.push(tag::NUMBER);
        self.0.extend_from_slice(&n.to_le_bytes());
    }

    pub(crate) fn flag(&mut self, b: bool) {
        self.number(f64::from(u8::from(b)));
    }

    pub(crate) fn str(&mut self, s: &str) {
        self.0.push(tag::STRING);
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    pub(crate) fn maybe_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.absent(),
        }
    }

    pub(crate) fn numbers(&mut self, ns: &[f64]) {
        self.0.push(tag::NUMBERS);
        self.len(ns.len());
        for n in ns {
            self.0.extend_from_slice(&n.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn written(write: impl FnOnce(&mut Out)) -> Vec<u8> {
        let mut out = Out::default();
        write(&mut out);
        out.0
    }

    #[test]
    fn what_is_written_reads_back() {
        let bytes = written(|o| {
            o.str("héllo");
            o.absent();
            o.number(-1.5);
            o.flag(true);
            o.numbers(&[1.0, 2.5]);
        });
        let mut args = Args::new(&bytes);
        assert_eq!(args.str(), Some("héllo"));
        assert_eq!(args.maybe_str(), Some(None));
        assert_eq!(args.number(), Some(-1.5));
        assert_eq!(args.flag(), Some(true));
        assert_eq!(args.numbers(), Some(vec![1.0, 2.5]));
        assert_eq!(args.number(), None, "nothing is left");
    }

    #[test]
    fn bad_bytes_are_refused_not_read() {
        // A string whose length runs past the end.
        assert_eq!(Args::new(&[2, 9, 0, 0, 0, b'a']).str(), None);
        // Invalid UTF-8.
        assert_eq!(Args::new(&[2, 1, 0, 0, 0, 0xff]).str(), None);
        // A number where a string is due, and a string where a number is due.
        assert_eq!(Args::new(&written(|o| o.number(1.0))).str(), None);
        assert_eq!(Args::new(&written(|o| o.str("1"))).number(), None);
        // Absent is not a string.
        assert_eq!(Args::new(&[0]).str(), None);
        // A truncated number, and a list longer than its bytes.
        assert_eq!(Args::new(&[1, 0, 0]).number(), None);
        assert_eq!(Args::new(&[4, 255, 255, 255, 255, 0]).numbers(), None);
        assert_eq!(
            Args::new(&[3, 2, 0, 0, 0, 7, 8]).bytes(),
            Some(&[7u8, 8][..])
        );
        assert_eq!(Args::new(&[]).flag(), None);
    }

    #[test]
    fn numbers_become_u32_as_javascript_would_pass_them() {
        let bytes = written(|o| {
            o.number(7.0);
            o.number(-3.0);
            o.number(f64::NAN);
        });
        let mut args = Args::new(&bytes);
        assert_eq!(args.u32(), Some(7));
        assert_eq!(args.u32(), Some(0));
        assert_eq!(args.u32(), Some(0));
    }
}
