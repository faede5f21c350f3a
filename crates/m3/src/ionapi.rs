//! The `.ionapi` credentials file from Infor's "Authorized Apps", parsed and checked key by key.

use serde_json::Value;

use crate::secret::Secret;

/// A usable `.ionapi` file of a "Backend Service" app (with a service account).
#[derive(Debug, Clone)]
pub struct IonApi {
    /// Tenant id (`ti`).
    pub tenant: String,
    /// Application name (`cn`).
    pub app_name: String,
    /// OAuth2 client id (`ci`).
    pub client_id: String,
    /// OAuth2 client secret (`cs`).
    pub client_secret: Secret,
    /// ION API gateway base URL (`iu`), without trailing slash.
    pub gateway_url: String,
    /// Authorization server base URL (`pu`), with trailing slash.
    pub auth_url: String,
    /// Token path appended to `pu` (`ot`).
    pub token_path: String,
    /// Revoke path appended to `pu` (`or`).
    pub revoke_path: String,
    /// Service account access key (`saak`).
    pub saak: String,
    /// Service account secret key (`sask`).
    pub sask: Secret,
}

/// Why an `.ionapi` file cannot be used. Each variant names the key and what was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IonApiError {
    #[error(".ionapi file: not valid JSON at line {line} column {column}: {message}")]
    NotJson {
        line: usize,
        column: usize,
        message: String,
    },
    #[error(".ionapi file: expected a JSON object with keys ti, ci, cs, iu, pu, ot, saak, sask")]
    NotAnObject,
    #[error(".ionapi file: key `{key}` ({meaning}) is missing{hint}")]
    Missing {
        key: &'static str,
        meaning: &'static str,
        hint: &'static str,
    },
    #[error(".ionapi file: key `{key}` ({meaning}): expected {expected}")]
    Invalid {
        key: &'static str,
        meaning: &'static str,
        expected: String,
    },
}

const SERVICE_ACCOUNT_HINT: &str = ": a backend connector needs a service account; in ION API \"Authorized Apps\" create a \"Backend Service\" app, then \"Create Service Account\" and download its credentials";

impl IonApi {
    /// Parse the text of an `.ionapi` file. Unknown keys (`ev`, `v`, `dt`, `ru`, ...) are accepted.
    pub fn parse(text: &str) -> Result<Self, IonApiError> {
        let v: Value = serde_json::from_str(text).map_err(|e| IonApiError::NotJson {
            line: e.line(),
            column: e.column(),
            message: e.to_string().split(" at line").next().unwrap_or_default().to_string(),
        })?;
        let obj = v.as_object().ok_or(IonApiError::NotAnObject)?;
        let get = |key: &'static str, meaning: &'static str, hint: &'static str| -> Result<String, IonApiError> {
            match obj.get(key) {
                None | Some(Value::Null) => Err(IonApiError::Missing { key, meaning, hint }),
                Some(Value::String(s)) if s.trim().is_empty() => Err(IonApiError::Invalid {
                    key,
                    meaning,
                    expected: "a non-empty string".into(),
                }),
                Some(Value::String(s)) => Ok(s.trim().to_string()),
                Some(other) => Err(IonApiError::Invalid {
                    key,
                    meaning,
                    expected: format!("a string, got {}", json_kind(other)),
                }),
            }
        };
        let url = |key: &'static str, meaning: &'static str| -> Result<String, IonApiError> {
            let s = get(key, meaning, "")?;
            match url::Url::parse(&s) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(s),
                _ => Err(IonApiError::Invalid {
                    key,
                    meaning,
                    expected: format!("an absolute http(s) URL, got {s:?}"),
                }),
            }
        };
        let tenant = get("ti", "tenant id", "")?;
        let saak = get("saak", "service account access key", SERVICE_ACCOUNT_HINT)?;
        let sask = get("sask", "service account secret key", SERVICE_ACCOUNT_HINT)?;
        if !saak.starts_with(&format!("{tenant}#")) {
            return Err(IonApiError::Invalid {
                key: "saak",
                meaning: "service account access key",
                expected: format!("a key starting with the tenant id `{tenant}#`"),
            });
        }
        let mut auth_url = url("pu", "authorization server URL")?;
        if !auth_url.ends_with('/') {
            auth_url.push('/');
        }
        Ok(Self {
            app_name: get("cn", "application name", "").unwrap_or_default(),
            client_id: get("ci", "client id", "")?,
            client_secret: Secret::new(get("cs", "client secret", "")?),
            gateway_url: url("iu", "ION API gateway URL")?.trim_end_matches('/').to_string(),
            auth_url,
            token_path: get("ot", "token path", "")?,
            revoke_path: get("or", "revoke path", "").unwrap_or_else(|_| "revoke_token.oauth2".into()),
            tenant,
            saak,
            sask: Secret::new(sask),
        })
    }

    /// `{pu}{ot}`.
    pub fn token_url(&self) -> String {
        format!("{}{}", self.auth_url, self.token_path)
    }

    /// `{iu}/{ti}/M3/m3api-rest`.
    pub fn mi_base(&self) -> String {
        format!("{}/{}/M3/m3api-rest", self.gateway_url, self.tenant)
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> serde_json::Value {
        serde_json::json!({
            "ti": "ACME_PRD", "cn": "erp-bridge", "ci": "ACME_PRD~abc", "cs": "s3cret",
            "iu": "https://mingle-ionapi.example.com", "pu": "https://mingle-sso.example.com:443/ACME_PRD/as/",
            "oa": "authorization.oauth2", "ot": "token.oauth2", "or": "revoke_token.oauth2",
            "saak": "ACME_PRD#xyz", "sask": "topsecret", "ev": "U1", "v": "1.0"
        })
    }

    #[test]
    fn a_backend_service_file_parses_and_hides_its_secrets() {
        let ion = IonApi::parse(&good().to_string()).unwrap();
        assert_eq!(
            ion.token_url(),
            "https://mingle-sso.example.com:443/ACME_PRD/as/token.oauth2"
        );
        assert_eq!(
            ion.mi_base(),
            "https://mingle-ionapi.example.com/ACME_PRD/M3/m3api-rest"
        );
        let dbg = format!("{ion:?}");
        assert!(!dbg.contains("s3cret") && !dbg.contains("topsecret"), "{dbg}");
    }

    #[test]
    fn a_file_without_saak_is_rejected_naming_the_key() {
        let mut v = good();
        v.as_object_mut().unwrap().remove("saak");
        let err = IonApi::parse(&v.to_string()).unwrap_err().to_string();
        assert!(
            err.starts_with(".ionapi file: key `saak` (service account access key) is missing"),
            "{err}"
        );
        assert!(err.contains("Create Service Account"), "{err}");
    }

    #[test]
    fn wrong_types_bad_urls_and_bad_json_are_named() {
        let mut v = good();
        v["ci"] = serde_json::json!(42);
        assert_eq!(
            IonApi::parse(&v.to_string()).unwrap_err().to_string(),
            ".ionapi file: key `ci` (client id): expected a string, got a number"
        );
        let mut v = good();
        v["pu"] = serde_json::json!("not a url");
        assert!(IonApi::parse(&v.to_string())
            .unwrap_err()
            .to_string()
            .contains("key `pu`"));
        let mut v = good();
        v["saak"] = serde_json::json!("OTHER#x");
        assert!(IonApi::parse(&v.to_string())
            .unwrap_err()
            .to_string()
            .contains("`ACME_PRD#`"));
        assert!(matches!(
            IonApi::parse("{\"ti\": "),
            Err(IonApiError::NotJson { line: 1, .. })
        ));
        assert_eq!(IonApi::parse("[]").unwrap_err(), IonApiError::NotAnObject);
    }
}
