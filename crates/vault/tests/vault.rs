//! Tests of the vault crate through its public API.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use proptest::prelude::*;
use vault::{Key, KeySource, Vault, VaultError};

const AAD: &str = "connection/demo/ionapi";

fn vault() -> Vault {
    Vault::new(Key::generate(), Vec::new())
}

/// Splits a sealed value into its key id and decoded data.
fn parts(sealed: &str) -> (String, Vec<u8>) {
    let rest = sealed.strip_prefix("v1:").expect("v1 prefix");
    let (id, data) = rest.split_once(':').expect("key id separator");
    (
        id.to_string(),
        URL_SAFE_NO_PAD.decode(data).expect("URL-safe base64 without padding"),
    )
}

fn join(id: &str, data: &[u8]) -> String {
    format!("v1:{id}:{}", URL_SAFE_NO_PAD.encode(data))
}

#[test]
fn round_trip() {
    let vault = vault();
    let sealed = vault.seal(b"client secret", AAD);
    assert_eq!(vault.open(&sealed, AAD).unwrap(), b"client secret");
    assert_eq!(vault.open_string(&sealed, AAD).unwrap(), "client secret");
    let empty = vault.seal(b"", AAD);
    assert_eq!(vault.open(&empty, AAD).unwrap(), b"");
}

#[test]
fn sealed_format_is_v1_key_id_nonce_ciphertext_tag() {
    let vault = vault();
    let sealed = vault.seal(b"password", AAD);
    assert!(!sealed.contains("password"));
    let (id, data) = parts(&sealed);
    assert_eq!(id, vault.key_id());
    assert_eq!(data.len(), 24 + b"password".len() + 16);
    assert!(!sealed.contains('='), "no padding: {sealed}");
}

#[test]
fn wrong_aad_fails() {
    let vault = vault();
    let sealed = vault.seal(b"secret", "connection/demo/ionapi");
    let err = vault.open(&sealed, "connection/other/ionapi").unwrap_err();
    assert!(matches!(err, VaultError::Decrypt), "{err:?}");
    assert_eq!(err.to_string(), "cannot decrypt: wrong key or tampered value");
}

#[test]
fn tampered_ciphertext_fails() {
    let vault = vault();
    let sealed = vault.seal(b"secret value", AAD);
    let (id, data) = parts(&sealed);
    // Flip one bit in the nonce, in the ciphertext and in the tag.
    for index in [0, 24, data.len() - 1] {
        let mut tampered = data.clone();
        tampered[index] ^= 0x01;
        let err = vault.open(&join(&id, &tampered), AAD).unwrap_err();
        assert!(matches!(err, VaultError::Decrypt), "byte {index}: {err:?}");
    }
    // Truncated data.
    let err = vault.open(&join(&id, &data[..data.len() - 1]), AAD).unwrap_err();
    assert!(matches!(err, VaultError::Decrypt), "{err:?}");
}

#[test]
fn wrong_key_with_same_id_fails() {
    let vault = vault();
    let sealed = vault.seal(b"secret", AAD);
    let (_, data) = parts(&sealed);
    let other = Vault::new(Key::generate(), Vec::new());
    let err = other.open(&join(&other.key_id(), &data), AAD).unwrap_err();
    assert!(matches!(err, VaultError::Decrypt), "{err:?}");
}

#[test]
fn rotation_opens_old_values_and_reseals_them() {
    let old = Key::generate();
    let new = Key::generate();
    let old_vault = Vault::new(old.clone(), Vec::new());
    let sealed = old_vault.seal(b"webhook password", AAD);
    assert!(!old_vault.is_stale(&sealed));

    let vault = Vault::new(new.clone(), vec![old.clone()]);
    assert_eq!(vault.key_id(), new.id());
    assert_eq!(vault.open(&sealed, AAD).unwrap(), b"webhook password");
    assert!(vault.is_stale(&sealed));

    let resealed = vault.reseal(&sealed, AAD).unwrap();
    assert!(!vault.is_stale(&resealed));
    assert!(resealed.starts_with(&format!("v1:{}:", new.id())), "{resealed}");
    // The resealed value no longer needs the old key.
    let new_only = Vault::new(new, Vec::new());
    assert_eq!(new_only.open_string(&resealed, AAD).unwrap(), "webhook password");
    // Resealing keeps the value bound to its place.
    assert!(matches!(
        vault.open(&resealed, "connection/other/ionapi"),
        Err(VaultError::Decrypt)
    ));
    // Resealing with the wrong place fails rather than rebinding the value.
    assert!(matches!(
        vault.reseal(&sealed, "connection/other/ionapi"),
        Err(VaultError::Decrypt)
    ));
}

#[test]
fn unknown_key_id_error_names_the_id() {
    let old = Key::generate();
    let sealed = Vault::new(old.clone(), Vec::new()).seal(b"secret", AAD);
    let vault = vault();
    assert!(vault.is_stale(&sealed));
    let err = vault.open(&sealed, AAD).unwrap_err();
    match &err {
        VaultError::UnknownKey { key_id } => assert_eq!(key_id, &old.id()),
        other => panic!("expected UnknownKey, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&old.id()), "{message}");
    assert!(message.contains("ERP_BRIDGE_PREVIOUS_KEYS"), "{message}");
    assert!(matches!(vault.reseal(&sealed, AAD), Err(VaultError::UnknownKey { .. })));
}

#[test]
fn two_seals_of_the_same_plaintext_differ() {
    let vault = vault();
    let a = vault.seal(b"same", AAD);
    let b = vault.seal(b"same", AAD);
    assert_ne!(a, b);
    assert_ne!(parts(&a).1[..24], parts(&b).1[..24], "nonces must differ");
    assert_eq!(vault.open(&a, AAD).unwrap(), vault.open(&b, AAD).unwrap());
}

#[test]
fn malformed_values_are_rejected_without_echoing_them() {
    let vault = vault();
    let id = vault.key_id();
    let cases = [
        "hunter2-plaintext".to_string(),
        "v2:00000000:AAAA".to_string(),
        "v1:hunter2-plaintext".to_string(),
        "v1:HUNTER2X:AAAA".to_string(),
        format!("v1:{id}:hunter2+plaintext/"),
        format!("v1:{id}:{}", URL_SAFE_NO_PAD.encode([0u8; 39])),
    ];
    for case in &cases {
        let err = vault.open(case, AAD).unwrap_err();
        assert!(matches!(err, VaultError::Malformed { .. }), "{case}: {err:?}");
        let message = err.to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(!format!("{err:?}").contains("hunter2"));
        assert!(!vault.is_stale(case), "{case}");
    }
}

#[test]
fn open_string_rejects_non_utf8() {
    let vault = vault();
    let sealed = vault.seal(&[0xff, 0xfe], AAD);
    assert_eq!(vault.open(&sealed, AAD).unwrap(), [0xff, 0xfe]);
    assert!(matches!(
        vault.open_string(&sealed, AAD),
        Err(VaultError::Malformed { .. })
    ));
}

#[test]
fn key_text_is_lowercase_hex_and_parses_back() {
    let key = Key::generate();
    let text = key.to_text();
    assert_eq!(text.len(), 64);
    assert!(text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')), "{text}");
    let id = key.id();
    assert_eq!(id.len(), 8);
    assert!(id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')), "{id}");
    assert_eq!(Key::parse(&text).unwrap().to_text(), text);
    assert_eq!(
        Key::parse(&format!("  {}\n", text.to_uppercase())).unwrap().to_text(),
        text
    );
    assert_ne!(Key::generate().to_text(), text);
}

#[test]
fn key_id_is_sha256_prefix() {
    // SHA-256 of 32 zero bytes is 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925.
    let key = Key::parse(&"00".repeat(32)).unwrap();
    assert_eq!(key.id(), "66687aad");
}

#[test]
fn key_parse_accepts_base64() {
    let bytes: Vec<u8> = (0u8..32).collect();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let padded = STANDARD.encode(&bytes);
    assert!(padded.ends_with('='));
    assert_eq!(Key::parse(&padded).unwrap().to_text(), hex);
    assert_eq!(Key::parse(&format!("\t{padded} \n")).unwrap().to_text(), hex);
    assert_eq!(Key::parse(padded.trim_end_matches('=')).unwrap().to_text(), hex);
}

#[test]
fn key_parse_rejects_wrong_lengths_and_garbage_without_echoing() {
    let short_hex = "ab".repeat(31);
    let short_base64 = STANDARD.encode([7u8; 31]);
    let long_hex = "cd".repeat(33);
    let garbage = "hunter2 is my password!".to_string();
    let cases = [
        (short_hex.as_str(), "62 hex digits"),
        (short_base64.as_str(), "31 bytes of base64"),
        (long_hex.as_str(), "66 hex digits"),
        (garbage.as_str(), "neither hex nor base64"),
        ("   ", "an empty value"),
    ];
    for (input, described) in cases {
        let err = Key::parse(input).unwrap_err();
        assert!(matches!(err, VaultError::InvalidKey { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("expected 32 bytes as 64 hex digits or base64, got"),
            "{message}"
        );
        assert!(message.contains(described), "{message}");
        if !input.trim().is_empty() {
            assert!(!message.contains(input.trim()), "{message}");
            assert!(!format!("{err:?}").contains(input.trim()));
        }
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[test]
fn debug_shows_key_ids_only() {
    let old = Key::generate();
    let new = Key::generate();
    let vault = Vault::new(new.clone(), vec![old.clone()]);
    let key_debug = format!("{new:?}");
    let vault_debug = format!("{vault:?}");
    assert!(key_debug.contains(&new.id()), "{key_debug}");
    assert!(
        vault_debug.contains(&new.id()) && vault_debug.contains(&old.id()),
        "{vault_debug}"
    );
    for key in [&old, &new] {
        let text = key.to_text();
        let base64 = STANDARD.encode(hex_bytes(&text));
        for debug in [&key_debug, &vault_debug, &format!("{vault:#?}")] {
            assert!(!debug.contains(&text[..16]), "{debug}");
            assert!(!debug.contains(&base64[..16]), "{debug}");
        }
    }
    let cloned = vault.clone();
    assert_eq!(cloned.key_id(), vault.key_id());
}

fn hex_bytes(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn load_or_create_generates_then_reads_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("nested/dir/vault.key");

    let (first, source) = Vault::load_or_create(None, &key_file, &[]).unwrap();
    assert_eq!(source, KeySource::Generated(key_file.clone()));
    let text = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(Key::parse(&text).unwrap().id(), first.key_id());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let sealed = first.seal(b"mdp password", AAD);

    let (second, source) = Vault::load_or_create(None, &key_file, &[]).unwrap();
    assert_eq!(source, KeySource::File(key_file.clone()));
    assert_eq!(second.key_id(), first.key_id());
    assert_eq!(second.open(&sealed, AAD).unwrap(), b"mdp password");
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        text,
        "the key file is not rewritten"
    );
}

#[test]
fn load_or_create_prefers_the_environment_and_parses_previous_keys() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("vault.key");
    let current = Key::generate();
    let old = Key::generate();
    let sealed = Vault::new(old.clone(), Vec::new()).seal(b"secret", AAD);

    let previous = vec![String::new(), STANDARD.encode(hex_bytes(&old.to_text()))];
    let (vault, source) = Vault::load_or_create(Some(&current.to_text()), &key_file, &previous).unwrap();
    assert_eq!(source, KeySource::Env);
    assert_eq!(vault.key_id(), current.id());
    assert!(
        !key_file.exists(),
        "no key file is written when the key comes from the environment"
    );
    assert_eq!(vault.open(&sealed, AAD).unwrap(), b"secret");
    assert!(vault.is_stale(&sealed));
}

#[test]
fn load_or_create_reports_invalid_keys_without_echoing_them() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("vault.key");

    let err = Vault::load_or_create(Some("hunter2"), &key_file, &[]).unwrap_err();
    assert!(matches!(err, VaultError::InvalidKey { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!key_file.exists());

    let previous = vec![Key::generate().to_text(), "hunter2".to_string()];
    let err = Vault::load_or_create(None, &key_file, &previous).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("previous key #2"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    std::fs::write(&key_file, "hunter2\n").unwrap();
    let err = Vault::load_or_create(None, &key_file, &[]).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("vault.key"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn load_or_create_reports_io_errors_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // The key file's "parent directory" is a regular file, so it cannot be created.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let key_file = blocker.join("vault.key");
    let err = Vault::load_or_create(None, &key_file, &[]).unwrap_err();
    match &err {
        VaultError::Io { path, .. } => assert!(path.starts_with(&blocker), "{path:?}"),
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trips_arbitrary_bytes_and_aad(
        plaintext in proptest::collection::vec(any::<u8>(), 0..512),
        aad in ".{0,40}",
        other_aad in ".{0,40}",
    ) {
        let vault = Vault::new(Key::generate(), Vec::new());
        let sealed = vault.seal(&plaintext, &aad);
        prop_assert_eq!(vault.open(&sealed, &aad).unwrap(), plaintext);
        if other_aad != aad {
            prop_assert!(matches!(vault.open(&sealed, &other_aad), Err(VaultError::Decrypt)));
        }
    }
}
