use serde_json::Value;

use crate::support::spawn_app;

#[actix_web::test]
async fn the_openapi_document_describes_every_route() {
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
    let expected = [
        ("/admin/tenants", &["get", "post"][..]),
        ("/admin/tenants/{slug}", &["delete", "get", "patch"]),
        ("/admin/tenants/{slug}/api-keys", &["get", "post"]),
        ("/admin/tenants/{slug}/api-keys/{id}", &["delete"]),
        ("/admin/tenants/{slug}/signing-keys", &["get", "post"]),
        ("/admin/tenants/{slug}/signing-keys/{kid}", &["delete"]),
        ("/v1/events", &["get", "post"]),
        ("/t/{slug}/stream", &["get"]),
        ("/t/{slug}/session", &["delete", "post"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
    ];
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(
        paths.len(),
        expected.len(),
        "documented: {:?}",
        paths.keys()
    );
    for (path, methods) in expected {
        let mut documented: Vec<&str> = paths[path]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        documented.sort_unstable();
        assert_eq!(documented, methods, "{path}");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["admin_token"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["scheme"], "bearer");
    assert!(doc["paths"]["/v1/events"]["post"]["security"][0]["api_key"].is_array());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}
