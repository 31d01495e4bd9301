//! Resume is exact, under fire: publishers keep publishing while clients keep dropping
//! and resuming; every client ends with exactly the events it may see, in order, once.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::{TestApp, TestTenant, spawn_app};

const USERS: usize = 4;
const CLIENTS_PER_USER: usize = 3;
const PUBLISHERS: usize = 3;
const ROUNDS: usize = 40;

async fn publisher(app: &TestApp, tenant: &TestTenant, p: usize) {
    for round in 0..ROUNDS {
        let body = match round % 4 {
            0 => json!({"to": {"broadcast": true}, "data": format!("b-{p}-{round}")}),
            1 => json!({"to": {"topic": "t"}, "data": format!("t-{p}-{round}")}),
            2 => json!({"events": [
                {"to": {"user": format!("u{}", round % USERS)}, "data": format!("u-{p}-{round}-a")},
                {"to": {"users": ["u0", "u1"]}, "data": format!("u-{p}-{round}-b")},
                {"to": {"user": "nobody"}, "data": format!("n-{p}-{round}")}
            ]}),
            _ => {
                json!({"to": {"user": format!("u{}", (round + p) % USERS)}, "data": format!("u-{p}-{round}")})
            }
        };
        app.publish_ok(&tenant.api_key, &body).await;
        actix_web::rt::time::sleep(Duration::from_millis(rand::random_range(1..6))).await;
    }
}

/// Reads for a random while, drops the connection, resumes from the last id it saw; after
/// the publishers stop, one last connection reads until the stream goes quiet.
async fn flaky_client(
    app: &TestApp,
    tenant: &TestTenant,
    user: String,
    start: String,
    publishing: &std::cell::Cell<bool>,
) -> Vec<(String, String)> {
    let token = tenant.token(&user, &["t"]);
    let mut received = Vec::new();
    let mut last_id = Some(start);
    let mut reconnects = 0;
    loop {
        let finishing = !publishing.get();
        let mut stream = app
            .open_stream(tenant, &token, "topics=t", last_id.as_deref())
            .await;
        let quiet = if finishing {
            Duration::from_millis(700)
        } else {
            Duration::from_millis(rand::random_range(5..40))
        };
        let budget = if finishing {
            usize::MAX
        } else {
            rand::random_range(1..15)
        };
        let mut taken = 0;
        while taken < budget {
            match stream.next_event(quiet).await {
                Some(event) => {
                    received.push((event.id.clone(), event.data.clone()));
                    taken += 1;
                }
                None => break,
            }
        }
        received.extend(stream.drain_parsed().into_iter().map(|e| (e.id, e.data)));
        if !stream.last_event_id.is_empty() {
            last_id = Some(stream.last_event_id.clone());
        }
        drop(stream);
        if finishing {
            assert!(
                reconnects > 3,
                "the client reconnected only {reconnects} times"
            );
            return received;
        }
        reconnects += 1;
    }
}

#[actix_web::test]
async fn clients_that_keep_reconnecting_get_every_event_once_in_order() {
    let app = spawn_app().await;
    let t = app.create_tenant("race").await;
    let publishing = std::cell::Cell::new(true);
    // Where the log starts: a fresh stream's opening frame carries it.
    let start = {
        let mut stream = app.open_stream(&t, &t.token("u0", &[]), "", None).await;
        assert_eq!(stream.next_event(Duration::from_millis(200)).await, None);
        stream.last_event_id.clone()
    };

    let clients = join_all((0..USERS * CLIENTS_PER_USER).map(|c| {
        flaky_client(
            &app,
            &t,
            format!("u{}", c % USERS),
            start.clone(),
            &publishing,
        )
    }));
    let publishers = async {
        join_all((0..PUBLISHERS).map(|p| publisher(&app, &t, p))).await;
        publishing.set(false);
    };
    let (received, ()) = tokio::join!(clients, publishers);

    for (c, got) in received.into_iter().enumerate() {
        let user = format!("u{}", c % USERS);
        let expected: Vec<(String, String)> = app
            .full_history(&t.api_key, &format!("user={user}&topics=t"))
            .await
            .into_iter()
            .map(|e: Value| {
                let data = e["data"].as_str().unwrap().to_owned();
                (e["id"].as_str().unwrap().to_owned(), data)
            })
            .collect();
        assert!(
            expected.len() > 50,
            "{user} may see {} events",
            expected.len()
        );
        if got.len() != expected.len() {
            let missing: Vec<_> = expected.iter().filter(|e| !got.contains(e)).collect();
            let extra: Vec<_> = got.iter().filter(|e| !expected.contains(e)).collect();
            eprintln!("client {c} ({user}) missing {missing:?} extra {extra:?}");
            eprintln!(
                "got: {:?}",
                got.iter()
                    .map(|e| e.0.rsplit_once('-').unwrap().1)
                    .collect::<Vec<_>>()
            );
        }
        assert_eq!(got.len(), expected.len(), "client {c} ({user}): count");
        assert_eq!(
            got, expected,
            "client {c} ({user}): every event once, in order"
        );
    }
}
