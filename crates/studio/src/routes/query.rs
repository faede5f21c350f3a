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

/// Query parameters deserialised into `T`, with every parameter given at most once: a repeated
/// one (`?status=20&status=50`) is refused with a 400 naming it, the same way on every route,
/// instead of one of its values being taken silently.
pub(crate) struct UniqueQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for UniqueQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, ApiError> {
        refuse_repeated(parts.uri.query())?;
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(t)| UniqueQuery(t))
            .map_err(|e| ApiError::BadRequest(format!("query: {}", e.body_text())))
    }
}

/// 400 naming the first query parameter given more than once.
pub(crate) fn refuse_repeated(query: Option<&str>) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::new();
    for (name, _) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !seen.insert(name.clone()) {
            return Err(ApiError::BadRequest(format!(
                "query parameter `{name}`: given more than once; give each parameter once"
            )));
        }
    }
    Ok(())
}
