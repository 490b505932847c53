//! External programs a test needs (socat, mandoc, ...). Missing ones skip
//! the test loudly on a developer's machine; under `.ci/run`
//! (CRONQ_TEST_REQUIRE_TOOLS=1) they fail it, so CI never skips silently.

#![allow(dead_code)]

pub fn have(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CRONQ_TEST_REQUIRE_TOOLS").is_none(),
            "{tool} is required (CRONQ_TEST_REQUIRE_TOOLS is set) but not installed"
        );
        eprintln!("SKIPPED: {tool} is not installed; .ci/run installs it");
    }
    found
}
