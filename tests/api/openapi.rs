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
