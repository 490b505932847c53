//! The man pages are lint-clean under `mandoc -Tlint`, and every command
//! and variable a user meets is in them.

#[path = "support/tools.rs"]
mod tools;

use std::process::Command;

const PAGES: [&str; 2] = ["man/cronq.8", "man/cronq.toml.5"];

/// mandoc's faults in `page`, judged at `-W warning`: what is wrong with the
/// page itself. Below that level (STYLE) mandoc also reports on the
/// machine: cross-references to manuals not installed here, and "outdated
/// mandoc.db lacks socat(1) entry" when the manual database is older than
/// the pages installed since (mandoc installed before socat). Neither says
/// anything about the page, and a test must not depend on the order in
/// which tools were installed.
fn lint(page: &str) -> Vec<String> {
    let out = Command::new("mandoc")
        .args(["-Tlint", "-W", "warning", page])
        .output()
        .unwrap();
    let mut faults: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .map(str::to_string)
        .collect();
    if faults.is_empty() && !out.status.success() {
        faults.push(format!("mandoc -Tlint exited with {}", out.status));
    }
    faults
}

#[test]
fn man_pages_are_lint_clean() {
    if !tools::have("mandoc") {
        return;
    }
    for page in PAGES {
        let faults = lint(&format!("{}/{page}", env!("CARGO_MANIFEST_DIR")));
        assert!(faults.is_empty(), "{page}:\n{}", faults.join("\n"));
    }
}

/// The newcomer's machine, made on purpose: a manual tree whose mandoc.db
/// was built before socat's page arrived, mounted over /usr/share/man in a
/// private mount namespace (mandoc -Tlint reads no MANPATH; nothing leaks
/// onto the host). The lint must pass there too, and must still catch a
/// real fault. Needs root and makewhatis; says SKIPPED otherwise.
#[test]
fn the_lint_judges_the_page_not_the_machine() {
    if !tools::have("mandoc") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !tools::have("makewhatis") || !tools::have("unshare") {
        eprintln!(
            "SKIPPED the_lint_judges_the_page_not_the_machine: needs root, makewhatis and unshare"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("man");
    let page = |name: &str, section: &str| {
        let folder = tree.join(format!("man{section}"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join(format!("{name}.{section}")),
            format!(
                ".Dd January 1, 2026\n.Dt {} {section}\n.Os\n.Sh NAME\n.Nm {name}\n.Nd a page\n",
                name.to_ascii_uppercase()
            ),
        )
        .unwrap();
    };
    page("other", "1");
    let made = Command::new("makewhatis").arg(&tree).status().unwrap();
    assert!(made.success(), "makewhatis failed");
    // Installed after the database was made: the database is now stale.
    page("socat", "1");
    page("journalctl", "1");

    let faulty = dir.path().join("faulty.8");
    std::fs::write(
        &faulty,
        ".Dd January 1, 2026\n.Dt FAULTY 8\n.Os\n.Sh NAME\n.Nm faulty\n.Sh DESCRIPTION\nno .Nd above\n",
    )
    .unwrap();
    let me = std::env::current_exe().unwrap();
    let script =
        r#"mount --bind "$TREE" /usr/share/man && exec "$ME" --exact lint_child --nocapture"#;
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-ec", script])
        .env("TREE", &tree)
        .env("ME", me)
        .env(CHILD, &faulty)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

/// Set, to the path of a page with a real fault, in the child that lints
/// inside the namespace.
const CHILD: &str = "CRONQ_MAN_LINT_CHILD";

/// The half of `the_lint_judges_the_page_not_the_machine` that runs in the
/// namespace with the stale database.
#[test]
fn lint_child() {
    let Some(faulty) = std::env::var_os(CHILD) else {
        return;
    };
    // The stale database is in place: mandoc complains about the machine.
    let page = format!("{}/man/cronq.8", env!("CARGO_MANIFEST_DIR"));
    let raw = Command::new("mandoc")
        .args(["-Tlint", &page])
        .output()
        .unwrap();
    let raw = String::from_utf8_lossy(&raw.stderr).into_owned();
    assert!(
        raw.contains("outdated mandoc.db lacks socat(1) entry"),
        "the namespace should reproduce a stale database: {raw}"
    );
    for page in PAGES {
        let faults = lint(&format!("{}/{page}", env!("CARGO_MANIFEST_DIR")));
        assert!(faults.is_empty(), "{page}:\n{}", faults.join("\n"));
    }
    let faults = lint(faulty.to_str().unwrap());
    assert!(
        faults
            .iter()
            .any(|f| f.contains("NAME section without description")),
        "a page without .Nd is a fault: {faults:?}"
    );
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
