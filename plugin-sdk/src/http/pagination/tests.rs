//! Each paginator walking a local server's pages, resuming from a stored
//! position, and refusing to loop.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use super::{Page, PagePosition, PaginationConfig, Paginator};
use crate::http::test_server::{config, serve};
use crate::http::{Client, HttpConfig, HttpErrorKind};

type Answer = (Vec<(&'static str, String)>, Value);

/// Serves `/v1/items`, answering with `answer(query)`.
async fn pages(
    answer: impl Fn(&HashMap<String, String>) -> Answer + Clone + Send + Sync + 'static,
) -> Client {
    let router = Router::new().route(
        "/v1/items",
        get(move |Query(query): Query<HashMap<String, String>>| {
            let answer = answer.clone();
            async move {
                let (headers, body) = answer(&query);
                let mut map = HeaderMap::new();
                for (name, value) in headers {
                    map.insert(name, HeaderValue::from_str(&value).unwrap());
                }
                (map, axum::Json(body)).into_response()
            }
        }),
    );
    let url = serve(router).await.url;
    Client::new(&HttpConfig::new(format!("{url}/v1"))).unwrap()
}

fn paginator(json: Value) -> Paginator {
    let config: PaginationConfig = config(json);
    Paginator::new(&config).unwrap_or_else(|errors| panic!("{errors}"))
}

/// Walks every page from `start`, returning the records' ids and the
/// positions seen.
async fn walk(
    client: &Client,
    paginator: &Paginator,
    start: Option<PagePosition>,
) -> (Vec<i64>, Vec<PagePosition>) {
    let mut ids = Vec::new();
    let mut positions = Vec::new();
    let mut position = start;
    for _ in 0..20 {
        let request = client.get("items").query(&[("filter", "open")]);
        let Page { records, next } = paginator
            .next_page(client, request, position.as_ref())
            .await
            .unwrap();
        ids.extend(records.iter().map(|record| record["id"].as_i64().unwrap()));
        match next {
            Some(next) => {
                positions.push(next.clone());
                position = Some(next);
            }
            None => return (ids, positions),
        }
    }
    panic!("the walk did not end");
}

fn records(ids: std::ops::Range<i64>) -> Value {
    Value::Array(ids.map(|id| json!({"id": id})).collect())
}

#[tokio::test]
async fn cursor_walks_every_page_and_resumes_from_a_stored_position() {
    let client = pages(|query| {
        assert_eq!(query["filter"], "open", "the request's own query is kept");
        assert_eq!(query["limit"], "2");
        match query.get("after").map(String::as_str) {
            None => (
                vec![],
                json!({"data": records(0..2), "meta": {"next": "c2"}}),
            ),
            Some("c2") => (
                vec![],
                json!({"data": records(2..4), "meta": {"next": "c4"}}),
            ),
            Some("c4") => (
                vec![],
                json!({"data": records(4..5), "meta": {"next": null}}),
            ),
            Some(other) => panic!("unexpected cursor {other}"),
        }
    })
    .await;
    let paginator = paginator(json!({"kind": "cursor", "cursor_param": "after",
        "cursor_path": "/meta/next", "limit_param": "limit", "page_size": 2, "records_path": "/data"}));
    let (ids, positions) = walk(&client, &paginator, None).await;
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    // A checkpoint stores the position as JSON; a restarted plugin resumes there.
    let stored = serde_json::to_string(&positions[0]).unwrap();
    assert_eq!(stored, r#"{"kind":"cursor","cursor":"c2"}"#);
    let resumed: PagePosition = serde_json::from_str(&stored).unwrap();
    let (ids, _) = walk(&client, &paginator, Some(resumed)).await;
    assert_eq!(ids, [2, 3, 4]);
}

#[tokio::test]
async fn a_repeated_cursor_stops_with_a_permanent_error() {
    let client = pages(|_| (vec![], json!({"data": records(0..1), "next": "same"}))).await;
    let paginator = paginator(json!({"kind": "cursor", "cursor_param": "cursor",
        "cursor_path": "/next", "records_path": "/data"}));
    let first = paginator
        .next_page(&client, client.get("items"), None)
        .await
        .unwrap();
    let error = paginator
        .next_page(&client, client.get("items"), first.next.as_ref())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), HttpErrorKind::Pagination);
    assert!(!error.is_retryable());
    assert!(
        error.to_string().contains("gave back the position"),
        "{error}"
    );
}

#[tokio::test]
async fn offset_stops_on_a_short_page() {
    let client = pages(|query| {
        let offset: i64 = query["skip"].parse().unwrap();
        let limit: i64 = query["max"].parse().unwrap();
        let end = (offset + limit).min(5);
        (vec![], json!({"items": records(offset..end)}))
    })
    .await;
    let paginator = paginator(json!({"kind": "offset", "offset_param": "skip",
        "limit_param": "max", "page_size": 2, "records_path": "/items"}));
    let (ids, positions) = walk(&client, &paginator, None).await;
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    assert_eq!(
        positions,
        [
            PagePosition::Offset { offset: 2 },
            PagePosition::Offset { offset: 4 }
        ]
    );
    let (ids, _) = walk(
        &client,
        &paginator,
        Some(PagePosition::Offset { offset: 4 }),
    )
    .await;
    assert_eq!(ids, [4]);
}

#[tokio::test]
async fn an_offset_config_built_in_code_walks_like_the_table() {
    let client = pages(|query| {
        let offset: i64 = query["skip"].parse().unwrap();
        let limit: i64 = query["limit"].parse().unwrap();
        let end = (offset + limit).min(5);
        (vec![], json!({"data": records(offset..end)}))
    })
    .await;
    let config = PaginationConfig::Offset(
        super::OffsetConfig::new(2)
            .with_params("skip", "limit")
            .with_records_path("/data"),
    );
    let paginator = Paginator::new(&config).unwrap_or_else(|errors| panic!("{errors}"));
    let (ids, positions) = walk(&client, &paginator, None).await;
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    assert_eq!(positions.len(), 2);
    let defaults = super::OffsetConfig::new(0);
    assert_eq!(
        (
            defaults.offset_param.as_str(),
            defaults.limit_param.as_str()
        ),
        ("offset", "limit")
    );
    let errors = Paginator::new(&PaginationConfig::Offset(defaults)).unwrap_err();
    assert_eq!(errors.problems()[0].field, "pagination.page_size");
}

#[tokio::test]
async fn page_stops_on_an_empty_page_or_a_short_one() {
    let client = pages(|query| {
        let page: i64 = query["page"].parse().unwrap();
        let per_page: i64 = query
            .get("per_page")
            .map_or(3, |size| size.parse().unwrap());
        let start = (page - 1) * per_page;
        (vec![], records(start.min(7)..(start + per_page).min(7)))
    })
    .await;
    // Without a page size: walks until the empty page.
    let (ids, positions) = walk(&client, &paginator(json!({"kind": "page"})), None).await;
    assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(positions.last(), Some(&PagePosition::Page { page: 4 }));
    // With one: the short third page is the last.
    let sized = paginator(json!({"kind": "page", "size_param": "per_page", "page_size": 3}));
    let (ids, positions) = walk(&client, &sized, None).await;
    assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(positions.len(), 2);
    let (ids, _) = walk(&client, &sized, Some(PagePosition::Page { page: 2 })).await;
    assert_eq!(ids, [3, 4, 5, 6]);
}

#[tokio::test]
async fn page_token_walks_and_resumes() {
    let client = pages(|query| match query.get("pageToken").map(String::as_str) {
        None => (
            vec![],
            json!({"files": records(0..2), "nextPageToken": "t1"}),
        ),
        Some("t1") => (vec![], json!({"files": records(2..3)})),
        Some(other) => panic!("unexpected token {other}"),
    })
    .await;
    let paginator = paginator(json!({"kind": "page_token", "token_param": "pageToken",
        "token_path": "/nextPageToken", "records_path": "/files"}));
    let (ids, positions) = walk(&client, &paginator, None).await;
    assert_eq!(ids, [0, 1, 2]);
    assert_eq!(
        positions,
        [PagePosition::PageToken {
            token: "t1".to_owned()
        }]
    );
    let (ids, _) = walk(&client, &paginator, Some(positions[0].clone())).await;
    assert_eq!(ids, [2]);
}

#[tokio::test]
async fn link_follows_rel_next_and_resumes() {
    let client = pages(|query| match query.get("page").map(String::as_str) {
        None => (
            vec![(
                "link",
                r#"</v1/items?filter=open&page=2>; rel="next", </v1/items?page=3>; rel="last""#
                    .to_owned(),
            )],
            records(0..2),
        ),
        Some("2") => (
            vec![(
                "link",
                r#"</v1/items?page=1>; rel="prev", </v1/items?filter=open&page=3>; rel="next""#
                    .to_owned(),
            )],
            records(2..4),
        ),
        Some("3") => (
            vec![("link", r#"</v1/items?page=2>; rel="prev""#.to_owned())],
            records(4..5),
        ),
        Some(other) => panic!("unexpected page {other}"),
    })
    .await;
    let paginator = paginator(json!({"kind": "link"}));
    let (ids, positions) = walk(&client, &paginator, None).await;
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    let PagePosition::Link { url } = &positions[0] else {
        panic!("{positions:?}");
    };
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/v1/items?filter=open&page=2"),
        "{url}"
    );
    let (ids, _) = walk(&client, &paginator, Some(positions[1].clone())).await;
    assert_eq!(ids, [4]);
}

#[tokio::test]
async fn a_repeated_link_or_a_foreign_one_stops() {
    let client = pages(|_| {
        (
            vec![("link", r#"</v1/items?page=2>; rel="next""#.to_owned())],
            records(0..1),
        )
    })
    .await;
    let paginator = paginator(json!({"kind": "link"}));
    let first = paginator
        .next_page(&client, client.get("items"), None)
        .await
        .unwrap();
    let error = paginator
        .next_page(&client, client.get("items"), first.next.as_ref())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), HttpErrorKind::Pagination, "{error}");

    let foreign = PagePosition::Link {
        url: "https://evil.example.com/v1/items?page=2".to_owned(),
    };
    let error = paginator
        .next_page(&client, client.get("items"), Some(&foreign))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("another origin"), "{error}");
}

#[tokio::test]
async fn a_next_link_echoing_the_query_key_is_stored_without_it() {
    crate::http::secret::test_env::set("T_LINK_KEY", "link-key-1");
    let router = Router::new().route(
        "/v1/items",
        get(|Query(query): Query<HashMap<String, String>>| async move {
            assert_eq!(query.get("key").map(String::as_str), Some("link-key-1"));
            let next = if query.contains_key("page") {
                String::new()
            } else {
                // The upstream echoes every query parameter, the key too.
                r#"</v1/items?key=link-key-1&page=2>; rel="next""#.to_owned()
            };
            let mut map = HeaderMap::new();
            map.insert("link", HeaderValue::from_str(&next).unwrap());
            (map, axum::Json(records(0..1)))
        }),
    );
    let url = serve(router).await.url;
    let client = Client::new(&config::<HttpConfig>(json!({
        "base_url": format!("{url}/v1"),
        "auth": {"kind": "api_key", "query": "key", "key_env": "T_LINK_KEY"},
    })))
    .unwrap();
    let paginator = paginator(json!({"kind": "link"}));
    let first = paginator
        .next_page(&client, client.get("items"), None)
        .await
        .unwrap();
    let Some(PagePosition::Link { url }) = &first.next else {
        panic!("{:?}", first.next);
    };
    assert!(url.ends_with("/v1/items?page=2"), "{url}");
    let second = paginator
        .next_page(&client, client.get("items"), first.next.as_ref())
        .await
        .unwrap();
    assert_eq!(second.next, None);
}

#[tokio::test]
async fn records_path_must_lead_to_an_array() {
    let client = pages(|_| (vec![], json!({"data": {"not": "an array"}}))).await;
    for (pointer, problem) in [("/data", "no array at"), ("/missing", "nothing at")] {
        let paginator = paginator(json!({"kind": "page", "records_path": pointer}));
        let error = paginator
            .next_page(&client, client.get("items"), None)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), HttpErrorKind::Decode);
        assert!(!error.is_retryable());
        let text = error.to_string();
        assert!(
            text.contains(problem) && text.contains(&format!("`{pointer}`")),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_position_of_another_kind_is_refused() {
    let client = pages(|_| (vec![], records(0..1))).await;
    let paginator = paginator(json!({"kind": "page"}));
    let stale = PagePosition::Cursor {
        cursor: "c".to_owned(),
    };
    let error = paginator
        .next_page(&client, client.get("items"), Some(&stale))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("`cursor` position"), "{error}");
}

#[test]
fn config_is_validated_with_named_keys() {
    let config: PaginationConfig = config(json!({"kind": "cursor", "cursor_param": "c",
        "cursor_path": "next", "limit_param": "limit"}));
    let errors = Paginator::new(&config).unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|error| error.field.as_str()).collect();
    assert_eq!(
        fields,
        ["pagination.cursor_path", "pagination.page_size"],
        "{errors}"
    );
    let errors =
        crate::decode_config::<PaginationConfig>(br#"{"kind": "offset", "page_sise": 10}"#)
            .unwrap_err();
    assert!(
        errors.problems()[0].message.contains("page_sise")
            || errors.problems()[0].field.contains("page_sise"),
        "{errors:?}"
    );
    let errors = crate::decode_config::<PaginationConfig>(br#"{"kind": "scroll"}"#).unwrap_err();
    assert!(
        errors.problems()[0].message.contains("scroll"),
        "{errors:?}"
    );
}
