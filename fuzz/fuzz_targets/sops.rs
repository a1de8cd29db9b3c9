//! The SOPS file reader (YAML, JSON and dotenv vault files): whatever the bytes, parsing returns, and a
//! file that parses but was not encrypted with this data key is refused, never half-decrypted.
#![no_main]

use kdeploy::vault::cipher::DataKey;
use kdeploy::vault::sops::{Format, decrypt, parse_encrypted, parse_plaintext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let format = match selector % 3 {
        0 => Format::Yaml,
        1 => Format::Json,
        _ => Format::Dotenv,
    };
    let _ = parse_plaintext(text, format);
    if let Ok(file) = parse_encrypted(text, format) {
        let key = DataKey::from_bytes(&[7u8; 32]).expect("32 bytes");
        let _ = decrypt(&file, &key);
    }
});
