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

/// A Python that can import `module`: `CRONQ_TEST_PYTHON` (the CI venv),
/// else `python3`. `None` skips the caller loudly; under
/// CRONQ_TEST_REQUIRE_TOOLS, or with `CRONQ_TEST_PYTHON` set to a Python
/// that lacks the module, it panics instead, so CI cannot skip silently.
pub fn python_with(module: &str) -> Option<std::path::PathBuf> {
    let explicit = std::env::var_os("CRONQ_TEST_PYTHON").filter(|p| !p.is_empty());
    let python = std::path::PathBuf::from(explicit.clone().unwrap_or_else(|| "python3".into()));
    let works = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        return Some(python);
    }
    let hint = format!(
        "python3 -m venv V && V/bin/pip install {module}, and set CRONQ_TEST_PYTHON=V/bin/python"
    );
    assert!(
        explicit.is_none() && std::env::var_os("CRONQ_TEST_REQUIRE_TOOLS").is_none(),
        "{} cannot import {module}; {hint}",
        python.display()
    );
    // Past the test harness's capture of eprintln!, so it shows.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("\n*** SKIPPED: no Python with {module} ({hint}) ***\n\n").as_bytes(),
    );
    None
}
