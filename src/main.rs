//! The binary: parse the command line, read the config, start logging and the runtime, run.

use std::process::ExitCode;

use clap::Parser;
use marquee::cli::{self, Cli};
use marquee::config::Config;
use marquee::telemetry;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("marquee: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logs(config.log_json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("marquee: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("marquee: {e:#}");
            ExitCode::FAILURE
        }
    }
}
