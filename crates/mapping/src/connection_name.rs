//! The name of a connection: one rule for every place that accepts one (the configuration
//! file's `connection.name`, the API's `POST /api/connections`, the CLI's `--connection`).
//! The name appears in URL paths, Kafka topic and consumer-group names and CloudEvents
//! sources, so it is restricted to characters that need no escaping in any of them.

use std::fmt;

/// What a connection name must look like, as said in every error.
pub const CONNECTION_NAME_RULE: &str = "1 to 40 lower-case letters, digits, `-` or `_`";

/// A validated connection name: 1 to [`ConnectionName::MAX_LEN`] characters, each a lower-case
/// ASCII letter, an ASCII digit, `-` or `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConnectionName(String);

/// Why a text is not a connection name. Each variant names the field it came from (`name`
/// unless set with [`NameError::in_field`]) and says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing was given.
    #[error("{field}: expected {}, got an empty name", CONNECTION_NAME_RULE)]
    Empty {
        /// The field the name came from.
        field: &'static str,
    },
    /// A character outside the allowed set.
    #[error("{field}: expected {}, got {got:?} (with {bad:?})", CONNECTION_NAME_RULE)]
    BadCharacter {
        /// The field the name came from.
        field: &'static str,
        /// The text given.
        got: String,
        /// The first character not allowed.
        bad: char,
    },
    /// More than [`ConnectionName::MAX_LEN`] characters.
    #[error("{field}: expected {}, got {got:?} ({len} characters)", CONNECTION_NAME_RULE)]
    TooLong {
        /// The field the name came from.
        field: &'static str,
        /// The text given.
        got: String,
        /// Its length in characters.
        len: usize,
    },
}

impl NameError {
    /// The field this error names.
    pub fn field(&self) -> &'static str {
        match self {
            NameError::Empty { field } | NameError::BadCharacter { field, .. } | NameError::TooLong { field, .. } => {
                field
            }
        }
    }

    /// The same error, naming `field` instead (`connection.name`, `--connection`).
    pub fn in_field(mut self, name: &'static str) -> Self {
        match &mut self {
            NameError::Empty { field } | NameError::BadCharacter { field, .. } | NameError::TooLong { field, .. } => {
                *field = name
            }
        }
        self
    }
}

impl ConnectionName {
    /// The longest name accepted, in characters.
    pub const MAX_LEN: usize = 40;

    /// Whether `c` may appear in a connection name.
    pub fn is_allowed_char(c: char) -> bool {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
    }

    /// Parse a connection name; the error names the field `name`.
    pub fn parse(s: &str) -> Result<ConnectionName, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty { field: "name" });
        }
        if let Some(bad) = s.chars().find(|&c| !Self::is_allowed_char(c)) {
            return Err(NameError::BadCharacter {
                field: "name",
                got: s.to_string(),
                bad,
            });
        }
        // Only ASCII is left, so bytes are characters.
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong {
                field: "name",
                got: s.to_string(),
                len: s.len(),
            });
        }
        Ok(ConnectionName(s.to_string()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ConnectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ConnectionName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ConnectionName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConnectionName::parse(s)
    }
}

impl TryFrom<String> for ConnectionName {
    type Error = NameError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        ConnectionName::parse(&s)
    }
}

impl From<ConnectionName> for String {
    fn from(n: ConnectionName) -> String {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The rule studio's API enforced before: a lower-case letter first, at most 40.
    fn studio_rule(name: &str) -> bool {
        let mut chars = name.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
            && name.len() <= 40
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    }

    #[test]
    fn names_used_today_are_accepted() {
        for ok in [
            "demo",
            "prod",
            "second",
            "edge",
            "n",
            "rm",
            "x",
            "eu-west_2",
            "2nd",
            "-x",
            "_x",
        ] {
            assert_eq!(ConnectionName::parse(ok).unwrap().as_str(), ok);
        }
        assert!(ConnectionName::parse(&"a".repeat(40)).is_ok());
    }

    #[test]
    fn each_kind_of_bad_name_is_refused_with_the_field_and_the_rule() {
        assert_eq!(ConnectionName::parse(""), Err(NameError::Empty { field: "name" }));
        assert_eq!(
            ConnectionName::parse("Bad Name"),
            Err(NameError::BadCharacter {
                field: "name",
                got: "Bad Name".into(),
                bad: 'B'
            })
        );
        assert_eq!(
            ConnectionName::parse("prod.eu"),
            Err(NameError::BadCharacter {
                field: "name",
                got: "prod.eu".into(),
                bad: '.'
            })
        );
        assert_eq!(
            ConnectionName::parse(&"a".repeat(41)),
            Err(NameError::TooLong {
                field: "name",
                got: "a".repeat(41),
                len: 41
            })
        );
        let e = ConnectionName::parse("Bad Name")
            .unwrap_err()
            .in_field("connection.name");
        assert_eq!(e.field(), "connection.name");
        assert_eq!(
            e.to_string(),
            "connection.name: expected 1 to 40 lower-case letters, digits, `-` or `_`, got \"Bad Name\" (with 'B')"
        );
        assert_eq!(
            ConnectionName::parse("").unwrap_err().to_string(),
            "name: expected 1 to 40 lower-case letters, digits, `-` or `_`, got an empty name"
        );
    }

    #[test]
    fn serde_goes_through_parse() {
        let n: ConnectionName = serde_json::from_str("\"prod\"").unwrap();
        assert_eq!(n.to_string(), "prod");
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"prod\"");
        let e = serde_json::from_str::<ConnectionName>("\"Prod\"")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("name: expected 1 to 40 lower-case letters"), "{e}");
    }

    proptest! {
        #[test]
        fn accepted_names_round_trip(s in "[a-z0-9_-]{1,40}") {
            let n = ConnectionName::parse(&s).unwrap();
            prop_assert_eq!(n.as_str(), s.as_str());
            prop_assert_eq!(n.to_string(), s.clone());
            prop_assert_eq!(AsRef::<str>::as_ref(&n), s.as_str());
            prop_assert_eq!(s.parse::<ConnectionName>().unwrap(), n.clone());
            let json = serde_json::to_string(&n).unwrap();
            prop_assert_eq!(serde_json::from_str::<ConnectionName>(&json).unwrap(), n);
        }

        #[test]
        fn every_name_studio_accepted_is_still_accepted(s in "[a-z][a-z0-9_-]{0,39}") {
            prop_assert!(studio_rule(&s));
            prop_assert!(ConnectionName::parse(&s).is_ok());
        }

        #[test]
        fn rejected_inputs_name_the_field_and_the_expected_form(
            s in prop_oneof![any::<String>(), "[a-zA-Z0-9_. -]{0,45}", "[a-z0-9_-]{38,42}"]
        ) {
            let allowed = !s.is_empty() && s.len() <= 40 && s.chars().all(ConnectionName::is_allowed_char);
            match ConnectionName::parse(&s) {
                Ok(n) => {
                    prop_assert!(allowed, "accepted {:?}", s);
                    prop_assert_eq!(n.as_str(), s.as_str());
                }
                Err(e) => {
                    prop_assert!(!allowed, "refused {:?}: {}", s, e);
                    let e = e.in_field("connection.name");
                    let msg = e.to_string();
                    prop_assert!(msg.starts_with("connection.name: expected "), "{}", msg);
                    prop_assert!(msg.contains(CONNECTION_NAME_RULE), "{}", msg);
                }
            }
        }
    }
}
