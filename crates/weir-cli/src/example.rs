//! `weir example generate`: the seeded generator for the example data.
//!
//! The raw CSVs under `examples/data/raw/` were made by this generator with
//! the default seed; a test checks that regenerating them gives the same
//! bytes, so the committed data and the code that made it never drift.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Default seed of the committed example data.
pub(crate) const DEFAULT_SEED: u64 = 20_261_127;
/// Default number of customers.
pub(crate) const DEFAULT_CUSTOMERS: usize = 2_000;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ExampleCommand {
    /// Write raw customers and orders CSVs (deterministic for a seed).
    Generate {
        /// Output folder; `raw/customers.csv` and `raw/orders.csv` are written under it.
        #[arg(long, default_value = "examples/data")]
        out: PathBuf,
        /// Number of customers (orders are about 10 per customer).
        #[arg(long, default_value_t = DEFAULT_CUSTOMERS)]
        customers: usize,
        /// Random seed.
        #[arg(long, default_value_t = DEFAULT_SEED)]
        seed: u64,
    },
}

/// `weir example ...`.
pub(crate) fn example(command: ExampleCommand) -> anyhow::Result<ExitCode> {
    match command {
        ExampleCommand::Generate {
            out,
            customers,
            seed,
        } => {
            anyhow::ensure!(
                customers > 0 && customers <= 10_000_000,
                "--customers must be between 1 and 10,000,000"
            );
            let (c, o) = generate(customers, seed);
            write(&out.join("raw/customers.csv"), &c)?;
            write(&out.join("raw/orders.csv"), &o)?;
            println!(
                "wrote {} and {} (seed {seed})",
                out.join("raw/customers.csv").display(),
                out.join("raw/orders.csv").display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, body: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, body).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

const COUNTRIES: [&str; 6] = ["US", "DE", "FR", "GB", "IN", "BR"];
const FIRST: [&str; 8] = [
    "ana", "ben", "chen", "dara", "eli", "fatima", "goran", "hana",
];

/// Generates `(customers_csv, orders_csv)`.
///
/// Paid customers order more and spend more, so a model trained on the
/// features can learn something. About 3% of rows are dirty on purpose
/// (duplicates, missing emails, impossible ages, negative amounts) for the
/// cleaning stages to remove.
pub(crate) fn generate(customers: usize, seed: u64) -> (String, String) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut c = String::from("customer_id,email,country,signup_date,age,plan\n");
    let mut o = String::from("order_id,customer_id,order_ts,amount,status\n");
    let mut order_id = 0u64;
    for i in 0..customers {
        let id = format!("C{i:07}");
        let paid = rng.random_bool(0.3);
        let plan = if !paid {
            "free"
        } else if rng.random_bool(0.7) {
            "pro"
        } else {
            "team"
        };
        let name = FIRST[rng.random_range(0..FIRST.len())];
        let mut email = format!("{name}.{i}@example.com");
        let dirt: f64 = rng.random();
        if dirt < 0.01 {
            email.clear();
        } else if dirt < 0.03 {
            email = format!("  {}  ", email.to_uppercase());
        }
        let age = if rng.random_bool(0.01) {
            "-1".to_owned()
        } else {
            rng.random_range(18..80).to_string()
        };
        let country = COUNTRIES[rng.random_range(0..COUNTRIES.len())];
        let day = rng.random_range(0..365);
        let signup = date(2024, day);
        let row = format!("{id},{email},{country},{signup},{age},{plan}\n");
        c.push_str(&row);
        if rng.random_bool(0.01) {
            c.push_str(&row); // duplicate
        }
        let mean = if paid { 16.0 } else { 6.0 };
        let n = (mean * rng.random_range(0.2..1.8)) as usize;
        for _ in 0..n {
            order_id += 1;
            let day = rng.random_range(0..365);
            let secs = rng.random_range(0..86_400u32);
            let base = if paid { 80.0 } else { 35.0 };
            let mut amount: f64 = base * rng.random_range(0.3..2.5);
            if rng.random_bool(0.01) {
                amount = -amount;
            }
            let status = match rng.random_range(0..100) {
                0..=89 => "completed",
                90..=96 => "refunded",
                _ => "cancelled",
            };
            let _ = writeln!(
                o,
                "O{order_id:09},{id},{}T{:02}:{:02}:{:02},{amount:.2},{status}",
                date(2025, day),
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            );
        }
    }
    (c, o)
}

/// `year`-01-01 plus `day` days, as `YYYY-MM-DD` (non-leap years only).
fn date(year: u32, day: u32) -> String {
    const DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut rest = day % 365;
    let mut month = 0;
    for (m, len) in DAYS.iter().enumerate() {
        if rest < *len {
            month = m;
            break;
        }
        rest -= len;
    }
    format!("{year}-{:02}-{:02}", month + 1, rest + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(2025, 0), "2025-01-01");
        assert_eq!(date(2025, 31), "2025-02-01");
        assert_eq!(date(2025, 364), "2025-12-31");
    }

    #[test]
    fn same_seed_same_bytes() {
        assert_eq!(generate(50, 7), generate(50, 7));
        assert_ne!(generate(50, 7), generate(50, 8));
    }

    #[test]
    fn committed_example_data_matches_the_generator() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/raw");
        let (c, o) = generate(DEFAULT_CUSTOMERS, DEFAULT_SEED);
        let committed_c = std::fs::read_to_string(root.join("customers.csv")).unwrap();
        let committed_o = std::fs::read_to_string(root.join("orders.csv")).unwrap();
        assert!(
            committed_c == c,
            "examples/data/raw/customers.csv differs from `weir example generate`"
        );
        assert!(
            committed_o == o,
            "examples/data/raw/orders.csv differs from `weir example generate`"
        );
    }
}
