//! Optional TLS: with a certificate configured Herald speaks HTTPS only, offers HTTP/2, and
//! many event streams share one connection; `herald healthcheck` still works; a bad
//! certificate path stops start-up naming the setting.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::cli::herald_command;
use crate::support::sse_client::SseStream;
use crate::support::{Api, spawn_app_with};

fn key_file(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/keys")).join(name)
}

fn tls_settings() -> herald::config::TlsSettings {
    herald::config::TlsSettings {
        cert_file: key_file("tls_cert.pem"),
        key_file: key_file("tls_key.pem"),
    }
}

#[actix_web::test]
async fn with_a_certificate_streams_go_over_https_and_share_one_http2_connection() {
    let app = spawn_app_with(|settings| settings.server.tls = Some(tls_settings())).await;
    let port = app.api.address.rsplit(':').next().unwrap().to_owned();
    let certificate =
        reqwest::Certificate::from_pem(&std::fs::read(key_file("tls_cert.pem")).unwrap()).unwrap();
    let https = Api {
        address: format!("https://localhost:{port}"),
        client: reqwest::Client::builder()
            .add_root_certificate(certificate)
            .build()
            .unwrap(),
    };
    let health = https
        .client
        .get(https.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.version(), reqwest::Version::HTTP_2);
    // Plain HTTP on that port gets no answer.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_err()
    );

    // More streams than a browser may open per host over HTTP/1.1, all on HTTP/2.
    let tenant = https.create_tenant("acme").await;
    let token = tenant.token("u1", &[]);
    let mut streams = Vec::new();
    for _ in 0..8 {
        let response = https.stream_request("acme", &token, "", None).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        streams.push(SseStream::new(response));
    }
    https
        .publish_ok(
            &tenant.api_key,
            &json!({"to": {"user": "u1"}, "data": "over h2"}),
        )
        .await;
    for stream in &mut streams {
        let events = stream.take(1, Duration::from_secs(5)).await;
        assert_eq!(events[0].data, "over h2");
    }

    let tls = tls_settings();
    let probe = herald_command("sqlite://unused/never-opened.db")
        .env("HERALD__SERVER__PORT", &port)
        .env("HERALD__SERVER__TLS__CERT_FILE", &tls.cert_file)
        .env("HERALD__SERVER__TLS__KEY_FILE", &tls.key_file)
        .arg("healthcheck")
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
}

#[actix_web::test]
async fn a_missing_certificate_stops_start_up_naming_the_setting() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut settings =
        crate::support::test_settings(&format!("sqlite://{}/herald.db", dir.path().display()));
    settings.server.tls = Some(herald::config::TlsSettings {
        cert_file: dir.path().join("missing.pem"),
        key_file: key_file("tls_key.pem"),
    });
    let error = herald::startup::Application::build(settings)
        .await
        .err()
        .expect("start-up fails");
    assert!(
        format!("{error:#}").contains("server.tls.cert_file"),
        "{error:#}"
    );
}
