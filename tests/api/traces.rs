//! Traces from outside: Herald exports OTLP/HTTP to a collector (the test's receiver,
//! decoding the protobuf as a collector does), and one publish under a caller's
//! `traceparent` comes back as spans of that trace, each under the right parent, on to the
//! write to a stream and the webhook its fallback sends.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::process::ServerProcess;
use crate::support::receiver::Receiver;
use crate::support::sse_client::SseStream;
use crate::support::{TestTenant, spawn_app};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// One exported span, ids in hex.
#[derive(Debug, Clone)]
struct Exported {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: Vec<(String, String)>,
}

impl Exported {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Every span the collector has been sent so far.
fn exported(collector: &Receiver) -> Vec<Exported> {
    let mut spans = Vec::new();
    for request in collector.received() {
        let export = ExportTraceServiceRequest::decode(request.bytes.as_slice())
            .expect("an OTLP/HTTP protobuf export");
        for resource in export.resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let attributes = span
                        .attributes
                        .iter()
                        .map(|kv| {
                            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                                Some(any_value::Value::StringValue(s)) => s.clone(),
                                Some(any_value::Value::IntValue(n)) => n.to_string(),
                                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                                other => format!("{other:?}"),
                            };
                            (kv.key.clone(), value)
                        })
                        .collect();
                    spans.push(Exported {
                        name: span.name,
                        trace_id: hex::encode(span.trace_id),
                        span_id: hex::encode(span.span_id),
                        parent: hex::encode(span.parent_span_id),
                        attributes,
                    });
                }
            }
        }
    }
    spans
}

/// Waits until the collector holds a span of each name (failing after 15 s).
async fn wait_for_spans(collector: &Receiver, names: &[&str]) -> Vec<Exported> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let spans = exported(collector);
        if names
            .iter()
            .all(|name| spans.iter().any(|s| s.name == *name))
        {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "spans exported: {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The one span named `name` in `trace_id`.
fn one<'a>(spans: &'a [Exported], trace_id: &str, name: &str) -> &'a Exported {
    let found: Vec<&Exported> = spans
        .iter()
        .filter(|s| s.name == name && s.trace_id == trace_id)
        .collect();
    assert_eq!(found.len(), 1, "{name} in {trace_id}: {spans:#?}");
    found[0]
}

/// A Herald exporting to a collector of the test's own, recording `ratio` of the traces that
/// begin in it, with the tenant `acme`.
async fn traced_server(ratio: &str) -> (Receiver, ServerProcess, TestTenant) {
    let collector = Receiver::start().await;
    let endpoint = collector.url.trim_end_matches("/hooks").to_owned();
    let server = ServerProcess::start(&[
        ("HERALD__TELEMETRY__OTLP_ENDPOINT", endpoint.as_str()),
        ("HERALD__TELEMETRY__SAMPLE_RATIO", ratio),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])
    .await;
    let tenant = server.create_tenant("acme").await;
    (collector, server, tenant)
}

/// `u1`'s stream on a connection of its own, so it takes the path this run serves fresh
/// connections by.
async fn fresh_stream(server: &ServerProcess, tenant: &TestTenant) -> SseStream {
    let response = reqwest::Client::new()
        .get(server.url(&format!("/t/{}/stream", tenant.slug)))
        .bearer_auth(tenant.token("u1", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    SseStream::new(response)
}

#[actix_web::test]
async fn a_publish_is_one_trace_under_its_callers_from_auth_to_the_stream_and_its_webhook() {
    let (collector, server, tenant) = traced_server("1").await;
    let hooks = Receiver::start().await;
    server
        .create_webhook(&tenant, &hooks.url, json!(["notification.unseen"]))
        .await;

    let mut stream = fresh_stream(&server, &tenant).await;

    let published = server
        .client
        .post(server.url("/v1/events"))
        .bearer_auth(&tenant.api_key)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(
            &json!({"to": {"user": "u1"}, "type": "mail", "data": {"n": 1},
                      "fallback": {"after_secs": 1}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::CREATED);
    let event = stream.next_event(Duration::from_secs(5)).await.unwrap();
    assert_eq!(event.event, "mail");
    // Delivered but never seen: the fallback fires.
    let unseen = hooks.wait_for(1, Duration::from_secs(15)).await;

    let spans = wait_for_spans(
        &collector,
        &[
            "publish",
            "log.commit",
            "hub.handoff",
            "stream.write",
            "webhook.send",
            "stream.open",
        ],
    )
    .await;
    let publish = one(&spans, TRACE_ID, "publish");
    assert_eq!(
        publish.parent, CALLER_SPAN,
        "the caller's span is the parent"
    );
    assert_eq!(publish.attribute("herald.tenant"), Some("acme"));
    assert_eq!(publish.attribute("http.response.status_code"), Some("201"));
    for step in [
        "auth",
        "limits",
        "log.commit",
        "hub.handoff",
        "stream.write",
    ] {
        assert_eq!(
            one(&spans, TRACE_ID, step).parent,
            publish.span_id,
            "{step} is a step of the publish"
        );
    }
    let commit = one(&spans, TRACE_ID, "log.commit");
    assert_eq!(commit.attribute("herald.commit.requests"), Some("1"));
    assert_eq!(commit.attribute("herald.commit.events"), Some("1"));
    assert_eq!(
        one(&spans, TRACE_ID, "stream.write").attribute("herald.frames"),
        Some("1")
    );

    // The fallback's webhook continues the same trace: the attempt's span is the
    // publish's child, and the endpoint is told the attempt is its parent.
    let send = one(&spans, TRACE_ID, "webhook.send");
    assert_eq!(send.parent, publish.span_id);
    assert_eq!(
        send.attribute("herald.webhook.type"),
        Some("notification.unseen")
    );
    assert_eq!(
        unseen[0].header("traceparent"),
        format!("00-{TRACE_ID}-{}-01", send.span_id)
    );

    // The stream's opening is a trace of its own, with its steps under it.
    let open = spans.iter().find(|s| s.name == "stream.open").unwrap();
    assert_ne!(open.trace_id, TRACE_ID);
    let mut steps: Vec<&str> = spans
        .iter()
        .filter(|s| s.trace_id == open.trace_id && s.parent == open.span_id)
        .map(|s| s.name.as_str())
        .collect();
    steps.sort();
    let herald_path = std::env::var("HERALD__STREAM__HERALD_PATH").as_deref() != Ok("false");
    let expected: &[&str] = match herald_path {
        // Herald's own path writes the replay and hands the socket to its shard itself.
        true => &["auth", "handover", "replay", "subscribe"],
        // actix-web's body writes the replay, after the opening's span has ended.
        false => &["auth", "subscribe"],
    };
    assert_eq!(steps, expected);
}

#[actix_web::test]
async fn with_traces_off_a_webhook_test_message_still_carries_its_requests_traceparent() {
    let app = spawn_app().await;
    let hooks = Receiver::start().await;
    let tenant = app.api.create_tenant("acme").await;
    let webhook = app
        .api
        .create_webhook(&tenant, &hooks.url, json!(["webhook.test"]))
        .await;
    let test_message = |traceparent: String| {
        let path = format!("/v1/webhooks/{}/test", webhook["id"].as_str().unwrap());
        let request = app
            .api
            .client
            .request(Method::POST, app.api.url(&path))
            .bearer_auth(&tenant.api_key)
            .header("traceparent", traceparent);
        async move { request.send().await.unwrap().status() }
    };
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    assert_eq!(
        test_message(traceparent.clone()).await,
        StatusCode::ACCEPTED
    );
    // One that is not a traceparent is not passed on.
    assert_eq!(
        test_message("00-not-a-trace-01".into()).await,
        StatusCode::ACCEPTED
    );
    let got = hooks.wait_for(2, Duration::from_secs(10)).await;
    let mut carried: Vec<&str> = got.iter().map(|r| r.header("traceparent")).collect();
    carried.sort();
    assert_eq!(carried, ["", traceparent.as_str()]);
}

#[actix_web::test]
async fn a_trace_is_recorded_as_its_caller_decided_and_else_at_the_ratio_with_no_stray_steps() {
    // A ratio of 0: nothing that begins in Herald is recorded.
    let (collector, server, tenant) = traced_server("0").await;
    let mut stream = fresh_stream(&server, &tenant).await;
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    for traceparent in [
        None,
        Some(format!("00-{unsampled}-{CALLER_SPAN}-00")),
        Some(format!("00-{TRACE_ID}-{CALLER_SPAN}-01")),
    ] {
        let mut request = server
            .client
            .post(server.url("/v1/events"))
            .bearer_auth(&tenant.api_key)
            .json(&json!({"to": {"user": "u1"}, "data": 1}));
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        assert_eq!(request.send().await.unwrap().status(), StatusCode::CREATED);
    }
    assert_eq!(stream.take(3, Duration::from_secs(5)).await.len(), 3);
    wait_for_spans(&collector, &["publish", "stream.write"]).await;
    // Whatever else would have come has come by now.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let spans = exported(&collector);
    let traces: std::collections::BTreeSet<&str> =
        spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(
        traces.into_iter().collect::<Vec<_>>(),
        [TRACE_ID],
        "only the trace its caller sampled: {spans:#?}"
    );
    let mut names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "auth",
            "hub.handoff",
            "limits",
            "log.commit",
            "publish",
            "stream.write"
        ]
    );
}
