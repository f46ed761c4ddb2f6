//! HPACK's Huffman code for string literals (RFC 7541, Appendix B).
//!
//! The code is canonical: sorted by length, and by symbol within one
//! length, each code is the previous one plus one (shifted left when the
//! length grows). So the lengths alone define it, and the tables below are
//! built from them at compile time.

use bytes::{BufMut, BytesMut};

/// The end-of-string symbol: never valid inside a string.
const EOS: u16 = 256;

/// The longest code, in bits.
const MAX_LENGTH: usize = 30;

/// The code length of each symbol, 0–255 and then EOS.
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

/// The canonical code, in the forms encoding and decoding want.
struct Code {
    /// Each symbol's code, right-aligned.
    codes: [u32; 257],
    /// The first code of each length.
    first: [u32; MAX_LENGTH + 1],
    /// One past the last code of each length: a value of that many bits
    /// below it, and at or above every shorter length's limit, is a code.
    limit: [u32; MAX_LENGTH + 1],
    /// Where each length's symbols start in `symbols`.
    offset: [u16; MAX_LENGTH + 1],
    /// The symbols in code order.
    symbols: [u16; 257],
    /// For every 8-bit prefix of the input, the symbol whose code of at
    /// most 8 bits it starts with, as `symbol << 4 | length`; 0 when the
    /// code is longer.
    short: [u16; 256],
}

const CODE: Code = build();

const fn build() -> Code {
    let mut code = Code {
        codes: [0; 257],
        first: [0; MAX_LENGTH + 1],
        limit: [0; MAX_LENGTH + 1],
        offset: [0; MAX_LENGTH + 1],
        symbols: [0; 257],
        short: [0; 256],
    };
    let mut next: u32 = 0;
    let mut placed: usize = 0;
    let mut length = 1;
    while length <= MAX_LENGTH {
        code.first[length] = next;
        code.offset[length] = placed as u16;
        let mut symbol = 0;
        while symbol < 257 {
            if LENGTHS[symbol] as usize == length {
                code.codes[symbol] = next;
                code.symbols[placed] = symbol as u16;
                placed += 1;
                next += 1;
            }
            symbol += 1;
        }
        code.limit[length] = next;
        next <<= 1;
        length += 1;
    }
    let mut prefix: u32 = 0;
    while prefix < 256 {
        let mut length = 1;
        while length <= 8 {
            let value = prefix >> (8 - length);
            if value < code.limit[length] {
                let index = code.offset[length] as u32 + value - code.first[length];
                code.short[prefix as usize] = code.symbols[index as usize] << 4 | length as u16;
                break;
            }
            length += 1;
        }
        prefix += 1;
    }
    code
}

/// Why a Huffman-coded string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HuffmanError {
    /// The string holds the end-of-string symbol.
    #[error("Huffman-coded string holds the end-of-string symbol")]
    EndOfString,
    /// The bits after the last symbol are not a prefix of the
    /// end-of-string code shorter than a byte.
    #[error("Huffman-coded string ends with invalid padding")]
    Padding,
}

/// Decodes `src` onto the end of `dst`.
pub fn decode(src: &[u8], dst: &mut BytesMut) -> Result<(), HuffmanError> {
    // A symbol is at least 5 bits.
    dst.reserve(src.len() * 8 / 5 + 1);
    // The undecoded bits, right-aligned: `bits` of them.
    let mut held: u64 = 0;
    let mut bits: usize = 0;
    let mut read = 0;
    loop {
        while bits <= 48 && read < src.len() {
            held = held << 8 | u64::from(src[read]);
            bits += 8;
            read += 1;
        }
        if bits == 0 {
            return Ok(());
        }
        let (symbol, length) = match next_symbol(held, bits) {
            Some(found) => found,
            // Too few bits left for any code: the input has ended (with
            // 30 bits or more, some code always matches), so they are
            // padding, which must be fewer than 8 bits of ones.
            None => {
                let ones = (1u64 << bits) - 1;
                if bits < 8 && held & ones == ones {
                    return Ok(());
                }
                return Err(HuffmanError::Padding);
            }
        };
        if symbol == EOS {
            return Err(HuffmanError::EndOfString);
        }
        dst.put_u8(symbol as u8);
        bits -= length;
        held &= (1u64 << bits) - 1;
    }
}

/// The symbol the `bits` low bits of `held` start with, and its length.
fn next_symbol(held: u64, bits: usize) -> Option<(u16, usize)> {
    let mut length = 5;
    if bits >= 8 {
        let entry = CODE.short[((held >> (bits - 8)) & 0xff) as usize];
        if entry != 0 {
            return Some((entry >> 4, usize::from(entry & 0xf)));
        }
        length = 9;
    }
    while length <= bits.min(MAX_LENGTH) {
        let value = ((held >> (bits - length)) & ((1u64 << length) - 1)) as u32;
        if value < CODE.limit[length] {
            let index = usize::from(CODE.offset[length]) + (value - CODE.first[length]) as usize;
            return Some((CODE.symbols[index], length));
        }
        length += 1;
    }
    None
}

/// How many bytes `src` takes Huffman-coded.
pub fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src
        .iter()
        .map(|&b| usize::from(LENGTHS[usize::from(b)]))
        .sum();
    bits.div_ceil(8)
}

/// Encodes `src` onto the end of `dst`, padded with ones.
pub fn encode(src: &[u8], dst: &mut BytesMut) {
    dst.reserve(encoded_len(src));
    let mut held: u64 = 0;
    let mut bits: usize = 0;
    for &byte in src {
        let length = usize::from(LENGTHS[usize::from(byte)]);
        held = held << length | u64::from(CODE.codes[usize::from(byte)]);
        bits += length;
        while bits >= 8 {
            bits -= 8;
            dst.put_u8((held >> bits) as u8);
        }
        held &= (1u64 << bits) - 1;
    }
    if bits > 0 {
        let pad = 8 - bits;
        dst.put_u8((held << pad | ((1u64 << pad) - 1)) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(src: &[u8]) -> Result<Vec<u8>, HuffmanError> {
        let mut dst = BytesMut::new();
        decode(src, &mut dst).map(|()| dst.to_vec())
    }

    fn encoded(src: &[u8]) -> Vec<u8> {
        let mut dst = BytesMut::new();
        encode(src, &mut dst);
        assert_eq!(dst.len(), encoded_len(src));
        dst.to_vec()
    }

    #[test]
    fn codes_match_the_rfc() {
        // A few codes as RFC 7541 Appendix B lists them.
        assert_eq!(
            (CODE.codes[usize::from(b'0')], LENGTHS[usize::from(b'0')]),
            (0x0, 5)
        );
        assert_eq!(
            (CODE.codes[usize::from(b'a')], LENGTHS[usize::from(b'a')]),
            (0x3, 5)
        );
        assert_eq!(
            (CODE.codes[usize::from(b' ')], LENGTHS[usize::from(b' ')]),
            (0x14, 6)
        );
        assert_eq!(
            (CODE.codes[usize::from(b'Z')], LENGTHS[usize::from(b'Z')]),
            (0xfd, 8)
        );
        assert_eq!((CODE.codes[0], LENGTHS[0]), (0x1ff8, 13));
        assert_eq!((CODE.codes[255], LENGTHS[255]), (0x3ffffee, 26));
        assert_eq!((CODE.codes[256], LENGTHS[256]), (0x3fff_ffff, 30));
    }

    #[test]
    fn rfc_examples() {
        // RFC 7541 C.4.1 to C.4.3 and C.6.1.
        let cases: [(&str, &[u8]); 5] = [
            (
                "www.example.com",
                &[
                    0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
                ],
            ),
            ("no-cache", &[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf]),
            (
                "custom-key",
                &[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f],
            ),
            (
                "custom-value",
                &[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf],
            ),
            (
                "Mon, 21 Oct 2013 20:13:21 GMT",
                &[
                    0xd0, 0x7a, 0xbe, 0x94, 0x10, 0x54, 0xd4, 0x44, 0xa8, 0x20, 0x05, 0x95, 0x04,
                    0x0b, 0x81, 0x66, 0xe0, 0x82, 0xa6, 0x2d, 0x1b, 0xff,
                ],
            ),
        ];
        for (text, code) in cases {
            assert_eq!(encoded(text.as_bytes()), code, "{text}");
            assert_eq!(decoded(code).as_deref(), Ok(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn every_byte_round_trips_alone_and_together() {
        for byte in 0..=255u8 {
            assert_eq!(decoded(&encoded(&[byte])), Ok(vec![byte]), "{byte}");
        }
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        assert_eq!(decoded(&encoded(&all)), Ok(all));
    }

    #[test]
    fn padding_must_be_short_ones() {
        // 'a' (00011) padded with three ones is fine; with zeros it is not.
        assert_eq!(decoded(&[0b0001_1111]), Ok(b"a".to_vec()));
        assert_eq!(decoded(&[0b0001_1000]), Err(HuffmanError::Padding));
        // A whole byte of ones after the last symbol is too long.
        assert_eq!(decoded(&[0b0001_1111, 0xff]), Err(HuffmanError::Padding));
        // Nothing but padding.
        assert_eq!(decoded(&[0xff]), Err(HuffmanError::Padding));
        assert_eq!(decoded(&[]), Ok(Vec::new()));
    }

    #[test]
    fn the_end_of_string_symbol_is_refused() {
        // EOS is 30 ones; two more ones pad it to four bytes.
        assert_eq!(
            decoded(&[0xff, 0xff, 0xff, 0xff]),
            Err(HuffmanError::EndOfString)
        );
    }
}
