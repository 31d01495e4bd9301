use crate::support::spawn_app;

#[actix_web::test]
async fn a_running_node_is_live_and_ready_with_its_database_ok() {
    let app = &spawn_app().await;
    let answer = |path: &'static str| async move {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.json::<serde_json::Value>().await.unwrap()
    };
    assert_eq!(
        answer("/healthz").await,
        serde_json::json!({"status": "ok"})
    );
    // One node: no Redis, so neither `redis` nor `rate_limits` is said.
    assert_eq!(
        answer("/readyz").await,
        serde_json::json!({"status": "ready", "database": "ok"})
    );
}

#[actix_web::test]
async fn every_answer_names_its_request_id_which_the_logs_carry() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    // The request's log line is written when its span closes, just after the answer.
    for _ in 0..50 {
        if crate::support::captured_logs().contains(&id) {
            return;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no log line carries request id {id}");
}

#[actix_web::test]
async fn the_sqlite_database_is_a_wal_file() {
    if crate::support::postgres_server().is_some() {
        eprintln!("skipped: the suite runs on PostgreSQL");
        return;
    }
    let app = spawn_app().await;
    let tenant = app.create_tenant("wal").await;
    app.publish_ok(&tenant.api_key, &serde_json::json!({"to": {"user": "u"}}))
        .await;
    assert!(app.dir.join("herald.db").is_file());
    assert!(
        app.dir.join("herald.db-wal").is_file(),
        "WAL journal expected"
    );
}

#[actix_web::test]
async fn unknown_paths_answer_json_404() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/nope")).send().await.unwrap();
    crate::support::assert_error(response, reqwest::StatusCode::NOT_FOUND, "not_found").await;
}
