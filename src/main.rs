//! `herald`: parse the command line and configuration, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use herald::cli::{Cli, Command, healthcheck, run_command, serve};
use herald::config::Settings;
use herald::{telemetry, traces};

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_process_env(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("herald: {error}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    let result = match command {
        Command::Serve => match traces::layer(&settings.telemetry) {
            Ok(traces) => {
                let (layer, exporter) = traces.unzip();
                telemetry::init(telemetry::subscriber(&settings.log, layer, std::io::stdout));
                let served = serve(settings).await;
                // What is still buffered is sent before the process ends.
                drop(exporter);
                served
            }
            Err(error) => Err(error.context("cannot set up the trace exporter")),
        },
        Command::Healthcheck => healthcheck(&settings),
        command => {
            telemetry::init(telemetry::subscriber(&settings.log, None, std::io::stderr));
            run_command(&settings, command).await.map(|answer| {
                println!("{answer:#}");
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herald: {error:#}");
            ExitCode::FAILURE
        }
    }
}
