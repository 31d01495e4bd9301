//! `/openapi.json` describes exactly the endpoints docs/api.md lists, with their security
//! schemes and the shared error body.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::spawn_app;

const API_DOC: &str = include_str!("../../docs/api.md");

/// `METHOD /path` of every row of docs/api.md's endpoint table (queries left out).
fn documented_endpoints() -> BTreeSet<String> {
    let table = API_DOC
        .split("| method and path |")
        .nth(1)
        .expect("docs/api.md has the endpoint table");
    table
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|row| {
            let cell = row.split('`').nth(1).expect("a `METHOD /path` cell");
            cell.split('?').next().unwrap_or(cell).to_owned()
        })
        .collect()
}

#[actix_web::test]
async fn the_openapi_document_and_docs_api_md_list_the_same_endpoints() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let served: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            let methods = operations.as_object().unwrap().keys();
            methods.map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    assert_eq!(served, documented_endpoints());

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["admin_token"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["scheme"], "bearer");
    assert!(doc["paths"]["/v1/events"]["post"]["security"][0]["api_key"].is_array());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

/// Complete: every operation states what any operation may answer (405 with `Allow`, 500),
/// each answer has a description, and the schemas say what the server checks.
#[actix_web::test]
async fn every_operation_states_every_answer_it_can_give() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            for status in ["405", "500"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path}: no {status}"
                );
            }
            assert!(responses["405"]["headers"]["Allow"].is_object());
            for (status, response) in responses {
                assert!(
                    response["description"].is_string(),
                    "{method} {path} {status}: no description"
                );
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "408", "413", "415", "422"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path}: no {status}"
                    );
                }
            }
        }
    }
    let stream = &doc["paths"]["/t/{slug}/stream"]["get"]["responses"];
    assert!(stream["400"].is_object() && stream["422"].is_object());
    let schemas = &doc["components"]["schemas"];
    // `data` is any JSON value: no type.
    assert!(
        schemas["HistoryEvent"]["properties"]["data"]
            .get("type")
            .is_none()
    );
    assert!(
        schemas["EventIn"]["properties"]["data"]
            .get("type")
            .is_none()
    );
    assert_eq!(schemas["BroadcastFlag"]["enum"], serde_json::json!([true]));
    // An inbox item to a topic is refused (422 invalid_inbox): the schema excludes it.
    assert_eq!(
        schemas["EventIn"]["allOf"][0]["not"]["properties"]["to"]["required"],
        serde_json::json!(["topic"])
    );
    // A fallback with a topic or a broadcast is refused (422 invalid_fallback).
    assert_eq!(
        schemas["EventIn"]["allOf"][1]["not"]["required"],
        serde_json::json!(["to", "fallback"])
    );
    let limit = &doc["paths"]["/v1/events"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()["schema"];
    assert_eq!(
        (limit["minimum"].as_i64(), limit["maximum"].as_i64()),
        (Some(1), Some(1000))
    );
    assert_eq!(
        schemas["Retention"]["properties"]["max_events"]["minimum"],
        1
    );
    // An optional body is optional, not nullable.
    let key_body = &doc["paths"]["/admin/tenants/{slug}/api-keys"]["post"]["requestBody"];
    assert_ne!(key_body["required"], true);
    assert_eq!(
        key_body["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/NewApiKey"
    );
}
