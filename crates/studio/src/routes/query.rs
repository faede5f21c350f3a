//! Query parameters shared by the listing routes (message log, dead letters, read models):
//! parsed with an error that names the parameter and what was expected.

use crate::error::ApiError;

/// `v` parsed as a `T`, `default` when absent.
pub(super) fn parse_param<T: std::str::FromStr>(
    name: &str,
    v: Option<&str>,
    default: T,
    expected: &str,
) -> Result<T, ApiError> {
    match v {
        None => Ok(default),
        Some(s) => s
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("query parameter `{name}`: expected {expected}, got {s:?}"))),
    }
}

/// The `limit` parameter: 1 to 1000, 100 when absent.
pub(super) fn parse_limit(v: Option<&str>) -> Result<u32, ApiError> {
    let limit: u32 = parse_param("limit", v, 100, "an integer from 1 to 1000")?;
    if (1..=1000).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest(format!(
            "query parameter `limit`: expected an integer from 1 to 1000, got {limit}"
        )))
    }
}
