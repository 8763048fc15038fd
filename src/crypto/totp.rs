//! One-time codes of a second factor (SPEC §13): TOTP as RFC 6238 with the parameters every
//! authenticator app understands (SHA-1, 6 digits, 30-second steps, one step either side
//! accepted), its `otpauth://` URI and QR code, and recovery codes.
//!
//! The codes come from `totp-rs`; which step a code belongs to is worked out here, because
//! replay protection needs it (a code is accepted only for a step later than the last accepted).

use qrcode::QrCode;
use qrcode::render::svg;
use rand::RngCore;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Seconds per time step.
pub const STEP_SECS: i64 = 30;
/// 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;
/// Digits of a code.
pub const DIGITS: usize = 6;
/// How many recovery codes an account gets at a time.
pub const RECOVERY_CODES: usize = 10;

/// A fresh secret, base32 (RFC 4648, no padding: 32 characters), the form authenticator apps
/// are given and the form brama seals.
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::from(bytes).to_base32()
}

fn totp(secret_b32: &str) -> Option<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_skew(1)
        .with_step_duration(STEP_SECS as u64)
        .with_secret(Secret::try_from_base32(secret_b32).ok()?)
        .build()
        .ok()
}

/// The time step of a moment (Unix ms).
pub fn step_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000) / STEP_SECS
}

/// The code of `step`, or `None` for a secret that is not base32 of at least 128 bits.
pub fn code_at(secret_b32: &str, step: i64) -> Option<String> {
    let step = u64::try_from(step).ok()?;
    Some(
        totp(secret_b32)?
            .generate(step * STEP_SECS as u64)
            .to_string(),
    )
}

/// The step, within one of `now_ms`'s, whose code `code` is; each candidate compared in
/// constant time. Anything but six ASCII digits matches nothing.
pub fn matching_step(secret_b32: &str, code: &str, now_ms: i64) -> Option<i64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(now_ms);
    let mut found = None;
    for step in [now - 1, now, now + 1] {
        let expected = code_at(secret_b32, step)?;
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The URI an authenticator app reads from the QR code (Google Authenticator's key URI format).
pub fn otpauth_uri(issuer: &str, account: &str, secret_b32: &str) -> String {
    let enc = |s: &str| -> String { form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    // The label's parts are path segments: a space is %20 there, not +.
    let label = |s: &str| enc(s).replace('+', "%20");
    format!(
        "otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        label(issuer),
        label(account),
        label(issuer),
    )
}

/// The QR code of `text` as an SVG document, drawn by the binary (no image service).
pub fn qr_svg(text: &str) -> Option<String> {
    let code = QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<svg::Color>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
    )
}

/// Crockford's base32 alphabet: no I, L, O or U, so a code read aloud or written down survives.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A recovery code: 80 random bits as 16 Crockford base32 characters in four groups
/// (`7KQ2-M9XD-4TRB-E0HW`). 80 bits make a plain SHA-256 of it safe to store.
pub fn new_recovery_code() -> String {
    let mut bytes = [0u8; 10];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let mut bits: u128 = 0;
    for b in bytes {
        bits = (bits << 8) | u128::from(b);
    }
    let chars: Vec<u8> = (0..16)
        .rev()
        .map(|n| CROCKFORD[((bits >> (n * 5)) & 31) as usize])
        .collect();
    chars
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// A recovery code as typed, in the form that is hashed: upper case, without dashes or spaces,
/// O read as 0 and I or L as 1 (Crockford). `None` when it cannot be a recovery code.
pub fn normalize_recovery_code(typed: &str) -> Option<String> {
    let mut out = String::with_capacity(16);
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if c.is_ascii() && CROCKFORD.contains(&(c as u8)) => c,
            _ => return None,
        };
        if out.len() == 16 {
            return None;
        }
        out.push(c);
    }
    (out.len() == 16).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1: the secret "12345678901234567890", 8-digit codes; the last
    /// six digits are the 6-digit code.
    #[test]
    fn codes_are_rfc_6238s() {
        let secret = Secret::from(*b"12345678901234567890").to_base32();
        for (time, code) in [
            (59i64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(
                code_at(&secret, time / STEP_SECS).as_deref(),
                Some(&code[2..])
            );
        }
    }

    #[test]
    fn a_code_matches_its_step_and_the_ones_beside_it_only() {
        let secret = new_secret();
        assert_eq!(secret.len(), 32);
        let now_ms = 1_700_000_000_000;
        let now = step_of(now_ms);
        for step in [now - 1, now, now + 1] {
            let code = code_at(&secret, step).unwrap();
            assert_eq!(matching_step(&secret, &code, now_ms), Some(step));
        }
        for step in [now - 2, now + 2] {
            let code = code_at(&secret, step).unwrap();
            // Another step's code may collide with these by chance (1 in a million).
            if (now - 1..=now + 1).all(|s| code_at(&secret, s).unwrap() != code) {
                assert_eq!(matching_step(&secret, &code, now_ms), None);
            }
        }
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６", "12 456"] {
            assert_eq!(matching_step(&secret, bad, now_ms), None, "{bad:?}");
        }
    }

    #[test]
    fn the_uri_and_the_qr_code_carry_the_secret() {
        let uri = otpauth_uri("brama Fundacja", "anna@example.org", "JBSWY3DPEHPK3PXP");
        assert_eq!(
            uri,
            "otpauth://totp/brama%20Fundacja:anna%40example.org?secret=JBSWY3DPEHPK3PXP\
             &issuer=brama%20Fundacja&algorithm=SHA1&digits=6&period=30"
        );
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{svg}");
    }

    #[test]
    fn recovery_codes_are_80_bits_and_read_back_forgivingly() {
        let a = new_recovery_code();
        assert_eq!(a.len(), 19);
        assert_ne!(a, new_recovery_code());
        let plain = a.replace('-', "");
        assert_eq!(normalize_recovery_code(&a).as_deref(), Some(plain.as_str()));
        assert_eq!(
            normalize_recovery_code(&a.to_lowercase().replace('-', " ")).as_deref(),
            Some(plain.as_str())
        );
        assert_eq!(
            normalize_recovery_code("oiL0-0000-0000-0000").as_deref(),
            Some("0110000000000000")
        );
        for bad in [
            "",
            "7KQ2-M9XD-4TRB",
            "7KQ2-M9XD-4TRB-E0HWX",
            "7KQ2-M9XD-4TRB-E0HU",
        ] {
            assert_eq!(normalize_recovery_code(bad), None, "{bad}");
        }
    }
}
