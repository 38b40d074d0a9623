//! The `dothi` binary: glue only. Flags become a validated [`config::Config`], then
//! the command runs.

mod bench;
mod config;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use config::{Cli, Command, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dothi: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("DOTHI_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => {
            let config = args.validate()?;
            init_logging(config.log_format);
            runtime.block_on(serve(config, false))
        }
        Command::Demo(args) => {
            let config = args.validate()?;
            init_logging(config.log_format);
            runtime.block_on(serve(config, true))
        }
        Command::Bench(args) => runtime.block_on(bench::run(args)),
    }
}

async fn serve(config: config::Config, load_demo: bool) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let store = store::open(&config.store)
        .await
        .with_context(|| format!("opening the store {}", config.store))?;
    let state = hub::state(store, &config.hub);
    if load_demo {
        let report = city::load(&state.hub)
            .await
            .context("loading the Quảng Trị data set")?;
        tracing::info!(
            entities = report.entities(),
            created = report.created,
            build_ms = report.build_time.as_millis() as u64,
            write_ms = report.write_time.as_millis() as u64,
            "Quảng Trị data set loaded (administrative units and demo layers)"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    // The IoT agent: its routes beside the hub's, and MQTT ingestion when configured
    // (`demo` turns it on when a broker answers on 127.0.0.1:1883).
    let agent = std::sync::Arc::new(iot::Agent::for_hub(&state));
    let mut mqtt_config = config.mqtt.clone();
    if load_demo && mqtt_config.is_none() {
        mqtt_config = local_broker(&config.mqtt_client_id).await;
    }
    let mqtt = mqtt_config.map(|c| iot::MqttIngest::start(agent.clone(), c));
    tracing::info!(listen = %config.listen, store = %config.store, mqtt = mqtt.is_some(), ready_ms = started.elapsed().as_millis() as u64, "dothi is ready");
    let served = hub::serve_with(listener, state, iot::routes(agent), shutdown_signal()).await;
    if let Some(mqtt) = mqtt {
        mqtt.stop().await;
    }
    served.context("serving")?;
    tracing::info!("dothi stopped");
    Ok(ExitCode::SUCCESS)
}

/// The MQTT settings of a broker on 127.0.0.1:1883 when one accepts a connection.
async fn local_broker(client_id: &str) -> Option<iot::MqttConfig> {
    let probe = tokio::net::TcpStream::connect(("127.0.0.1", iot::MqttConfig::DEFAULT_PORT));
    match tokio::time::timeout(std::time::Duration::from_millis(500), probe).await {
        Ok(Ok(_)) => iot::MqttConfig::from_url("mqtt://127.0.0.1:1883", client_id).ok(),
        _ => {
            tracing::info!("no MQTT broker on 127.0.0.1:1883: device measures over HTTP only");
            None
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
