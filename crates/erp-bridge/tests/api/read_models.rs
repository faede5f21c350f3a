//! Read models over HTTP: keyset paging returns every key exactly once, in key order, and an
//! entity is served as stored (the data of its latest message), by key and in pages.

use crate::helpers::{key_path, of_subject, Env};

#[tokio::test]
async fn paging_a_read_model_returns_every_key_once_in_key_order_as_stored() {
    const ITEMS: usize = 150;
    const LIMIT: usize = 7;
    let env = Env::new(ITEMS).await;
    let app = env.start().await;
    env.loaded(&app).await;
    let messages = env.all_messages(&app).await;
    let mut want: Vec<String> = env
        .sim
        .rows("MITMAS")
        .iter()
        .map(|r| format!("100|{}", r["MMITNO"]))
        .collect();
    want.sort();
    let mut got: Vec<String> = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let path = format!("/api/connections/demo/read-models/items?limit={LIMIT}{after}");
        let r = env.http.get(format!("{}{path}", app.api_url)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        let page: serde_json::Value = r.json().await.unwrap();
        pages += 1;
        let items = page["items"].as_array().unwrap();
        for item in items {
            let key = format!("{}|{}", item["company"], item["itemNumber"].as_str().unwrap());
            let latest = of_subject(&messages, &key).last().cloned().unwrap();
            assert_eq!(item, &latest["data"], "{key} as its latest message");
            let by_key = format!("/api/connections/demo/read-models/items/{}", key_path(&key));
            assert_eq!(env.get(&app, &by_key).await, (200, item.clone()), "{key} by key");
            got.push(key);
        }
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(items.len(), LIMIT, "a page before the last is full");
                assert_eq!(
                    Some(next),
                    got.last().map(String::as_str),
                    "next is the page's last key"
                );
                after = format!("&after={}", key_path(next));
            }
            None => break,
        }
    }
    assert_eq!(got, want, "every key once, in key order");
    assert_eq!(pages, ITEMS.div_ceil(LIMIT));
    app.shutdown().await;
}
