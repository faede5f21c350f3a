//! Shared helpers for the simulator's HTTP tests: start a simulator on port 0 and get a token.
#![allow(dead_code)]

use std::time::Duration;

use m3_sim::{RunningSim, SimConfig, Simulator};
use serde_json::Value;

/// A simulator with a small seed, served on a free port.
pub struct Harness {
    pub sim: Simulator,
    pub running: RunningSim,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with(SimConfig {
            items: 200,
            ..SimConfig::default()
        })
        .await
    }

    pub async fn with(cfg: SimConfig) -> Harness {
        let sim = Simulator::new(cfg);
        let running = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Harness { sim, running, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}{}", self.running.base_url, self.sim.config().tenant, path)
    }

    pub fn token_url(&self) -> String {
        self.url("/as/token.oauth2")
    }

    /// A fresh access token by password grant with Basic client auth.
    pub async fn token(&self) -> String {
        let c = self.sim.config();
        let resp = self
            .http
            .post(self.token_url())
            .basic_auth(&c.client_id, Some(&c.client_secret))
            .form(&[
                ("grant_type", "password"),
                ("username", c.saak.as_str()),
                ("password", c.sask.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    /// GET an API path (under the tenant) with a bearer token, answer status and JSON.
    pub async fn get(&self, token: &str, path_and_query: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(path_and_query))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// v2 single transaction with query pairs.
    pub async fn v2(&self, token: &str, pgm_trn: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(&format!("/M3/m3api-rest/v2/execute/{pgm_trn}")))
            .bearer_auth(token)
            .query(query)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// EXPORTMI/Select over v2: the REPL strings.
    pub async fn export(&self, token: &str, query: &[(&str, &str)]) -> Result<Vec<String>, Value> {
        let (status, v) = self.v2(token, "EXPORTMI/Select", query).await;
        assert_eq!(status, 200, "{v}");
        let r = &v["results"][0];
        if r.get("errorMessage").is_some() {
            return Err(r.clone());
        }
        Ok(r["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rec| rec["REPL"].as_str().unwrap().to_string())
            .collect())
    }
}
