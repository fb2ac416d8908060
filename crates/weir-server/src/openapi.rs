//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, built from
//! [`ROUTES`], the same table the router is checked against in tests.

use serde_json::{Map, Value, json};

/// One route: method, path (OpenAPI form), whether it needs a token, the
/// permission it needs, and a summary.
#[derive(Clone, Copy, Debug)]
pub struct RouteDoc {
    /// `get` or `post`.
    pub method: &'static str,
    /// The path, with `{param}` segments.
    pub path: &'static str,
    /// Whether a bearer token is required.
    pub authenticated: bool,
    /// Roles that may call it.
    pub roles: &'static str,
    /// What it does.
    pub summary: &'static str,
}

/// Every route the server serves.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "get",
        path: "/.well-known/jwks.json",
        authenticated: false,
        roles: "anyone",
        summary: "Public keys of stage tokens (JWKS)",
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/openapi.json",
        authenticated: false,
        roles: "anyone",
        summary: "This document",
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/whoami",
        authenticated: true,
        roles: "any role",
        summary: "The caller's identity and roles",
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/pipelines",
        authenticated: true,
        roles: "admin, engineer",
        summary: "Pipelines the server runs by name",
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/runs",
        authenticated: true,
        roles: "admin, engineer (run_as)",
        summary: "Submit a run: {\"pipeline\": NAME} or {\"yaml\": TEXT}; 202 with the run id",
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/runs",
        authenticated: true,
        roles: "admin, engineer",
        summary: "Run records",
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/runs/{run_id}",
        authenticated: true,
        roles: "admin, engineer",
        summary: "One run, with stage states",
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/runs/{run_id}/events",
        authenticated: true,
        roles: "admin, engineer",
        summary: "The run's events as JSON lines, followed until it ends",
    },
    RouteDoc {
        method: "post",
        path: "/api/v1/runs/{run_id}/cancel",
        authenticated: true,
        roles: "admin, engineer",
        summary: "Cancel a run",
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/audit",
        authenticated: true,
        roles: "admin, auditor",
        summary: "Query the audit log (filters, paging)",
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/audit/export",
        authenticated: true,
        roles: "admin, auditor",
        summary: "Export matching audit events as JSON lines",
    },
    RouteDoc {
        method: "get",
        path: "/api/v1/access-review",
        authenticated: true,
        roles: "admin, auditor",
        summary: "Access review over a window (recorded)",
    },
];

/// The document.
#[must_use]
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in ROUTES {
        let mut op = json!({
            "summary": r.summary,
            "description": format!("Roles: {}.", r.roles),
            "responses": responses(r.authenticated),
        });
        if r.authenticated {
            op["security"] = json!([{ "bearer": [] }]);
        }
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        let entry = paths
            .entry(r.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[r.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "weir API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Runs, audit log and access review of a weir service. Every authenticated call and every refusal is recorded in the audit log."
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" }
            }
        },
        "paths": paths,
    })
}

fn responses(authenticated: bool) -> Value {
    let mut out = json!({ "200": { "description": "OK" } });
    if authenticated {
        out["401"] = json!({ "description": "Missing or invalid token (WWW-Authenticate: Bearer error=\"invalid_token\")" });
        out["403"] = json!({ "description": "The caller's roles do not allow this" });
        out["429"] = json!({ "description": "Too many failed authentications from this client" });
    }
    out
}
