//! The envelope framing and its MAC; see the
//! [module docs](crate::envelope#wire-format).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::envelope::error::EnvelopeError;
use crate::error::Error;
use crate::kid::{Kid, MAX_KID_LEN};
use crate::secret::SecretBytes;

type HmacSha256 = Hmac<Sha256>;

/// The format tag every envelope starts with, dot included.
pub(crate) const TAG: &str = "weir1.";
/// Length of an HMAC-SHA256 tag.
const MAC_BYTES: usize = 32;
/// Length of that tag in unpadded base64url.
const MAC_B64_LEN: usize = 43;

/// The parts of a framed envelope. Nothing in it has been decoded except
/// the MAC, and nothing is trusted until [`verify`](Self::verify) passes.
pub(crate) struct Frame<'a> {
    pub(crate) kid: Kid,
    /// `weir1.<kid>.<header_b64>.<body_b64>`: what the MAC covers.
    signed: &'a [u8],
    pub(crate) header_b64: &'a [u8],
    pub(crate) body_b64: &'a [u8],
    mac: [u8; MAC_BYTES],
}

impl<'a> Frame<'a> {
    /// Splits `raw` into its five parts and checks the key id's syntax and
    /// the MAC's encoding. Decodes nothing else.
    pub(crate) fn split(raw: &'a [u8]) -> Result<Self, EnvelopeError> {
        let rest = raw
            .strip_prefix(TAG.as_bytes())
            .ok_or(EnvelopeError::Malformed("not a weir1 envelope"))?;
        let mut parts = rest.split(|&b| b == b'.');
        let (Some(kid), Some(header_b64), Some(body_b64), Some(mac_b64), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(EnvelopeError::Malformed("not five dot-separated parts"));
        };
        if kid.len() > MAX_KID_LEN {
            return Err(EnvelopeError::Malformed("invalid key id"));
        }
        let kid = std::str::from_utf8(kid)
            .ok()
            .and_then(|s| Kid::parse(s).ok())
            .ok_or(EnvelopeError::Malformed("invalid key id"))?;
        let signed = raw
            .len()
            .checked_sub(mac_b64.len() + 1)
            .and_then(|n| raw.get(..n))
            .ok_or(EnvelopeError::Keys(Error::Internal {
                reason: "envelope framing arithmetic",
            }))?;
        Ok(Self {
            kid,
            signed,
            header_b64,
            body_b64,
            mac: decode_mac(mac_b64)?,
        })
    }

    /// Checks the MAC over the signed bytes under `secret`, in constant time.
    pub(crate) fn verify(&self, secret: &SecretBytes) -> Result<(), EnvelopeError> {
        keyed(secret)?
            .chain_update(self.signed)
            .verify_slice(&self.mac)
            .map_err(|_| EnvelopeError::BadMac)
    }
}

fn decode_mac(mac_b64: &[u8]) -> Result<[u8; MAC_BYTES], EnvelopeError> {
    const BAD: EnvelopeError = EnvelopeError::Malformed("MAC is not base64url of 32 bytes");
    if mac_b64.len() != MAC_B64_LEN {
        return Err(BAD);
    }
    // The engine refuses non-canonical trailing bits, so one MAC has one
    // spelling.
    let bytes = URL_SAFE_NO_PAD.decode(mac_b64).map_err(|_| BAD)?;
    <[u8; MAC_BYTES]>::try_from(bytes.as_slice()).map_err(|_| BAD)
}

/// Decodes one base64url part of a verified envelope.
pub(crate) fn decode_part(part: &[u8], what: &'static str) -> Result<Vec<u8>, EnvelopeError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| EnvelopeError::Malformed(what))
}

/// Length of the envelope framing `header` and `body` under `kid`, or
/// `None` on overflow.
pub(crate) fn framed_len(kid: &Kid, header: usize, body: usize) -> Option<usize> {
    let header = base64::encoded_len(header, false)?;
    let body = base64::encoded_len(body, false)?;
    TAG.len()
        .checked_add(kid.as_str().len())?
        .checked_add(1)?
        .checked_add(header)?
        .checked_add(1)?
        .checked_add(body)?
        .checked_add(1)?
        .checked_add(MAC_B64_LEN)
}

/// Frames and MACs an envelope; `len` is [`framed_len`] for these inputs.
pub(crate) fn frame(
    kid: &Kid,
    secret: &SecretBytes,
    header_json: &[u8],
    body: &[u8],
    len: usize,
) -> Result<Vec<u8>, EnvelopeError> {
    let mut out = String::with_capacity(len);
    out.push_str(TAG);
    out.push_str(kid.as_str());
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(header_json, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(body, &mut out);
    let tag = keyed(secret)?.chain_update(out.as_bytes()).finalize();
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(tag.into_bytes(), &mut out);
    Ok(out.into_bytes())
}

fn keyed(secret: &SecretBytes) -> Result<HmacSha256, EnvelopeError> {
    // HMAC takes keys of any length; this cannot fail.
    HmacSha256::new_from_slice(secret.expose()).map_err(|_| {
        EnvelopeError::Keys(Error::Internal {
            reason: "HMAC key rejected",
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretBytes {
        SecretBytes::new(vec![7; 32])
    }

    #[test]
    fn frame_then_split_verifies_and_has_the_predicted_length() {
        let kid = Kid::parse("hmac-k").unwrap();
        for body in [&b""[..], b"x", b"xy", b"xyz", &[0xff; 1000]] {
            let len = framed_len(&kid, 5, body.len()).unwrap();
            let raw = frame(&kid, &secret(), b"{\"a\"}", body, len).unwrap();
            assert_eq!(raw.len(), len);
            let f = Frame::split(&raw).unwrap();
            assert_eq!(f.kid, kid);
            f.verify(&secret()).unwrap();
            assert!(matches!(
                f.verify(&SecretBytes::new(vec![8; 32])),
                Err(EnvelopeError::BadMac)
            ));
            assert_eq!(decode_part(f.body_b64, "body").unwrap(), body);
        }
    }

    #[test]
    fn known_answer() {
        // HMAC-SHA256(key = 32 x 0x07, "weir1.k.e30.") computed independently
        // (python3 hmac): pins the MAC input to the ASCII framing.
        let raw = frame(&Kid::parse("k").unwrap(), &secret(), b"{}", b"", 0).unwrap();
        let text = String::from_utf8(raw).unwrap();
        assert!(text.starts_with("weir1.k.e30.."), "{text}");
        let mac = text.rsplit('.').next().unwrap();
        assert_eq!(mac, KNOWN_MAC);
    }

    const KNOWN_MAC: &str = "GDffwNbTlpDYCbaA8IQx8VwMDsRLc7vpSbOonmNOASc";

    #[test]
    fn framing_errors() {
        let good = frame(&Kid::parse("k").unwrap(), &secret(), b"{}", b"b", 0).unwrap();
        let good = String::from_utf8(good).unwrap();
        let mac = good.rsplit('.').next().unwrap();
        for bad in [
            String::new(),
            "weir1".into(),
            "weir2.k.e30.Yg.".to_owned() + mac,
            "WEIR1.k.e30.Yg.".to_owned() + mac,
            "weir1.k.e30.Yg".into(),
            "weir1.k.e30.Yg.".to_owned() + mac + ".",
            "weir1..e30.Yg.".to_owned() + mac,
            "weir1.k/x.e30.Yg.".to_owned() + mac,
            "weir1.ключ.e30.Yg.".to_owned() + mac,
            "weir1.k.e30.Yg.".to_owned() + &mac[1..],
            "weir1.k.e30.Yg.".to_owned() + &mac.replace(|_| true, "!"),
            format!("weir1.{}.e30.Yg.{mac}", "k".repeat(65)),
        ] {
            assert!(
                matches!(
                    Frame::split(bad.as_bytes()),
                    Err(EnvelopeError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }
}
