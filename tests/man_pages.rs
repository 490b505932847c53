//! The man pages are lint-clean under `mandoc -Tlint`, and every command
//! and variable a user meets is in them.

#[path = "support/tools.rs"]
mod tools;

use std::process::Command;

const PAGES: [&str; 2] = ["man/cronq.8", "man/cronq.toml.5"];

#[test]
fn man_pages_are_lint_clean() {
    if !tools::have("mandoc") {
        return;
    }
    for page in PAGES {
        let path = format!("{}/{page}", env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("mandoc")
            .args(["-Tlint", &path])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // mandoc reports cross-references to pages not installed on this
        // machine (cronq.toml(5) before the package is installed); those
        // are not faults of the page.
        let faults: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("referenced manual not found"))
            .collect();
        assert!(faults.is_empty(), "{page}:\n{}", faults.join("\n"));
    }
}

#[test]
fn cronq_8_covers_every_command_and_variable() {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/cronq.8")).unwrap();
    let commands = cronq::admin::protocol::COMMANDS;
    for c in commands {
        assert!(
            page.contains(c),
            "man/cronq.8 does not mention the {c} command"
        );
    }
    let config =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/config.rs")).unwrap();
    let vars: std::collections::BTreeSet<&str> = config
        .split('"')
        .filter(|s| s.len() > 3 && s.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .filter(|s| {
            !s.ends_with('_') && !s.starts_with("ENABLE_NIGHTLY") && !s.starts_with("ENABLE_OTHER")
        })
        .filter(|s| {
            ![
                "STATE_DIRECTORY",
                "RUNTIME_DIRECTORY",
                "CONFIGURATION_DIRECTORY",
                "CREDENTIALS_DIRECTORY",
            ]
            .contains(s)
        })
        .collect();
    let missing: Vec<&&str> = vars.iter().filter(|v| !page.contains(**v)).collect();
    assert!(missing.is_empty(), "man/cronq.8 lacks {missing:?}");
}
