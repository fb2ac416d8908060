//! Dependencies between weir crates point one way (ARCHITECTURE.md):
//! spec, auth and audit are leaves; policy and contract build on them;
//! engine on those;
//! server and cli on engine. This test fails if a crate depends on one above it.

use std::collections::BTreeMap;

/// Layer of each crate; a crate may depend only on crates of a lower layer.
fn layer(name: &str) -> Option<u8> {
    Some(match name {
        "weir-spec" | "weir-auth" | "weir-audit" | "weir-keyring" | "weir-queue" => 0,
        "weir-policy" | "weir-contract" => 1,
        "weir-engine" => 2,
        "weir-testkit" => 3,
        "weir-server" => 4,
        "weir-cli" => 5,
        _ => return None,
    })
}

#[test]
fn crate_dependencies_point_down() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut seen = BTreeMap::new();
    for package in meta["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        let Some(own) = layer(name) else {
            panic!("crate `{name}` has no layer; add it to this test and to ARCHITECTURE.md");
        };
        for dep in package["dependencies"].as_array().unwrap() {
            let dep_name = dep["name"].as_str().unwrap();
            let normal = dep["kind"].is_null();
            if let (Some(theirs), true) = (layer(dep_name), normal) {
                assert!(
                    theirs < own,
                    "`{name}` (layer {own}) must not depend on `{dep_name}` (layer {theirs})"
                );
            }
        }
        seen.insert(name.to_owned(), own);
    }
    assert!(
        seen.contains_key("weir-spec")
            && seen.contains_key("weir-engine")
            && seen.contains_key("weir-cli")
    );
}
