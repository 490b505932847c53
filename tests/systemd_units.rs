//! Runs tests/systemd_units.sh (systemd-analyze verify and security,
//! systemd-sysusers, systemd-tmpfiles on systemd/) against the built binary.
//! Skips, saying so, where systemd-analyze is not installed.

use std::process::Command;

#[test]
fn units_verify_clean_and_score_at_most_2() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED units_verify_clean_and_score_at_most_2: systemd-analyze is not installed"
        );
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/systemd_units.sh");
    let out = Command::new("sh")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_cronq"))
        .output()
        .expect("run tests/systemd_units.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
}
