//! `weir access review`: see [`weir_engine::review`].

use std::path::Path;
use std::process::ExitCode;

use weir_audit::Origin;
use weir_engine::review::Review;

use crate::Output;
use crate::storage::Storage;

/// `weir access review`.
pub(crate) fn review(
    storage: &Storage,
    policies_dir: &Path,
    since: &str,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let Some(policies) = crate::access::load_policies(policies_dir)? else {
        return Ok(ExitCode::from(crate::load::EXIT_INVALID));
    };
    anyhow::ensure!(
        weir_spec::parse_duration(since).is_some(),
        "--since `{since}` is not a duration such as `30d` or `12h`"
    );
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let audit = storage.audit(Origin::Cli).await?;
        let actor = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        let actor = if actor.is_empty() || actor.len() > 64 {
            "unknown".into()
        } else {
            actor
        };
        let (review, summary) =
            weir_engine::review::review(&audit, &policies, since, &actor).await?;
        match output {
            Output::Json => println!("{}", serde_json::to_string_pretty(&review)?),
            Output::Text => print!("{}", render(&review, &summary)),
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn render(r: &Review, summary: &str) -> String {
    let mut out = format!("{summary}\n");
    out.push_str("\nGRANT                                     USED ACTIONS / GRANTED          EVENTS  UNUSED RESOURCES\n");
    for u in &r.grants {
        let used: Vec<&str> = u.used.iter().copied().collect();
        out.push_str(&format!(
            "{:40}  {:30}  {:>6}  {}\n",
            u.id,
            format!("{} / {}", used.join(","), u.granted.join(",")),
            u.events,
            if u.unused_resources.is_empty() {
                "-".to_owned()
            } else {
                u.unused_resources.join(" ")
            }
        ));
    }
    if !r.denied.is_empty() {
        out.push_str("\ndenied attempts\n");
        for d in &r.denied {
            out.push_str(&format!(
                "  {} stage `{}` {} {} x{}\n",
                d.actor, d.stage, d.action, d.resource, d.count
            ));
        }
    }
    out.push_str(&format!(
        "\nsuggested narrower policy\n\n{}",
        r.suggested_policy
    ));
    out
}
