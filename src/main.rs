use std::process::ExitCode;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("daemon") => cronq::daemon::main_from_env(),
        _ => {
            eprintln!("usage: cronq daemon");
            ExitCode::from(2)
        }
    }
}
