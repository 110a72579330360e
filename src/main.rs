//! `medway`: the one binary. Wiring only: parse the command line, set up logging, call into
//! the engine and connectors crates. `anyhow` lives here and nowhere else.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    cli::telemetry::init(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("medway: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::dispatch(args)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("medway: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
