//! The M3 client: OAuth2 password grant with token caching and refresh, MI REST v2 calls and
//! `EXPORTMI/Select`, mapping every failure to an [`M3Error`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;
use tokio::sync::Mutex;
use tracing::{debug, instrument};

use crate::error::M3Error;
use crate::ionapi::IonApi;

/// One MI output record: field name -> trimmed value.
pub type Record = BTreeMap<String, String>;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Timeout of one HTTP request (the gateway gives up after 60 s).
    pub timeout: Duration,
    /// Company to run transactions in (`cono`); the user's default company when `None`.
    pub company: Option<u32>,
    /// An on-premises Metadata Publisher with its own URL and HTTP Basic credentials; `None`
    /// reads MDP through the ION API gateway with the OAuth2 token.
    pub mdp: Option<MdpEndpoint>,
}

/// A Metadata Publisher reached directly (on-premises), not through the gateway.
#[derive(Debug, Clone)]
pub struct MdpEndpoint {
    /// Base URL up to and including `/mdprest` (e.g. `https://m3.example.com/m3/mdprest`).
    pub url: url::Url,
    /// HTTP Basic user.
    pub username: String,
    /// HTTP Basic password.
    pub password: crate::Secret,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(65),
            company: None,
            mdp: None,
        }
    }
}

#[derive(Debug)]
struct Token {
    access: String,
    refresh: Option<String>,
    expires: Instant,
}

/// A client for one M3 instance, authenticated with one `.ionapi` file. Cheap to share by `Arc`.
#[derive(Debug)]
pub struct M3Client {
    http: reqwest::Client,
    ion: IonApi,
    opts: ClientOptions,
    token: Mutex<Option<Token>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2Answer {
    #[serde(default)]
    results: Vec<V2Result>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2Result {
    #[serde(default)]
    records: Vec<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_field: Option<String>,
}

impl M3Client {
    /// A client for the M3 the `.ionapi` file points at.
    pub fn new(ion: IonApi, opts: ClientOptions) -> Result<Self, M3Error> {
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(Duration::from_secs(10))
            // A redirect is answered as what it is (an HTTP status), never followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| M3Error::NotSent(e.to_string()))?;
        Ok(Self {
            http,
            ion,
            opts,
            token: Mutex::new(None),
        })
    }

    /// The credentials in use.
    pub fn ionapi(&self) -> &IonApi {
        &self.ion
    }

    /// A valid access token: cached, refreshed a minute before it expires.
    #[instrument(skip_all, fields(tenant = %self.ion.tenant))]
    pub async fn access_token(&self) -> Result<String, M3Error> {
        let mut guard = self.token.lock().await;
        if let Some(t) = guard.as_ref() {
            if t.expires > Instant::now() + Duration::from_secs(60) {
                return Ok(t.access.clone());
            }
        }
        let refresh = guard.as_ref().and_then(|t| t.refresh.clone());
        let fresh = match refresh {
            Some(r) => match self
                .grant(&[("grant_type", "refresh_token"), ("refresh_token", &r)])
                .await
            {
                Ok(t) => t,
                Err(_) => self.password_grant().await?,
            },
            None => self.password_grant().await?,
        };
        let access = fresh.access.clone();
        *guard = Some(fresh);
        Ok(access)
    }

    async fn password_grant(&self) -> Result<Token, M3Error> {
        self.grant(&[
            ("grant_type", "password"),
            ("username", &self.ion.saak),
            ("password", self.ion.sask.expose()),
        ])
        .await
    }

    async fn grant(&self, form: &[(&str, &str)]) -> Result<Token, M3Error> {
        let url = self.ion.token_url();
        let resp = self
            .http
            .post(&url)
            .basic_auth(&self.ion.client_id, Some(self.ion.client_secret.expose()))
            .form(form)
            .send()
            .await
            .map_err(|e| M3Error::NotSent(format!("token endpoint {url}: {}", without_url(&e))))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| M3Error::NotSent(without_url(&e)))?;
        if !status.is_success() {
            return Err(match serde_json::from_str::<OAuthError>(&body) {
                Ok(e) => M3Error::Authentication {
                    error: e.error,
                    description: e.error_description,
                },
                Err(_) => M3Error::Http {
                    status: status.as_u16(),
                    path: url,
                    body: truncate(&body),
                },
            });
        }
        let t: TokenAnswer = serde_json::from_str(&body).map_err(|e| M3Error::Decode {
            path: url,
            detail: e.to_string(),
        })?;
        debug!(expires_in = ?t.expires_in, "token granted");
        Ok(Token {
            access: t.access_token,
            refresh: t.refresh_token,
            expires: Instant::now() + Duration::from_secs(t.expires_in.unwrap_or(3600)),
        })
    }

    /// Run one MI transaction over REST v2 and return its records (values trimmed).
    /// A `ServerReturnedNOK` answer becomes [`M3Error::Nok`].
    #[instrument(skip_all, fields(program, transaction))]
    pub async fn execute(
        &self,
        program: &str,
        transaction: &str,
        inputs: &[(&str, &str)],
        maxrecs: u32,
    ) -> Result<Vec<Record>, M3Error> {
        let path = format!("/v2/execute/{program}/{transaction}");
        let url = format!("{}{}", self.ion.mi_base(), path);
        let mut query: Vec<(String, String)> = inputs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        query.push(("maxrecs".into(), maxrecs.to_string()));
        if let Some(c) = self.opts.company {
            query.push(("cono".into(), c.to_string()));
        }
        let body = self.get_with_token(&url, &path, &query).await?;
        let answer: V2Answer = serde_json::from_str(&body).map_err(|e| M3Error::Decode {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let result = answer.results.into_iter().next().ok_or_else(|| M3Error::Decode {
            path: path.clone(),
            detail: "no `results`".into(),
        })?;
        if let Some(message) = result.error_message {
            return Err(M3Error::Nok {
                program: program.into(),
                transaction: transaction.into(),
                code: result.error_code.unwrap_or_default().trim().to_string(),
                field: result
                    .error_field
                    .map(|f| f.trim().to_string())
                    .filter(|f| !f.is_empty()),
                message: message.trim().to_string(),
            });
        }
        Ok(result
            .records
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|(k, v)| {
                        let s = match v {
                            serde_json::Value::String(s) => s.trim_end().to_string(),
                            other => other.to_string(),
                        };
                        (k, s)
                    })
                    .collect()
            })
            .collect())
    }

    /// Run an `EXPORTMI/Select` query and split each `REPL` row on `separator`.
    /// Every row must have `columns` values; a row that does not (a value containing the
    /// separator) is an error naming the row, never silently mis-split.
    #[instrument(skip_all, fields(columns))]
    pub async fn export_select(
        &self,
        query: &str,
        separator: char,
        columns: usize,
        maxrecs: u32,
    ) -> Result<Vec<Vec<String>>, M3Error> {
        let sep = separator.to_string();
        let records = self
            .execute("EXPORTMI", "Select", &[("QERY", query), ("SEPC", &sep)], maxrecs)
            .await?;
        split_export(records, separator, columns)
    }

    pub(crate) async fn get_with_token(
        &self,
        url: &str,
        path: &str,
        query: &[(String, String)],
    ) -> Result<String, M3Error> {
        for attempt in 0..2 {
            // Without a token the call is never sent, whatever failed at the token endpoint.
            let token = self.access_token().await.map_err(|e| match e {
                e if e.may_have_run() => M3Error::NotSent(e.to_string()),
                e => e,
            })?;
            let resp = self
                .http
                .get(url)
                .bearer_auth(&token)
                .query(query)
                .send()
                .await
                .map_err(|e| {
                    // A failed connection means nothing was sent; anything later may have run.
                    let text = format!("{path}: {}", without_url(&e));
                    if e.is_connect() {
                        M3Error::NotSent(text)
                    } else {
                        M3Error::Unreachable(text)
                    }
                })?;
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = resp.text().await.map_err(|e| M3Error::Unreachable(without_url(&e)))?;
            match status {
                s if s.is_success() => return Ok(body),
                StatusCode::UNAUTHORIZED if attempt == 0 => {
                    // Expired or revoked: drop the cached token and try once more.
                    *self.token.lock().await = None;
                    continue;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(M3Error::NotAuthorised {
                        status: status.as_u16(),
                        path: path.into(),
                    })
                }
                StatusCode::TOO_MANY_REQUESTS => return Err(M3Error::Throttled { retry_after }),
                _ => {
                    return Err(M3Error::Http {
                        status: status.as_u16(),
                        path: path.into(),
                        body: truncate(&body),
                    })
                }
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// The on-premises MDP endpoint, when one is configured.
    pub fn mdp_endpoint(&self) -> Option<&MdpEndpoint> {
        self.opts.mdp.as_ref()
    }

    /// GET with HTTP Basic credentials (on-premises MDP), mapped to the same errors.
    pub(crate) async fn get_with_basic(
        &self,
        url: &str,
        path: &str,
        user: &str,
        password: &crate::Secret,
        query: &[(String, String)],
    ) -> Result<String, M3Error> {
        let resp = self
            .http
            .get(url)
            .basic_auth(user, Some(password.expose()))
            .query(query)
            .send()
            .await
            .map_err(|e| M3Error::Unreachable(format!("{path}: {}", without_url(&e))))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| M3Error::Unreachable(without_url(&e)))?;
        match status {
            s if s.is_success() => Ok(body),
            StatusCode::UNAUTHORIZED => Err(M3Error::Authentication {
                error: "invalid_credentials".into(),
                description: format!("{path}: the Metadata Publisher refused the user name or password (HTTP 401)"),
            }),
            StatusCode::FORBIDDEN => Err(M3Error::NotAuthorised {
                status: 403,
                path: path.into(),
            }),
            _ => Err(M3Error::Http {
                status: status.as_u16(),
                path: path.into(),
                body: truncate(&body),
            }),
        }
    }
}

/// The rows of an `EXPORTMI/Select` answer (`REPL` split on `separator`), each with `columns`
/// values; a row with another count names the separator that must be changed.
pub fn split_export(records: Vec<Record>, separator: char, columns: usize) -> Result<Vec<Vec<String>>, M3Error> {
    records
        .into_iter()
        .map(|r| {
            let repl = r.get("REPL").map(String::as_str).unwrap_or_default();
            let values: Vec<String> = repl.split(separator).map(|v| v.trim_end().to_string()).collect();
            if values.len() == columns {
                Ok(values)
            } else {
                Err(M3Error::Decode {
                    path: "/v2/execute/EXPORTMI/Select".into(),
                    detail: format!(
                        "row {repl:?} has {} values for {columns} columns: a value contains the separator {separator:?}; choose another separator",
                        values.len()
                    ),
                })
            }
        })
        .collect()
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}

/// A reqwest error without its URL (see [`without_url`]).
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
    without_url(e)
}

/// reqwest errors print the URL, which may carry query inputs; keep the cause only.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if cause.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {cause}")
    }
}
