//! `weir graph`: the pipeline as Graphviz DOT or Mermaid.

use std::path::Path;
use std::process::ExitCode;

use weir_spec::{Edge, Pipeline};

use crate::load::{EXIT_INVALID, load_or_report};

/// Graph languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// Mermaid flowchart (renders in GitHub and GitLab markdown).
    Mermaid,
}

/// `weir graph`.
pub(crate) fn graph(file: &Path, format: GraphFormat) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load_or_report(file)? else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let text = match format {
        GraphFormat::Dot => dot(&loaded.pipeline),
        GraphFormat::Mermaid => mermaid(&loaded.pipeline),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// Stages are boxes, datasets cylinders; `needs` edges are dashed.
pub(crate) fn dot(p: &Pipeline) -> String {
    let mut out = format!("digraph \"{}\" {{\n  rankdir=LR;\n", p.name);
    for name in p.datasets.keys() {
        out.push_str(&format!(
            "  \"ds:{name}\" [label=\"{name}\", shape=cylinder];\n"
        ));
    }
    for s in &p.stages {
        out.push_str(&format!(
            "  \"stage:{0}\" [label=\"{0}\\n({1})\", shape=box];\n",
            s.name,
            s.kind.name()
        ));
        for i in &s.inputs {
            out.push_str(&format!("  \"ds:{i}\" -> \"stage:{}\";\n", s.name));
        }
        for o in &s.outputs {
            out.push_str(&format!("  \"stage:{}\" -> \"ds:{o}\";\n", s.name));
        }
    }
    for (a, b, why) in p.dag.edges() {
        if why == Edge::Needs
            && let (Some(a), Some(b)) = (p.stages.get(a), p.stages.get(b))
        {
            out.push_str(&format!(
                "  \"stage:{}\" -> \"stage:{}\" [style=dashed, label=\"needs\"];\n",
                a.name, b.name
            ));
        }
    }
    out.push_str("}\n");
    out
}

/// The same graph as a Mermaid flowchart.
pub(crate) fn mermaid(p: &Pipeline) -> String {
    let mut out = String::from("flowchart LR\n");
    for name in p.datasets.keys() {
        out.push_str(&format!("  d_{name}[({name})]\n"));
    }
    for s in &p.stages {
        let id = s.name.replace('-', "_");
        out.push_str(&format!("  s_{id}[\"{} ({})\"]\n", s.name, s.kind.name()));
        for i in &s.inputs {
            out.push_str(&format!("  d_{i} --> s_{id}\n"));
        }
        for o in &s.outputs {
            out.push_str(&format!("  s_{id} --> d_{o}\n"));
        }
    }
    for (a, b, why) in p.dag.edges() {
        if why == Edge::Needs
            && let (Some(a), Some(b)) = (p.stages.get(a), p.stages.get(b))
        {
            out.push_str(&format!(
                "  s_{} -.->|needs| s_{}\n",
                a.name.replace('-', "_"),
                b.name.replace('-', "_")
            ));
        }
    }
    out
}
