//! General-glo-ciphering (tag 0xDB) with security suite 0/1: AES-128-GCM with a 12-byte tag (RustCrypto `aes-gcm`).
//!
//! Layout: `DB 08 <system title> <length> <security control> <frame counter (4)>
//! <ciphertext> [<tag (12)>]`. The IV is system title ‖ frame counter. With security
//! control bit 0x10 (authentication) the tag covers AAD = SC ‖ AK; with only bit 0x20
//! (encryption, as EVN sends) there is no tag and the ciphertext is plain GCM counter
//! mode.

use core::fmt;

use aes_gcm::aead::AeadInOut;
use aes_gcm::aes::cipher::consts::U12;
use aes_gcm::aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes_gcm::aes::Aes128;
use aes_gcm::AesGcm;
use alloc::vec::Vec;

use super::axdr::Reader;
use super::{DlmsError, MAX_APDU};

/// The authentication key every Luxembourg Smarty meter uses (Luxmetering), tried when
/// the user gives none.
pub const LUXEMBOURG_AUTHENTICATION_KEY: [u8; 16] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF,
];

/// The APDU tag of general-glo-ciphering.
pub const GLO_TAG: u8 = 0xDB;
/// The length of the GCM tag DLMS uses.
pub const TAG_LEN: usize = 12;

/// Security control bit: the APDU carries a GCM tag.
pub const SC_AUTHENTICATED: u8 = 0x10;
/// Security control bit: the APDU is encrypted.
pub const SC_ENCRYPTED: u8 = 0x20;

/// The keys of one meter. `Debug` never shows them.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Keys {
    /// The global unicast encryption key (GUEK).
    pub encryption: Option<[u8; 16]>,
    /// The authentication key (GAK); `None` tries the Luxembourg default and, failing
    /// that, accepts only plaintexts that prove themselves.
    pub authentication: Option<[u8; 16]>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("encryption", &self.encryption.map(|_| "<set>"))
            .field("authentication", &self.authentication.map(|_| "<set>"))
            .finish()
    }
}

impl Keys {
    /// Keys from hex text (32 hex digits each, spaces and a `0x` prefix allowed).
    /// Errors never repeat the key.
    pub fn from_hex(
        encryption: Option<&str>,
        authentication: Option<&str>,
    ) -> Result<Keys, DlmsError> {
        Ok(Keys {
            encryption: encryption.map(parse_key).transpose()?,
            authentication: authentication.map(parse_key).transpose()?,
        })
    }
}

/// Parses one AES-128 key from hex.
pub fn parse_key(s: &str) -> Result<[u8; 16], DlmsError> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let mut key = [0u8; 16];
    let mut n = 0usize;
    let mut hi: Option<u8> = None;
    for b in s.bytes() {
        if b == b' ' || b == b':' || b == b'-' {
            continue;
        }
        let d = super::hex_digit(b)
            .ok_or(DlmsError::Key("a key must consist of hexadecimal digits"))?;
        match hi.take() {
            None => hi = Some(d),
            Some(h) => {
                if n == 16 {
                    return Err(DlmsError::Key(
                        "a key must be 32 hex digits (16 bytes) long",
                    ));
                }
                key[n] = h << 4 | d;
                n += 1;
            }
        }
    }
    if n != 16 || hi.is_some() {
        return Err(DlmsError::Key(
            "a key must be 32 hex digits (16 bytes) long",
        ));
    }
    Ok(key)
}

/// A parsed ciphered APDU; the ciphertext is not yet touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ciphered<'a> {
    /// The sender's system title.
    pub system_title: [u8; 8],
    /// The security control byte.
    pub security_control: u8,
    /// The invocation (frame) counter.
    pub frame_counter: u32,
    /// The ciphertext, without the tag.
    pub ciphertext: &'a [u8],
    /// The GCM tag, when the security control announces one.
    pub tag: Option<&'a [u8; TAG_LEN]>,
}

/// Parses a general-glo-ciphering APDU at the start of `apdu`; returns it and the
/// number of bytes it spans.
pub fn parse(apdu: &[u8]) -> Result<(Ciphered<'_>, usize), DlmsError> {
    let mut r = Reader::new(apdu);
    let t = r.u8()?;
    // General-ded-ciphering (0xDF) uses a dedicated key no push meter has; decrypting
    // it with the global key would let a flipped bit in the tag byte through.
    if t != GLO_TAG {
        return Err(DlmsError::Syntax("not a general-glo-ciphering APDU"));
    }
    let st = r.sized()?;
    let system_title: [u8; 8] = st
        .try_into()
        .map_err(|_| DlmsError::Syntax("system title is not 8 bytes"))?;
    let len = r.length()?;
    if len > MAX_APDU {
        return Err(DlmsError::TooLong);
    }
    let body = r.take(len)?;
    let [sc, rest @ ..] = body else {
        return Err(DlmsError::Truncated);
    };
    let sc = *sc;
    if sc & 0xC0 != 0 || sc & 0x0F > 1 {
        return Err(DlmsError::Unsupported(
            "security control (compression, broadcast key or suite above 1)",
        ));
    }
    if sc & SC_ENCRYPTED == 0 {
        return Err(DlmsError::Unsupported(
            "authenticated-only (unencrypted) APDUs",
        ));
    }
    let Some((fc, rest)) = rest.split_first_chunk::<4>() else {
        return Err(DlmsError::Truncated);
    };
    let (ciphertext, tag) = if sc & SC_AUTHENTICATED != 0 {
        let Some((ct, tag)) = rest.split_last_chunk::<TAG_LEN>() else {
            return Err(DlmsError::Truncated);
        };
        (ct, Some(tag))
    } else {
        (rest, None)
    };
    Ok((
        Ciphered {
            system_title,
            security_control: sc,
            frame_counter: u32::from_be_bytes(*fc),
            ciphertext,
            tag,
        },
        r.position(),
    ))
}

type Gcm = AesGcm<Aes128, U12, U12>;

/// An AES-128-GCM engine for one encryption key (its key schedule computed once).
#[derive(Clone)]
pub struct Cipher {
    gcm: Gcm,
    aes: Aes128,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(<key>)")
    }
}

/// The 12-byte GCM IV: system title ‖ frame counter.
pub fn iv(system_title: &[u8; 8], frame_counter: u32) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[..8].copy_from_slice(system_title);
    iv[8..].copy_from_slice(&frame_counter.to_be_bytes());
    iv
}

fn aad(sc: u8, ak: &[u8; 16]) -> [u8; 17] {
    let mut a = [0u8; 17];
    a[0] = sc;
    a[1..].copy_from_slice(ak);
    a
}

impl Cipher {
    /// An engine for this encryption key.
    pub fn new(key: &[u8; 16]) -> Self {
        Cipher {
            gcm: Gcm::new(&(*key).into()),
            aes: Aes128::new(&(*key).into()),
        }
    }

    /// GCM's counter mode alone (no tag): XORs the key stream for `iv` into `data`.
    pub fn apply_keystream(&self, iv: &[u8; 12], data: &mut [u8]) {
        const BATCH: usize = 16;
        let mut counter: u32 = 2; // Counter 1 is reserved for the tag; the data starts at 2.
        for chunk in data.chunks_mut(16 * BATCH) {
            let n = chunk.len().div_ceil(16);
            let mut blocks = [aes_gcm::aes::Block::default(); BATCH];
            for b in blocks[..n].iter_mut() {
                b[..12].copy_from_slice(iv);
                b[12..].copy_from_slice(&counter.to_be_bytes());
                counter = counter.wrapping_add(1);
            }
            self.aes.encrypt_blocks(&mut blocks[..n]);
            for (d, k) in chunk.chunks_mut(16).zip(&blocks[..n]) {
                for (x, y) in d.iter_mut().zip(k.iter()) {
                    *x ^= y;
                }
            }
        }
    }

    /// Decrypts `c.ciphertext` into `out` (replacing its content) after verifying the
    /// tag with `ak`. Returns `false`, with `out` left empty, when the tag does not verify.
    pub fn decrypt_verified(&self, c: &Ciphered<'_>, ak: &[u8; 16], out: &mut Vec<u8>) -> bool {
        out.clear();
        let Some(tag) = c.tag else { return false };
        out.extend_from_slice(c.ciphertext);
        let nonce = iv(&c.system_title, c.frame_counter).into();
        let ok = self
            .gcm
            .decrypt_inout_detached(
                &nonce,
                &aad(c.security_control, ak),
                out.as_mut_slice().into(),
                &(*tag).into(),
            )
            .is_ok();
        if !ok {
            out.clear();
        }
        ok
    }

    /// Decrypts `c.ciphertext` into `out` without looking at any tag.
    pub fn decrypt_unverified(&self, c: &Ciphered<'_>, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(c.ciphertext);
        self.apply_keystream(&iv(&c.system_title, c.frame_counter), out);
    }

    /// Encrypts `plaintext` into a complete general-glo-ciphering APDU appended to
    /// `out`. With `ak` the security control gets the authentication bit and a tag.
    pub fn seal(
        &self,
        system_title: &[u8; 8],
        frame_counter: u32,
        security_control: u8,
        ak: Option<&[u8; 16]>,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) {
        let sc = if ak.is_some() {
            security_control | SC_AUTHENTICATED | SC_ENCRYPTED
        } else {
            (security_control | SC_ENCRYPTED) & !SC_AUTHENTICATED
        };
        out.extend_from_slice(&[GLO_TAG, 8]);
        out.extend_from_slice(system_title);
        let len = 1 + 4 + plaintext.len() + if ak.is_some() { TAG_LEN } else { 0 };
        super::axdr::write_length(out, len);
        out.push(sc);
        out.extend_from_slice(&frame_counter.to_be_bytes());
        let start = out.len();
        out.extend_from_slice(plaintext);
        let iv = iv(system_title, frame_counter);
        match ak {
            Some(ak) => {
                let tag = self
                    .gcm
                    .encrypt_inout_detached(&iv.into(), &aad(sc, ak), (&mut out[start..]).into())
                    .expect("plaintext length is far below the GCM limit");
                out.extend_from_slice(&tag);
            }
            None => self.apply_keystream(&iv, &mut out[start..]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn seals_and_opens() {
        let c = Cipher::new(&[7; 16]);
        let st = *b"SAGxxxxx";
        for ak in [Some(&[9u8; 16]), None] {
            let mut apdu = vec![];
            c.seal(
                &st,
                42,
                0x00,
                ak,
                b"hello world, this is longer than a block",
                &mut apdu,
            );
            let (p, n) = parse(&apdu).unwrap();
            assert_eq!(n, apdu.len());
            assert_eq!(p.frame_counter, 42);
            let mut out = vec![];
            match ak {
                Some(ak) => {
                    assert!(c.decrypt_verified(&p, ak, &mut out));
                    assert!(!c.decrypt_verified(&p, &[8; 16], &mut out));
                }
                None => c.decrypt_unverified(&p, &mut out),
            }
            if let Some(ak) = ak {
                assert!(c.decrypt_verified(&p, ak, &mut out));
            }
            assert_eq!(out, b"hello world, this is longer than a block");
            // The counter-mode path agrees with the verified one.
            c.decrypt_unverified(&p, &mut out);
            assert_eq!(out, b"hello world, this is longer than a block");
        }
    }

    #[test]
    fn parses_keys_without_echoing_them() {
        assert_eq!(
            parse_key("00112233445566778899AABBCCDDEEFF"),
            Ok(LUXEMBOURG_AUTHENTICATION_KEY)
        );
        assert_eq!(
            parse_key("0x00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff"),
            Ok(LUXEMBOURG_AUTHENTICATION_KEY)
        );
        for bad in [
            "",
            "0011",
            "00112233445566778899AABBCCDDEEFF00",
            "zz112233445566778899AABBCCDDEEFF",
        ] {
            let e = parse_key(bad).unwrap_err();
            assert_eq!(e.cause(), "key");
            assert!(!alloc::format!("{e}").contains("0011"));
        }
        let k = Keys {
            encryption: Some([0xAB; 16]),
            authentication: None,
        };
        assert!(!alloc::format!("{k:?}").contains("AB"));
        assert!(!alloc::format!("{k:?}").contains("171"));
    }

    #[test]
    fn rejects_malformed_headers() {
        assert!(parse(&[]).is_err());
        assert!(parse(&[0xDB, 8, 1, 2, 3]).is_err());
        let mut a = vec![
            0xDB, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0x84, 0xFF, 0xFF, 0xFF, 0xFF, 0x30,
        ];
        assert_eq!(parse(&a), Err(DlmsError::TooLong));
        a.truncate(10);
        a.extend_from_slice(&[5, 0x30, 0, 0, 0, 1]);
        assert_eq!(parse(&a), Err(DlmsError::Truncated));
        a[11] = 0x80;
        assert!(parse(&a).is_err());
    }
}
