//! `medway`: the one binary. Wiring only: parse the command line, set up logging, call into
//! the engine and connectors crates. `anyhow` lives here and nowhere else.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    if !matches!(args.command, cli::Command::Run(_)) {
        // Commands that print (`medway messages list | head`) end quietly when the reader goes
        // away. The engine keeps SIGPIPE ignored: a peer closing a socket must never kill it.
        // SAFETY: setting a signal disposition before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    cli::telemetry::init(args.log_format);
    // Every TLS config names ring explicitly; this covers any library that asks for the default.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
