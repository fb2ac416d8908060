//! `weir plan`: what will run, in which order, touching what.

use std::path::Path;
use std::process::ExitCode;

use weir_spec::Pipeline;

use crate::Output;
use crate::access;
use crate::load::{EXIT_INVALID, load_or_report};

/// `weir plan`.
pub(crate) fn plan(file: &Path, policies_dir: &Path, output: Output) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load_or_report(file)? else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let Some(policies) = access::load_policies(policies_dir)? else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let p = &loaded.pipeline;
    let scopes = match weir_engine::security::plan(&policies, p) {
        Ok(scopes) => scopes,
        Err(missing) => {
            if output == Output::Text {
                print!("{}", plan_text(p));
            }
            access::report_missing(&missing, policies_dir);
            return Ok(ExitCode::from(access::EXIT_DENIED));
        }
    };
    match output {
        Output::Json => {
            let mut json = plan_json(p);
            json["scopes"] = scopes_json(&scopes);
            json["policy_digest"] = policies.digest_hex().into();
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        Output::Text => {
            print!("{}", plan_text(p));
            print!("{}", access::scopes_text(p, &scopes));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn scopes_json(scopes: &[weir_policy::CompiledScope]) -> serde_json::Value {
    scopes
        .iter()
        .map(|s| {
            serde_json::json!({
                "stage": s.stage(),
                "entries": s.entries().iter().map(|e| serde_json::json!({
                    "dataset": e.dataset,
                    "role": e.role.as_str(),
                    "store": e.entry.store,
                    "path": e.entry.path.as_str(),
                    "columns": e.entry.columns,
                    "actions": e.justified_by.iter().map(|(a, g)| serde_json::json!({"action": a.as_str(), "grant": g})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn dataset_ref(p: &Pipeline, name: &str) -> String {
    p.datasets.get(name).map_or_else(
        || name.to_owned(),
        |d| {
            let contract = d.contract.as_ref().map_or_else(String::new, |c| {
                let mut what = format!(" [contract: {} column(s)", c.columns.len());
                if !c.primary_key.is_empty() {
                    what.push_str(&format!(", key {}", c.primary_key.join("+")));
                }
                if c.strict {
                    what.push_str(", strict");
                }
                if let Some(q) = c.quarantine() {
                    what.push_str(&format!(", bad rows to {q}"));
                }
                what.push(']');
                what
            });
            format!("{name} ({}:{}){contract}", d.store, d.path)
        },
    )
}

/// The plan as text: one block per level.
pub(crate) fn plan_text(p: &Pipeline) -> String {
    let levels = p.dag.levels();
    let depth = levels.iter().max().map_or(0, |m| m + 1);
    let mut out = format!(
        "pipeline {} runs as principal `{}`: {} stage(s) in {} level(s), concurrency {}\n",
        p.name,
        p.principal,
        p.stages.len(),
        depth,
        p.defaults.concurrency
    );
    for level in 0..depth {
        out.push_str(&format!("\nlevel {level}\n"));
        for &i in p.dag.order() {
            if levels.get(i) != Some(&level) {
                continue;
            }
            let Some(s) = p.stages.get(i) else { continue };
            out.push_str(&format!(
                "  {} [{}] retries {}, timeout {}\n",
                s.name,
                s.kind.name(),
                s.retries,
                weir_engine::humantime(s.timeout)
            ));
            for input in &s.inputs {
                out.push_str(&format!("    reads  {}\n", dataset_ref(p, input)));
            }
            for output in &s.outputs {
                out.push_str(&format!("    writes {}\n", dataset_ref(p, output)));
            }
            let after: Vec<&str> = p
                .dag
                .dependencies(i)
                .iter()
                .filter_map(|d| p.stages.get(*d).map(|s| s.name.as_str()))
                .collect();
            if !after.is_empty() {
                out.push_str(&format!("    after  {}\n", after.join(", ")));
            }
        }
    }
    out
}

fn plan_json(p: &Pipeline) -> serde_json::Value {
    let stages: Vec<_> = p
        .dag
        .order()
        .iter()
        .filter_map(|&i| {
            let s = p.stages.get(i)?;
            Some(serde_json::json!({
                "name": s.name, "kind": s.kind.name(),
                "level": p.dag.levels().get(i),
                "inputs": s.inputs, "outputs": s.outputs,
                "after": p.dag.dependencies(i).iter().filter_map(|d| p.stages.get(*d).map(|s| s.name.clone())).collect::<Vec<_>>(),
                "retries": s.retries, "timeout_secs": s.timeout.as_secs_f64(),
            }))
        })
        .collect();
    serde_json::json!({
        "pipeline": p.name, "principal": p.principal,
        "concurrency": p.defaults.concurrency,
        "datasets": p.datasets, "stages": stages,
    })
}
