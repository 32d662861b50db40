//! What the benches print: percentiles of samples as Markdown table rows, and their settings from
//! environment variables. Standalone (no `super`), like `sys.rs`.

/// The `p`th percentile (0-100) of `sorted` (ascending, not empty), nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The environment variable `name` parsed, or `default` when unset or not a number.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Prints `| label | n | p50 | p99 | min | max |` for `values` (milliseconds, not empty).
pub fn summary(label: &str, mut values: Vec<f64>) {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "| {label} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        values.len(),
        percentile(&values, 50.0),
        percentile(&values, 99.0),
        values[0],
        values[values.len() - 1]
    );
}
