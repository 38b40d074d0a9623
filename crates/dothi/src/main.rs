//! The `dothi` binary: glue only. Flags become a validated [`config::Config`], then
//! the command runs.

mod admin;
mod config;
mod export;
mod import;
mod local;
mod simulate;

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

/// Logs to standard error, at `default_level` unless DOTHI_LOG says otherwise.
fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DOTHI_LOG")
        .unwrap_or_else(|_| default_level.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Runs a command on `runtime`, logging as text from `default_level` up.
fn with_text_logs(
    runtime: &tokio::runtime::Runtime,
    default_level: &str,
    command: impl Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    init_logging(LogFormat::Text, default_level);
    runtime.block_on(command)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => {
            let config = args.validate()?;
            init_logging(config.log_format, "info");
            runtime.block_on(serve(config, None))
        }
        Command::Demo(args) => {
            let config = args.serve.validate_for(config::Mfa::Optional)?;
            init_logging(config.log_format, "info");
            let demo = Demo {
                simulate: !args.no_simulate,
                new_reports: !args.no_simulate && !args.no_new_reports,
                history: !args.no_history,
            };
            runtime.block_on(serve(config, Some(demo)))
        }
        // The figures are the output: only warnings are logged.
        #[cfg(feature = "bench")]
        Command::Bench(args) => with_text_logs(&runtime, "warn", bench::run(args)),
        #[cfg(not(feature = "bench"))]
        Command::Bench { .. } => anyhow::bail!(
            "this dothi was built without the benchmarks (build it with the `bench` feature, the default)"
        ),
        Command::Simulate(args) => with_text_logs(&runtime, "info", simulate::run(args)),
        // Their output is the data and its summary: only warnings are logged.
        Command::Import(args) => with_text_logs(&runtime, "warn", import::run(args)),
        Command::Export(args) => with_text_logs(&runtime, "warn", export::run(args)),
        Command::Admin(args) => with_text_logs(&runtime, "warn", admin::run(args)),
        Command::Audit(args) => with_text_logs(&runtime, "warn", admin::audit(args)),
    }
}

/// How often the plan's computed KPIs are recomputed (besides on change).
const SCORECARD_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// What `demo` adds to `serve`.
struct Demo {
    /// Whether the simulator feeds the demo devices.
    simulate: bool,
    /// Whether the simulator files a new report now and then.
    new_reports: bool,
    /// Whether the past year of readings is written as history.
    history: bool,
}

async fn serve(config: config::Config, demo: Option<Demo>) -> anyhow::Result<ExitCode> {
    let load_demo = demo.is_some();
    let started = std::time::Instant::now();
    let store = store::open(&config.store)
        .await
        .with_context(|| format!("opening the store {}", config.store))?;
    let node = hub::Node::start(store, &config.hub).context("setting up the hub")?;
    let state = node.state.clone();
    if config.hub.gate.insecure {
        tracing::warn!(
            "--insecure: authentication is OFF, every request acts as admin (development and conformance only)"
        );
    } else {
        // The demo makes its own admin and prints a login link instead (below).
        admin::ensure_admin(&state.identity, config.admin_key.as_deref(), !load_demo).await?;
    }
    tracing::info!(outbound = %config.hub.outbound, "requests made for callers");
    // The hour the data set's observations are dated to: the demo's history ends there.
    let mut observed_at = chrono::Utc::now();
    if load_demo {
        observed_at = demo::load_city(&state.hub).await?;
    }
    // Citizen reports: the demo's categories and a year of reports.
    let reports_config = reports::ReportsConfig {
        base_url: format!(
            "{}://{}",
            if config.hub.tls.is_some() {
                "https"
            } else {
                "http"
            },
            config.listen
        ),
        ..Default::default()
    };
    let reports = reports::start(&state, reports_config)
        .await
        .context("setting up citizen reports")?;
    if load_demo {
        demo::load_reports(&reports).await?;
    }
    let reports_sweep = reports::spawn_sweep(reports.clone());
    // The plan's scorecard: the demo loads the plan and its sample; KPIs are
    // recomputed every few minutes and when their inputs change.
    let scorecard = std::sync::Arc::new(
        scorecard::Scorecard::new(state.hub.clone()).with_audit(state.identity.clone()),
    );
    if load_demo {
        demo::load_scorecard(&scorecard).await?;
    }
    let recompute = scorecard.clone().spawn(SCORECARD_EVERY);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    // The IoT agent: its routes beside the hub's, and MQTT ingestion when configured
    // (`demo` turns it on when a broker answers on 127.0.0.1:1883).
    let agent = std::sync::Arc::new(iot::Agent::for_hub(&state));
    if load_demo {
        demo::provision_devices(&agent).await?;
    }
    // Alert rules: evaluated on the node holding the duties; the demo's presets.
    let mut alerts = alerts::Alerts::new(state.hub.clone());
    if let Some(relay) = config.smtp.clone() {
        alerts = alerts
            .with_smtp(relay)
            .map_err(|e| anyhow::anyhow!("--smtp-relay: {e}"))?;
    }
    let alerts = std::sync::Arc::new(alerts);
    if load_demo {
        demo::load_alerts(&alerts).await?;
    }
    let evaluator = alerts.clone().spawn();
    let mut mqtt_config = config.mqtt.clone();
    if load_demo && mqtt_config.is_none() {
        mqtt_config = iot::MqttConfig::local_broker(&config.mqtt_client_id).await;
    }
    let mut mqtt = mqtt_config
        .clone()
        .map(|c| iot::MqttIngest::start(agent.clone(), c));
    // The demo's simulator: over the broker when there is one, else straight to the
    // agent in this process.
    let (stop_simulator, simulator_stopped) = tokio::sync::watch::channel(false);
    let mut simulator = None;
    let mut new_reports = None;
    if demo.as_ref().is_some_and(|d| d.simulate) {
        let sink = match (&mqtt_config, mqtt.as_mut()) {
            (Some(c), Some(m)) => {
                m.wait_subscribed(std::time::Duration::from_secs(5)).await;
                let mut c = c.clone();
                c.client_id = format!("{}-simulator", config.mqtt_client_id);
                iot::simulate::Sink::Mqtt(iot::simulate::MqttSink::connect(&c))
            }
            _ => iot::simulate::Sink::Agent(agent.clone()),
        };
        simulator = Some(demo::sensors::spawn_simulator(
            sink,
            simulator_stopped.clone(),
        ));
    }
    if demo.as_ref().is_some_and(|d| d.new_reports) {
        new_reports = Some(reports::demo::spawn_new_reports(
            reports.clone(),
            reports::demo::NEW_REPORT_EVERY,
            simulator_stopped,
        ));
    }
    tracing::info!(listen = %config.listen, store = %config.store, mqtt = mqtt.is_some(), ready_ms = started.elapsed().as_millis() as u64, "dothi is ready");
    if load_demo {
        let base = format!("http://{}", config.listen);
        println!("dothi demo is running:");
        println!("  public page:   {base}/");
        if config.hub.gate.insecure {
            println!("  operations centre: {base}/ioc/ (authentication is off)");
        } else {
            let (key, link) = admin::demo_credentials(&state.identity).await?;
            println!("  operations centre, one-time login link (24 h):");
            println!("                 {base}/auth/v1/login-link?token={link}");
            println!("  admin API key (for curl, shown once): {key}");
            println!("                 export KEY={key}");
        }
        println!(
            "  API:           {base}/ngsi-ld/v1/entities?type=WaterObserved (Authorization: Bearer $KEY)"
        );
        println!("  API reference: {base}/docs");
        println!("  plan scorecard: {base}/scorecard/v1/public");
        println!(
            "  devices:       {base}/iot/devices (fed by the simulator{})",
            if simulator.is_some() { "" } else { ": off" }
        );
    }
    if load_demo {
        // Last of the demo data, so that it publishes what the other services loaded.
        let base = format!("http://{}", config.listen);
        demo::publish_open_data(state.hub.clone(), &scorecard, &base).await?;
    }
    // The demo's past year of readings, written as history in the background.
    let backfill = demo
        .as_ref()
        .is_some_and(|d| d.history)
        .then(|| demo::sensors::spawn_backfill(state.hub.clone(), observed_at));
    // The services' routes beside the hub's: the IoT agent, the web app, citizen
    // reports, the open data portal, alerts and the plan's scorecard.
    let components = vec![
        iot::component(agent),
        web::component(state.hub.clone(), config.web.clone()),
        reports::component(reports),
        opendata::component(
            state.hub.clone(),
            opendata::OpendataConfig {
                public_url: config.hub.public_url.clone(),
            },
        ),
        alerts::component(alerts),
        scorecard::component(scorecard),
    ];
    let served = node.serve(listener, components, shutdown_signal()).await;
    reports_sweep.abort();
    evaluator.abort();
    recompute.abort();
    if let Some(backfill) = backfill {
        backfill.abort();
    }
    let _ = stop_simulator.send(true);
    if let Some(simulator) = simulator {
        let _ = simulator.await;
    }
    if let Some(new_reports) = new_reports {
        let _ = new_reports.await;
    }
    if let Some(mqtt) = mqtt {
        mqtt.stop().await;
    }
    served.context("serving")?;
    tracing::info!("dothi stopped");
    Ok(ExitCode::SUCCESS)
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
