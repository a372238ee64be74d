//! One meter connection's DLMS state: segment and block reassembly, the cipher for the
//! configured key, and the last frame counter of every sender.

use alloc::vec::Vec;

use super::cipher::{self, Cipher, Ciphered, Keys, LUXEMBOURG_AUTHENTICATION_KEY};
use super::gbt::{self, GbtAssembler};
use super::hdlc::{self, HdlcAssembler, HdlcFrame};
use super::mbus::{MbusAssembler, MbusFrame};
use super::{cosem, readable_system_title, DlmsError, MAX_APDU};
use crate::dsmr::{self, RawTelegram};
use crate::model::{Dialect, Security, Telegram};
use crate::stream::Rejection;

/// How many senders' frame counters are remembered.
const MAX_SENDERS: usize = 16;

/// How an APDU reached us; decides the telegram's dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// M-Bus long frames.
    Mbus,
    /// HDLC frames, or an HDLC information field (`E6 E7 00` …) on its own.
    Hdlc,
    /// A bare APDU.
    Apdu,
}

impl Transport {
    fn dialect(self) -> Dialect {
        match self {
            Transport::Mbus => Dialect::DlmsMbus,
            Transport::Hdlc => Dialect::DlmsHdlc,
            Transport::Apdu => Dialect::DlmsApdu,
        }
    }
}

/// A decoded message.
#[derive(Debug)]
pub struct Decrypted<'s> {
    /// The telegram.
    pub telegram: Telegram<'s>,
    /// The decrypted DSMR text for encrypted DSMR (Smarty); `None` otherwise.
    pub plaintext: Option<&'s [u8]>,
    /// A frame counter that did not increase (possible replay or meter reset).
    pub warning: Option<Rejection>,
}

/// The keys, the cipher and the frame counters.
#[derive(Debug, Default)]
struct Crypto {
    keys: Keys,
    cipher: Option<Cipher>,
    counters: Vec<([u8; 8], u32)>,
    plain: Vec<u8>,
}

/// Which buffer holds the completed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ready {
    Mbus,
    Hdlc,
    Gbt,
    Apdu,
}

/// The DLMS state of one connection. Feed it frames (or APDUs) in arrival order with
/// the `push_*` methods; when one returns `Ok(true)` a message is complete and
/// [`decode`](Session::decode) decrypts and decodes it.
#[derive(Debug, Default)]
pub struct Session {
    crypto: Crypto,
    mbus: MbusAssembler,
    hdlc: HdlcAssembler,
    gbt: GbtAssembler,
    apdu: Vec<u8>,
    ready: Option<(Ready, Transport)>,
}

impl Session {
    /// A session with these keys.
    pub fn new(keys: Keys) -> Self {
        let mut s = Session::default();
        s.set_keys(keys);
        s
    }

    /// Replaces the keys.
    pub fn set_keys(&mut self, keys: Keys) {
        self.crypto.cipher = keys.encryption.as_ref().map(Cipher::new);
        self.crypto.keys = keys;
    }

    /// Whether a multi-frame message is half received.
    pub fn in_progress(&self) -> bool {
        self.mbus.in_progress() || self.hdlc.in_progress() || self.gbt.in_progress()
    }

    /// Drops any half-received message (its frames were interrupted, e.g. by noise
    /// where a lost frame was); `true` if there was one.
    pub fn abort(&mut self) -> bool {
        let was = self.in_progress();
        self.mbus = MbusAssembler::default();
        self.hdlc = HdlcAssembler::default();
        self.gbt = GbtAssembler::default();
        self.ready = None;
        was
    }

    /// Adds one checked M-Bus long frame; `Ok(true)` when it completes a message.
    pub fn push_mbus(&mut self, f: &MbusFrame<'_>) -> Result<bool, DlmsError> {
        self.ready = None;
        match self.mbus.push(f)? {
            None => Ok(false),
            Some(_) => self.complete(Ready::Mbus, Transport::Mbus),
        }
    }

    /// Adds one checked HDLC frame; `Ok(true)` when it completes a message.
    pub fn push_hdlc(&mut self, f: &HdlcFrame<'_>) -> Result<bool, DlmsError> {
        self.ready = None;
        match self.hdlc.push(f)? {
            None => Ok(false),
            Some(_) => self.complete(Ready::Hdlc, Transport::Hdlc),
        }
    }

    /// Adds one APDU, optionally behind an LLC header (which makes it count as HDLC);
    /// `Ok(true)` when it completes a message.
    pub fn push_apdu(&mut self, apdu: &[u8]) -> Result<bool, DlmsError> {
        self.ready = None;
        let stripped = hdlc::strip_llc(apdu);
        let t = if stripped.len() == apdu.len() {
            Transport::Apdu
        } else {
            Transport::Hdlc
        };
        if stripped.len() > MAX_APDU {
            return Err(DlmsError::TooLong);
        }
        self.apdu.clear();
        self.apdu.extend_from_slice(stripped);
        self.complete(Ready::Apdu, t)
    }

    /// A message sits in `which`: hand a block-transfer block to the GBT assembler.
    fn complete(&mut self, which: Ready, t: Transport) -> Result<bool, DlmsError> {
        let msg = match which {
            Ready::Mbus => self.mbus.message(),
            Ready::Hdlc => self.hdlc.message(),
            Ready::Apdu => &self.apdu,
            Ready::Gbt => {
                self.ready = Some((which, t));
                return Ok(true);
            }
        };
        if msg.first() == Some(&gbt::TAG) {
            return match self.gbt.push(msg)? {
                None => Ok(false),
                Some(whole) if whole.first() == Some(&gbt::TAG) => Err(DlmsError::Unsupported(
                    "general-block-transfer inside general-block-transfer",
                )),
                Some(_) => {
                    self.ready = Some((Ready::Gbt, t));
                    Ok(true)
                }
            };
        }
        self.ready = Some((which, t));
        Ok(true)
    }

    /// The message completed by the last `push_*` call, not yet decoded.
    fn ready_message(&self) -> Option<(&[u8], Transport)> {
        let (which, t) = self.ready?;
        let msg = match which {
            Ready::Mbus => self.mbus.message(),
            Ready::Hdlc => self.hdlc.message(),
            Ready::Apdu => &self.apdu,
            Ready::Gbt => self.gbt.message(),
        };
        Some((msg, t))
    }

    /// The system title of the message completed by the last `push_*` call, if it is
    /// ciphered: known without any key, so a frame can be routed by its sender even
    /// where it cannot be decrypted.
    pub fn ready_system_title(&self) -> Option<[u8; 8]> {
        let (msg, _) = self.ready_message()?;
        if msg.first() != Some(&cipher::GLO_TAG) {
            return None;
        }
        cipher::parse(msg).ok().map(|(c, _)| c.system_title)
    }

    /// Decrypts and decodes the message completed by the last `push_*` call.
    pub fn decode(&mut self) -> Result<Decrypted<'_>, DlmsError> {
        let Some((which, t)) = self.ready.take() else {
            return Err(DlmsError::Truncated);
        };
        let msg = match which {
            Ready::Mbus => self.mbus.message(),
            Ready::Hdlc => self.hdlc.message(),
            Ready::Apdu => &self.apdu,
            Ready::Gbt => self.gbt.message(),
        };
        self.crypto.open(msg, t)
    }

    /// Convenience for one self-contained unit: pushes an APDU and decodes it.
    pub fn decode_apdu(&mut self, apdu: &[u8]) -> Option<Result<Decrypted<'_>, DlmsError>> {
        match self.push_apdu(apdu) {
            Err(e) => Some(Err(e)),
            Ok(false) => None,
            Ok(true) => Some(self.decode()),
        }
    }
}

/// Splits a DSMR telegram into the part the CRC covers and the CRC written after `!`.
fn dsmr_raw(text: &[u8]) -> Option<RawTelegram<'_>> {
    let bang = memchr::memrchr(b'!', text)?;
    let mut crc: u16 = 0;
    let mut digits = 0;
    for &b in text[bang + 1..].iter().take(4) {
        match super::hex_digit(b) {
            Some(d) => {
                crc = crc << 4 | u16::from(d);
                digits += 1;
            }
            None => break,
        }
    }
    Some(RawTelegram {
        body: &text[..=bang],
        crc: (digits > 0).then_some(crc),
        raw: text,
    })
}

/// Whether a plaintext decrypted without verification shows it is genuine: a DSMR
/// telegram whose CRC matches, or a data-notification that parses to its last byte.
fn proves_itself(plain: &[u8]) -> bool {
    match plain.first() {
        Some(b'/') => dsmr_raw(plain).is_some_and(|r| {
            // The CRC must match and nothing but a line end may follow it.
            let tail = &plain[r.body.len()..];
            // Upper-case digits only: a flipped 0x20 bit would otherwise turn `A` into
            // an equally valid `a`.
            let crc_digits = tail
                .iter()
                .take_while(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
                .count();
            crc_digits == 4
                && tail[4..].iter().all(|b| matches!(b, b'\r' | b'\n'))
                && r.crc == Some(crate::crc::crc16_arc(r.body))
        }),
        Some(&cosem::TAG) => {
            matches!(cosem::parse_notification(plain), Ok((_, n)) if n == plain.len())
        }
        _ => false,
    }
}

impl Crypto {
    fn open(&mut self, apdu: &[u8], t: Transport) -> Result<Decrypted<'_>, DlmsError> {
        match apdu.first() {
            Some(&cosem::TAG) => Ok(Decrypted {
                telegram: cosem::decode(apdu, t.dialect())?,
                plaintext: None,
                warning: None,
            }),
            Some(&cipher::GLO_TAG) => self.decrypt(apdu, t),
            Some(_) => Err(DlmsError::Unsupported(
                "APDU type (only data-notification, general-glo-ciphering and block transfer)",
            )),
            None => Err(DlmsError::Truncated),
        }
    }

    fn decrypt(&mut self, apdu: &[u8], t: Transport) -> Result<Decrypted<'_>, DlmsError> {
        let (c, used) = cipher::parse(apdu)?;
        if used != apdu.len() {
            return Err(DlmsError::Syntax("bytes left after the ciphered APDU"));
        }
        let system_title = || readable_system_title(&c.system_title);
        let Some(engine) = &self.cipher else {
            return Err(DlmsError::NoKey {
                system_title: system_title(),
            });
        };
        if c.ciphertext.len() > MAX_APDU {
            return Err(DlmsError::TooLong);
        }
        let authenticated = match (c.tag, self.keys.authentication) {
            (None, _) => {
                engine.decrypt_unverified(&c, &mut self.plain);
                // A notification proves itself by decoding, which follows below.
                if self.plain.first() != Some(&cosem::TAG) && !proves_itself(&self.plain) {
                    return Err(DlmsError::WrongKey {
                        system_title: system_title(),
                    });
                }
                false
            }
            (Some(_), Some(ak)) => {
                if !engine.decrypt_verified(&c, &ak, &mut self.plain) {
                    return Err(DlmsError::Authentication {
                        system_title: system_title(),
                    });
                }
                true
            }
            (Some(_), None) => {
                if engine.decrypt_verified(&c, &LUXEMBOURG_AUTHENTICATION_KEY, &mut self.plain) {
                    true
                } else {
                    engine.decrypt_unverified(&c, &mut self.plain);
                    if !proves_itself(&self.plain) {
                        self.plain.clear();
                        return Err(DlmsError::Authentication {
                            system_title: system_title(),
                        });
                    }
                    false
                }
            }
        };
        let warning = self.check_counter(&c);
        let security = Security {
            system_title: super::to_hex(&c.system_title),
            frame_counter: c.frame_counter,
            security_control: c.security_control,
            authenticated,
        };
        let plain = &self.plain[..];
        let mut telegram = match plain.first() {
            Some(b'/') => {
                let raw = dsmr_raw(plain).ok_or(DlmsError::Syntax(
                    "decrypted DSMR telegram has no end mark `!`",
                ))?;
                let mut tg = dsmr::parse(&raw).map_err(DlmsError::Dsmr)?;
                if matches!(
                    tg.dialect,
                    Dialect::Dsmr | Dialect::Dsmr40 | Dialect::Dsmr42 | Dialect::Dsmr50
                ) {
                    tg.dialect = Dialect::Smarty;
                }
                tg.security = Some(security);
                return Ok(Decrypted {
                    telegram: tg,
                    plaintext: Some(plain),
                    warning,
                });
            }
            Some(&cosem::TAG) => match cosem::parse_notification(plain) {
                Ok((n, used)) if used == plain.len() => cosem::checked_telegram(&n, t.dialect())?,
                // Without a tag, only a plaintext that parses shows the key was right.
                _ if !authenticated => {
                    return Err(DlmsError::WrongKey {
                        system_title: system_title(),
                    })
                }
                Ok(_) => return Err(DlmsError::Cosem("bytes left after the data-notification")),
                Err(e) => return Err(e),
            },
            _ => {
                return Err(if authenticated {
                    DlmsError::Unsupported("decrypted APDU is not a data-notification")
                } else {
                    DlmsError::WrongKey {
                        system_title: system_title(),
                    }
                })
            }
        };
        telegram.security = Some(security);
        Ok(Decrypted {
            telegram,
            plaintext: None,
            warning,
        })
    }

    /// Records the sender's counter; a warning when it did not increase.
    fn check_counter(&mut self, c: &Ciphered<'_>) -> Option<Rejection> {
        let st = c.system_title;
        match self.counters.iter_mut().find(|(s, _)| *s == st) {
            Some((_, last)) => {
                let prev = *last;
                *last = c.frame_counter;
                (c.frame_counter <= prev).then(|| Rejection {
                    cause: "frame_counter",
                    message: alloc::format!(
                        "frame counter of meter {} went from {prev} to {}: replayed frame or meter reset",
                        readable_system_title(&st),
                        c.frame_counter
                    ),
                })
            }
            None => {
                if self.counters.len() == MAX_SENDERS {
                    self.counters.remove(0);
                }
                self.counters.push((st, c.frame_counter));
                None
            }
        }
    }
}
