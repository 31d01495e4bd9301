//! Presence: a user is online while any node holds a stream of theirs; `user.online` and
//! `user.offline` go out once per real transition for the whole deployment — none for a
//! reload, a second tab or a stream moving between nodes — and a node that dies does not
//! leave its users online.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::process::ServerProcess;
use crate::support::receiver::Receiver;
use crate::support::{TestTenant, assert_error, spawn_app_with};

impl crate::support::app::Api {
    async fn presence(&self, tenant: &TestTenant, user: &str) -> Value {
        let path = format!("/v1/presence?user={user}");
        self.backend_answer(tenant, Method::GET, &path, None, StatusCode::OK)
            .await
    }

    /// Waits until `user`'s presence satisfies `done`; returns it.
    async fn presence_becomes(
        &self,
        tenant: &TestTenant,
        user: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let presence = self.presence(tenant, user).await;
            if done(&presence) {
                return presence;
            }
            assert!(Instant::now() < deadline, "presence still {presence}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The types and users of the presence messages a receiver got, in order.
fn transitions(receiver: &Receiver) -> Vec<(String, String)> {
    receiver
        .received()
        .iter()
        .map(|r| r.json())
        .map(|m| {
            (
                m["type"].as_str().unwrap().to_owned(),
                m["data"]["user"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn online(user: &str) -> (String, String) {
    ("user.online".into(), user.into())
}

fn offline(user: &str) -> (String, String) {
    ("user.offline".into(), user.into())
}

/// Two nodes on one PostgreSQL and Redis, a grace of 1 s, and a receiver of the tenant's
/// presence messages; `None` where several nodes cannot run (said by `cluster_with`).
async fn watched_cluster() -> Option<(crate::support::cluster::Cluster, Receiver)> {
    let cluster =
        crate::support::cluster::cluster_with(2, &[("HERALD__PRESENCE__OFFLINE_GRACE_SECS", "1")])
            .await?;
    let receiver = Receiver::start().await;
    cluster.nodes[0]
        .create_webhook(
            &cluster.tenant,
            &receiver.url,
            json!(["user.online", "user.offline"]),
        )
        .await;
    Some((cluster, receiver))
}

#[actix_web::test]
async fn presence_counts_a_users_open_streams_and_when_the_last_one_closed() {
    let app = spawn_app_with(|s| s.presence.offline_grace_secs = 0.2).await;
    let tenant = app.api.create_tenant("acme").await;
    let never = app.api.presence(&tenant, "u1").await;
    assert_eq!(
        never,
        json!({"user": "u1", "online": false, "streams": 0, "last_seen_at": null})
    );

    let token = tenant.token("u1", &[]);
    let first = app.api.open_stream(&tenant, &token, "", None).await;
    let second = app.api.open_stream(&tenant, &token, "", None).await;
    let both = app.api.presence(&tenant, "u1").await;
    assert_eq!(
        (both["online"].clone(), both["streams"].clone()),
        (json!(true), json!(2))
    );
    drop(first);
    app.api
        .presence_becomes(&tenant, "u1", Duration::from_secs(5), |p| p["streams"] == 1)
        .await;
    drop(second);
    let gone = app
        .api
        .presence_becomes(&tenant, "u1", Duration::from_secs(5), |p| {
            p["online"] == false && p["last_seen_at"].is_string()
        })
        .await;
    assert_eq!(gone["streams"], 0);

    let many = app
        .api
        .backend(
            &tenant,
            Method::POST,
            "/v1/presence",
            Some(json!({"users": ["u2", "u1"]})),
        )
        .await;
    assert_eq!(many.status(), StatusCode::OK);
    let many: Value = many.json().await.unwrap();
    assert_eq!(many["users"][0]["user"], "u2");
    assert_eq!(many["users"][1]["user"], "u1");
    assert!(many["users"][1]["last_seen_at"].is_string());

    let too_many: Vec<String> = (0..1001).map(|n| format!("u{n}")).collect();
    let refused = app
        .api
        .backend(
            &tenant,
            Method::POST,
            "/v1/presence",
            Some(json!({"users": too_many})),
        )
        .await;
    assert_error(refused, StatusCode::UNPROCESSABLE_ENTITY, "invalid_user").await;
    let bad = app
        .api
        .backend(&tenant, Method::GET, "/v1/presence?user=", None)
        .await;
    assert_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_user").await;
}

#[actix_web::test]
async fn one_message_per_real_transition_and_none_for_a_reload_or_a_second_tab() {
    let app = spawn_app_with(|s| s.presence.offline_grace_secs = 2.0).await;
    let tenant = app.api.create_tenant("acme").await;
    let receiver = Receiver::start().await;
    app.api
        .create_webhook(
            &tenant,
            &receiver.url,
            json!(["user.online", "user.offline"]),
        )
        .await;
    let token = tenant.token("u1", &[]);

    let tab = app.api.open_stream(&tenant, &token, "", None).await;
    receiver.wait_for(1, Duration::from_secs(5)).await;
    let second_tab = app.api.open_stream(&tenant, &token, "", None).await;
    drop(tab);
    drop(second_tab);
    // A reload: back within the grace.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reloaded = app.api.open_stream(&tenant, &token, "", None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(transitions(&receiver), [online("u1")]);

    let closed = Instant::now();
    drop(reloaded);
    let received = receiver.wait_for(2, Duration::from_secs(8)).await;
    assert_eq!(transitions(&receiver), [online("u1"), offline("u1")]);
    let went = received[1].json();
    assert!(went["data"]["last_seen_at"].is_string());
    assert!(went["data"]["at"].is_string());
    let waited = received[1].at - closed;
    assert!(
        waited >= Duration::from_millis(1900),
        "offline after {waited:?}, within the grace"
    );
}

#[actix_web::test]
async fn with_two_nodes_a_user_moving_between_them_is_one_online_and_one_offline() {
    let Some((cluster, receiver)) = watched_cluster().await else {
        return;
    };
    let tenant = &cluster.tenant;
    let on_a = cluster.stream(0, None).await;
    receiver.wait_for(1, Duration::from_secs(5)).await;
    // The stream moves: a second one on node 1, then the first closes.
    let on_b = cluster.stream(1, None).await;
    let seen_from_a = cluster.nodes[0]
        .presence_becomes(tenant, "u1", Duration::from_secs(5), |p| p["streams"] == 2)
        .await;
    assert_eq!(seen_from_a["online"], true);
    drop(on_a);
    cluster.nodes[1]
        .presence_becomes(tenant, "u1", Duration::from_secs(5), |p| p["streams"] == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        transitions(&receiver),
        [online("u1")],
        "a move is no transition"
    );

    drop(on_b);
    receiver.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(transitions(&receiver), [online("u1"), offline("u1")]);
}

#[actix_web::test]
async fn a_killed_node_leaves_no_user_online() {
    let Some((mut cluster, receiver)) = watched_cluster().await else {
        return;
    };
    let tenant = cluster.tenant.clone();
    let stream = cluster.stream(1, None).await;
    receiver.wait_for(1, Duration::from_secs(5)).await;
    let mut dead: ServerProcess = cluster.nodes.remove(1);
    dead.signal("KILL");
    dead.wait_for_exit(Duration::from_secs(10));
    // Its streams drop out of the deployment's counts when its heartbeat is too old.
    cluster.nodes[0]
        .presence_becomes(&tenant, "u1", Duration::from_secs(10), |p| {
            p["online"] == false
        })
        .await;
    // The survivor finds the user nobody streams to and, after the grace, says so.
    receiver.wait_for(2, Duration::from_secs(25)).await;
    assert_eq!(transitions(&receiver), [online("u1"), offline("u1")]);
    drop(stream);
}

#[actix_web::test]
async fn while_redis_is_down_no_node_takes_a_user_for_gone_on_its_own_count() {
    let Some((mut cluster, receiver)) = watched_cluster().await else {
        return;
    };
    let on_a = cluster.stream(0, None).await;
    let on_b = cluster.stream(1, None).await;
    receiver.wait_for(1, Duration::from_secs(5)).await;
    cluster.redis.kill();
    // Node 0 sees its last stream of u1 close and cannot ask whether node 1 has one.
    drop(on_a);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        transitions(&receiver),
        [online("u1")],
        "offline on one node's count"
    );
    cluster.redis.restart();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        transitions(&receiver),
        [online("u1")],
        "u1 still streams on node 1"
    );
    drop(on_b);
    receiver.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(transitions(&receiver), [online("u1"), offline("u1")]);
}
