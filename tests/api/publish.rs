use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{assert_error, seq_of, spawn_app};

#[actix_web::test]
async fn every_target_form_is_stored_and_answered_in_order() {
    let app = spawn_app().await;
    let t = app.create_tenant("pub").await;

    let single = app
        .publish_ok(
            &t.api_key,
            &json!({"to": {"user": "alice"}, "type": "mail", "data": {"subject": "Hi"}}),
        )
        .await;
    assert_eq!(single.len(), 1);
    assert_eq!(single[0]["to"], json!({"user": "alice"}));
    assert_eq!(single[0]["type"], "mail");

    let several = app
        .publish_ok(
            &t.api_key,
            &json!({"to": {"users": ["alice", "bob", "carol"]}, "type": "score", "data": 3}),
        )
        .await;
    let recipients: Vec<&Value> = several.iter().map(|e| &e["to"]["user"]).collect();
    assert_eq!(
        recipients,
        [&json!("alice"), &json!("bob"), &json!("carol")]
    );

    let topic = app
        .publish_ok(
            &t.api_key,
            &json!({"to": {"topic": "stock:AAPL"}, "type": "stock", "data": {"px": 1.5}}),
        )
        .await;
    assert_eq!(topic[0]["to"], json!({"topic": "stock:AAPL"}));
    let broadcast = app
        .publish_ok(
            &t.api_key,
            &json!({"to": {"broadcast": true}, "data": "all"}),
        )
        .await;
    assert_eq!(broadcast[0]["to"], json!({"broadcast": true}));
    assert_eq!(broadcast[0]["type"], "message", "the default type");

    let batch = app
        .publish_ok(
            &t.api_key,
            &json!({"events": [
                {"to": {"user": "bob"}, "type": "mail", "data": "one"},
                {"to": {"users": ["alice", "bob"]}, "data": "two"},
                {"to": {"topic": "stock:MSFT"}, "data": "three"}
            ]}),
        )
        .await;
    assert_eq!(batch.len(), 4);
    assert_eq!(batch[0]["to"], json!({"user": "bob"}));
    assert_eq!(batch[1]["to"], json!({"user": "alice"}));
    assert_eq!(batch[2]["to"], json!({"user": "bob"}));
    assert_eq!(batch[3]["to"], json!({"topic": "stock:MSFT"}));

    // Ids carry one epoch and consecutive sequence numbers, in answer order.
    let all: Vec<Value> = [single, several, topic, broadcast, batch].concat();
    let seqs: Vec<i64> = all.iter().map(|e| seq_of(&e["id"])).collect();
    assert_eq!(seqs, (1..=all.len() as i64).collect::<Vec<_>>());
    let epoch = all[0]["id"]
        .as_str()
        .unwrap()
        .rsplit_once('-')
        .unwrap()
        .0
        .to_owned();
    assert!(
        all.iter()
            .all(|e| e["id"].as_str().unwrap().starts_with(&format!("{epoch}-")))
    );

    // Alice's stream: her own events and broadcasts; topics only when asked for.
    let alice = app.full_history(&t.api_key, "user=alice").await;
    let alice_seqs: Vec<i64> = alice.iter().map(|e| seq_of(&e["id"])).collect();
    assert_eq!(alice_seqs, vec![1, 2, 6, 8]);
    assert_eq!(alice[0]["data"], json!({"subject": "Hi"}));
    assert_eq!(alice[0]["type"], "mail");
    assert_eq!(alice[1]["data"], json!(3));
    assert!(alice[0]["created_at"].as_str().unwrap().ends_with('Z'));
    let with_topics = app
        .full_history(&t.api_key, "user=alice&topics=stock:AAPL,stock:MSFT")
        .await;
    let seqs: Vec<i64> = with_topics.iter().map(|e| seq_of(&e["id"])).collect();
    assert_eq!(seqs, vec![1, 2, 5, 6, 8, 10]);
    assert_eq!(with_topics[2]["data"], json!({"px": 1.5}));
    let bob = app.full_history(&t.api_key, "user=bob").await;
    let seqs: Vec<i64> = bob.iter().map(|e| seq_of(&e["id"])).collect();
    assert_eq!(seqs, vec![3, 6, 7, 9]);
}

#[actix_web::test]
async fn history_pages_with_next_and_after() {
    let app = spawn_app().await;
    let t = app.create_tenant("pages").await;
    let events: Vec<Value> = (0..7)
        .map(|i| json!({"to": {"user": "u"}, "data": i}))
        .collect();
    app.publish_ok(&t.api_key, &json!({"events": events})).await;

    let mut seen = Vec::new();
    let mut query = "user=u&limit=3".to_owned();
    let mut pages = 0;
    loop {
        let page: Value = app.history(&t.api_key, &query).await.json().await.unwrap();
        pages += 1;
        let items = page["events"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|e| e["data"].as_i64().unwrap()));
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(next, items.last().unwrap()["id"].as_str().unwrap());
                query = format!("user=u&limit=3&after={next}");
            }
            None => break,
        }
    }
    assert_eq!(seen, (0..7).collect::<Vec<_>>());
    assert_eq!(pages, 3);
}

#[actix_web::test]
async fn history_pages_back_from_the_newest_with_before() {
    let app = spawn_app().await;
    let t = app.create_tenant("back").await;
    let events: Vec<Value> = (0..7)
        .map(|i| json!({"to": {"user": "u"}, "data": i}))
        .chain([json!({"to": {"user": "someone else"}, "data": 99})])
        .collect();
    app.publish_ok(&t.api_key, &json!({"events": events})).await;
    app.publish_ok(&t.api_key, &json!({"to": {"broadcast": true}, "data": 7}))
        .await;

    let mut seen = Vec::new();
    let mut query = "user=u&limit=3&order=newest".to_owned();
    loop {
        let page: Value = app.history(&t.api_key, &query).await.json().await.unwrap();
        let items = page["events"].as_array().unwrap();
        seen.extend(items.iter().map(|e| e["data"].as_i64().unwrap()));
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(next, items.last().unwrap()["id"].as_str().unwrap());
                query = format!("user=u&limit=3&order=newest&before={next}");
            }
            None => break,
        }
    }
    assert_eq!(seen, [7, 6, 5, 4, 3, 2, 1, 0]);

    for (query, status, code) in [
        (
            "user=u&order=newest&after=x-1",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "user=u&before=x-1",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "user=u&order=latest",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
    ] {
        assert_error(app.history(&t.api_key, query).await, status, code).await;
    }
}

#[actix_web::test]
async fn string_data_keeps_its_text_and_unicode() {
    let app = spawn_app().await;
    let t = app.create_tenant("text").await;
    let text = "line one\nline two — ünïcødé 🚀";
    app.publish_ok(&t.api_key, &json!({"to": {"user": "u"}, "data": text}))
        .await;
    let history = app.full_history(&t.api_key, "user=u").await;
    assert_eq!(history[0]["data"], text);
}
