//! Command-line flags and `DOTHI_*` variables, read raw by clap, then checked into a
//! [`Config`] before anything starts.

use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Where data lives unless told otherwise.
pub const DEFAULT_STORE: &str = "sqlite://./dothi-data/dothi.db";

#[derive(Parser)]
#[command(
    name = "dothi",
    version,
    about = "dothi: the smart-city data hub (NGSI-LD) of Quảng Trị"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Runs the hub.
    Serve(ServeArgs),
    /// Runs the hub with the Quảng Trị data set loaded: its 78 communes and wards, and
    /// demo sensors, places and indicators; devices feed the demo sensors.
    Demo(DemoArgs),
    /// Measures the hub on this machine and prints the figures.
    #[cfg(feature = "bench")]
    Bench(bench::BenchArgs),
    /// Measures the hub on this machine: not in this build.
    #[cfg(not(feature = "bench"))]
    #[command(hide = true, disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// Sends readings of the demo devices (those `dothi demo` provisions) over MQTT or
    /// HTTP: daily cycles, rush-hour pollution and a flood on the Thạch Hãn.
    Simulate(crate::simulate::SimulateArgs),
    /// Loads entities from a file (NGSI-LD JSON or JSON Lines, GeoJSON, CSV with a
    /// column mapping) in batches. Exit status: 0 all imported, 2 some records
    /// rejected (the others imported), 1 stopped by an error.
    Import(crate::import::ImportArgs),
    /// Writes the entities a query selects (type, q, attrs) as NGSI-LD JSON or JSON
    /// Lines, GeoJSON or CSV.
    Export(crate::export::ExportArgs),
    /// Users and API keys, straight on the store, with the server running or not
    /// (recovery when nobody can log in).
    Admin(crate::admin::AdminArgs),
    /// The audit log: check its hash chain, or export it as JSON Lines.
    Audit(crate::admin::AuditArgs),
}

#[derive(Args, Clone)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Do not run the simulator that feeds the demo devices and files new demo reports.
    #[arg(long)]
    pub no_simulate: bool,
    /// Do not file new demo reports now and then (the simulator's residents), e.g. for
    /// tests that count reports.
    #[arg(long)]
    pub no_new_reports: bool,
    /// Do not write the past year of the demo sensors' readings as history (written
    /// once per store, in the background, otherwise).
    #[arg(long, env = "DOTHI_DEMO_NO_HISTORY")]
    pub no_history: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "DOTHI_LISTEN", default_value = "127.0.0.1:1026")]
    pub listen: String,
    /// Where data lives: sqlite://path/to/file.db, or postgres://user@host/db
    /// (PostgreSQL with PostGIS).
    #[arg(
        long,
        env = "DOTHI_STORE",
        default_value = DEFAULT_STORE
    )]
    pub store: String,
    /// Largest request body, in bytes (larger ones get 413).
    #[arg(long, env = "DOTHI_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Most instances of one attribute in one answer of the temporal API; a longer
    /// history comes in pages (206 Partial Content with a `Content-Range`).
    #[arg(long, env = "DOTHI_TEMPORAL_PAGE_INSTANCES", default_value_t = hub::temporal::MAX_INSTANCES)]
    pub temporal_page_instances: usize,
    /// Log format.
    #[arg(long, env = "DOTHI_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Seconds a remote @context may take to fetch.
    #[arg(long, env = "DOTHI_CONTEXT_TIMEOUT_SECS", default_value_t = 5)]
    pub context_timeout_secs: u64,
    /// How long history is kept: `[tenant=NAME][/type=TYPE]:DURATION` (ISO 8601),
    /// e.g. `P2Y` or `type=AirQualityObserved:P90D`; repeat the flag or separate rules
    /// with commas. The most specific rule applies; without one, history is kept whole.
    #[arg(long, env = "DOTHI_HISTORY_RETENTION", value_delimiter = ',')]
    pub history_retention: Vec<String>,
    /// Seconds between two runs of the history purge.
    #[arg(long, env = "DOTHI_RETENTION_INTERVAL_SECS", default_value_t = 600)]
    pub retention_interval_secs: u64,
    /// MQTT broker the IoT agent takes device measures from, e.g.
    /// mqtt://127.0.0.1:1883 (`mqtt://user:password@host:port` with credentials).
    /// Without it MQTT is off; `demo` then uses 127.0.0.1:1883 if a broker answers.
    #[arg(long, env = "DOTHI_MQTT_URL")]
    pub mqtt_url: Option<String>,
    /// The IoT agent's MQTT client id: its persistent session at the broker, so one
    /// per dothi process.
    #[arg(long, env = "DOTHI_MQTT_CLIENT_ID", default_value = "dothi")]
    pub mqtt_client_id: String,
    /// Several nodes of one hub taking measures from one broker: the same group name
    /// on each (and a distinct --mqtt-client-id), so that each measure goes to one
    /// node (an MQTT shared subscription, `$share/GROUP/…`).
    #[arg(long, env = "DOTHI_MQTT_SHARED_GROUP")]
    pub mqtt_shared_group: Option<String>,
    /// The SMTP relay of alert e-mails, `host[:port]`; without it, notification
    /// policies with e-mail channels are refused.
    #[arg(long, env = "DOTHI_SMTP_RELAY")]
    pub smtp_relay: Option<String>,
    /// The sender of alert e-mails.
    #[arg(
        long,
        env = "DOTHI_SMTP_FROM",
        default_value = "dothi <dothi@localhost>"
    )]
    pub smtp_from: String,
    /// How the relay is spoken to: starttls (port 587 by default), tls (465) or none
    /// (25; loopback or a trusted network only).
    #[arg(long, env = "DOTHI_SMTP_SECURITY", default_value = "starttls")]
    pub smtp_security: String,
    /// The relay's user name; its password comes from DOTHI_SMTP_PASSWORD.
    #[arg(long, env = "DOTHI_SMTP_USER")]
    pub smtp_user: Option<String>,
    #[arg(skip = std::env::var("DOTHI_SMTP_PASSWORD").ok())]
    pub smtp_password: Option<String>,
    /// A tile URL template (https://…/{z}/{x}/{y}.png) drawn under the communes in
    /// the web app; without it the app draws no base map and needs no tile server.
    #[arg(long, env = "DOTHI_BASEMAP_URL")]
    pub basemap_url: Option<String>,
    /// The base URL callers reach this server at (`https://hub.example.gov.vn`),
    /// which the URLs it gives out for @contexts start with; by default the origin
    /// each request was sent to.
    #[arg(long, env = "DOTHI_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// An admin API key (32 characters or more), made one at every start: for
    /// automation and tests. Sent as `Authorization: Bearer KEY`.
    #[arg(long, env = "DOTHI_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// No authentication: every request acts as admin. Only on a loopback address,
    /// for development and conformance runs.
    #[arg(long, env = "DOTHI_INSECURE", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub insecure: bool,
    /// Whether admins need a TOTP second factor to log in to the web app
    /// (`required` by default for `serve`, `optional` for `demo`).
    #[arg(long, env = "DOTHI_MFA", value_enum)]
    pub mfa: Option<Mfa>,
    /// Serve /metrics without credentials (for a Prometheus on a private network).
    #[arg(long, env = "DOTHI_METRICS_PUBLIC", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub metrics_public: bool,
    /// Networks (CIDR) or host names that requests made for callers (remote
    /// @contexts, notifications) may reach although private or loopback; repeat the
    /// flag or separate with commas. Link-local and cloud-metadata addresses are
    /// never reached.
    #[arg(long, env = "DOTHI_OUTBOUND_ALLOW", value_delimiter = ',')]
    pub outbound_allow: Vec<String>,
    /// An OpenID Connect issuer whose bearer tokens are accepted (its `iss`).
    #[arg(long, env = "DOTHI_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// The issuer's signing keys as a JWKS file (for sites whose identity provider
    /// this server cannot reach); without it they are fetched from the issuer
    /// (`/.well-known/openid-configuration`, then its `jwks_uri`).
    #[arg(long, env = "DOTHI_OIDC_JWKS")]
    pub oidc_jwks: Option<std::path::PathBuf>,
    /// The audience tokens must name (`aud`); repeatable.
    #[arg(
        long,
        env = "DOTHI_OIDC_AUDIENCE",
        value_delimiter = ',',
        default_value = "dothi"
    )]
    pub oidc_audience: Vec<String>,
    /// The token claim that names the caller's role (admin, operator, viewer, device,
    /// citizen).
    #[arg(long, env = "DOTHI_OIDC_ROLE_CLAIM", default_value = "dothi_role")]
    pub oidc_role_claim: String,
    /// The token claim that lists the caller's tenants (`default` for the default
    /// tenant, `*` for all).
    #[arg(
        long,
        env = "DOTHI_OIDC_TENANTS_CLAIM",
        default_value = "dothi_tenants"
    )]
    pub oidc_tenants_claim: String,
    /// A browser origin (https://app.example.vn) allowed to call the API (CORS);
    /// repeatable. None by default.
    #[arg(long, env = "DOTHI_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origin: Vec<String>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "DOTHI_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "DOTHI_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Served behind a TLS-terminating proxy: cookies are marked Secure and HSTS is
    /// sent, as with --tls-cert.
    #[arg(long, env = "DOTHI_BEHIND_TLS", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub behind_tls: bool,
    /// Logins per client address per minute (0: no limit).
    #[arg(long, env = "DOTHI_RATE_LOGINS_PER_MINUTE", default_value_t = 20)]
    pub rate_logins_per_minute: u32,
    /// Requests without credentials per client address per minute (0: no limit).
    #[arg(long, env = "DOTHI_RATE_ANONYMOUS_PER_MINUTE", default_value_t = 1_200)]
    pub rate_anonymous_per_minute: u32,
    /// Writes per API key or user per second; admins are not limited (0: no limit).
    #[arg(long, env = "DOTHI_RATE_WRITES_PER_SECOND", default_value_t = 1_000)]
    pub rate_writes_per_second: u32,
    /// Days audit records are kept.
    #[arg(long, env = "DOTHI_AUDIT_RETENTION_DAYS", default_value_t = 366)]
    pub audit_retention_days: u32,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Mfa {
    Required,
    Optional,
}

/// Checked settings of `serve` and `demo`.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub store: String,
    pub log_format: LogFormat,
    pub hub: hub::HubConfig,
    /// The IoT agent's MQTT connection; None: MQTT off.
    pub mqtt: Option<iot::MqttConfig>,
    pub mqtt_client_id: String,
    /// The relay of alert e-mails; None: e-mail channels are refused.
    pub smtp: Option<alerts::SmtpRelay>,
    /// The operations-centre web app.
    pub web: web::WebConfig,
    /// An admin API key ensured at start.
    pub admin_key: Option<String>,
}

impl ServeArgs {
    /// `--smtp-relay` and its companions, checked.
    fn smtp_relay(&self) -> anyhow::Result<Option<alerts::SmtpRelay>> {
        let Some(relay) = self
            .smtp_relay
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
        else {
            return Ok(None);
        };
        let (security, default_port) = match self.smtp_security.as_str() {
            "starttls" => (alerts::SmtpSecurity::StartTls, 587),
            "tls" => (alerts::SmtpSecurity::Tls, 465),
            "none" => (alerts::SmtpSecurity::None, 25),
            other => anyhow::bail!("--smtp-security is starttls, tls or none, not {other:?}"),
        };
        let (host, port) = match relay.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| anyhow::anyhow!("--smtp-relay: {port:?} is not a port"))?,
            ),
            None => (relay, default_port),
        };
        if host.is_empty() {
            anyhow::bail!("--smtp-relay names a host");
        }
        let credentials = match (&self.smtp_user, &self.smtp_password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (None, None) => None,
            _ => anyhow::bail!("--smtp-user and DOTHI_SMTP_PASSWORD go together"),
        };
        Ok(Some(alerts::SmtpRelay {
            host: host.to_string(),
            port,
            from: self.smtp_from.clone(),
            credentials,
            security,
        }))
    }

    /// Checks the flags; `demo` makes a second factor optional unless told otherwise.
    pub fn validate(self) -> anyhow::Result<Config> {
        self.validate_for(Mfa::Required)
    }

    pub fn validate_for(self, default_mfa: Mfa) -> anyhow::Result<Config> {
        let smtp = self.smtp_relay()?;
        let listen: SocketAddr = self.listen.parse().with_context(|| {
            format!(
                "--listen {:?} is not an address like 127.0.0.1:1026",
                self.listen
            )
        })?;
        if !(self.store.starts_with("sqlite://")
            || self.store.starts_with("postgres://")
            || self.store.starts_with("postgresql://"))
        {
            bail!(
                "--store {:?} must be sqlite://path or postgres://user@host/db",
                self.store
            );
        }
        if !(1024..=1024 * 1024 * 1024).contains(&self.max_body_bytes) {
            bail!("--max-body-bytes must be between 1 KiB and 1 GiB");
        }
        if !(1..=120).contains(&self.context_timeout_secs) {
            bail!("--context-timeout-secs must be between 1 and 120");
        }
        if !(1..=hub::temporal::MAX_PAGE_INSTANCES).contains(&self.temporal_page_instances) {
            bail!(
                "--temporal-page-instances must be between 1 and {}",
                hub::temporal::MAX_PAGE_INSTANCES
            );
        }
        let mut hub = hub::HubConfig::default();
        hub.http.max_body_bytes = self.max_body_bytes;
        hub.http.temporal_page_instances = self.temporal_page_instances;
        hub.http.openapi_extra.push(web::OPENAPI);
        hub.http.openapi_extra.push(alerts::OPENAPI);
        hub.http.openapi_extra.push(scorecard::OPENAPI);
        let web = web::WebConfig {
            basemap_url: self
                .basemap_url
                .filter(|u| !u.trim().is_empty())
                .map(|u| u.trim().to_string()),
        }
        .validate()
        .map_err(|e| anyhow::anyhow!("--basemap-url: {e}"))?;
        hub.context_fetch_timeout = std::time::Duration::from_secs(self.context_timeout_secs);
        hub.public_url = match self.public_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => Some(check_public_url(url)?),
        };
        if !(1..=86_400).contains(&self.retention_interval_secs) {
            bail!("--retention-interval-secs must be between 1 and 86400");
        }
        for rule in self
            .history_retention
            .iter()
            .filter(|r| !r.trim().is_empty())
        {
            let rule = hub::retention::RetentionRule::parse(rule.trim())
                .map_err(|e| anyhow::anyhow!("--history-retention: {}", e.detail))?;
            hub.retention.rules.push(rule);
        }
        hub.retention.interval = std::time::Duration::from_secs(self.retention_interval_secs);
        // The client id is checked even when MQTT is off (`demo` may turn it on).
        iot::MqttConfig::from_url("mqtt://127.0.0.1", &self.mqtt_client_id)
            .map_err(|e| anyhow::anyhow!("--mqtt-client-id: {e}"))?;
        let mqtt = self
            .mqtt_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(|u| iot::MqttConfig::from_url(u.trim(), &self.mqtt_client_id))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--mqtt-url: {e}"))?;
        let mqtt = match (mqtt, self.mqtt_shared_group.as_deref()) {
            (Some(m), Some(group)) => Some(
                m.shared(group.trim())
                    .map_err(|e| anyhow::anyhow!("--mqtt-shared-group: {e}"))?,
            ),
            (mqtt, _) => mqtt,
        };
        if self.insecure && !listen.ip().is_loopback() {
            bail!(
                "--insecure turns authentication off and is refused on {listen}: listen on a loopback address (127.0.0.1)"
            );
        }
        if let Some(key) = &self.admin_key
            && key.chars().count() < 32
        {
            bail!("--admin-key must be at least 32 characters");
        }
        if !(1..=36_500).contains(&self.audit_retention_days) {
            bail!("--audit-retention-days must be between 1 and 36500");
        }
        hub.audit.retention = chrono::TimeDelta::days(i64::from(self.audit_retention_days));
        hub.gate.insecure = self.insecure;
        for origin in self.cors_origin.iter().filter(|o| !o.trim().is_empty()) {
            let o = origin.trim();
            let parsed = url::Url::parse(o).ok().filter(|u| {
                matches!(u.scheme(), "http" | "https") && u.path() == "/" && o.len() <= 256
            });
            if parsed.is_none() {
                bail!("--cors-origin {o:?} must be an origin like https://app.example.vn");
            }
            hub.gate
                .cors_origins
                .push(o.trim_end_matches('/').to_string());
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                for f in [cert, key] {
                    if !f.is_file() {
                        bail!("TLS file {} does not exist", f.display());
                    }
                }
                hub.tls = Some(hub::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                });
            }
            (None, None) => {}
            _ => bail!("--tls-cert and --tls-key go together"),
        }
        hub.gate.tls = self.behind_tls;
        hub.gate.limits = hub::http::gate::RateLimits {
            logins_per_minute: self.rate_logins_per_minute,
            anonymous_per_minute: self.rate_anonymous_per_minute,
            writes_per_second: self.rate_writes_per_second,
        };
        hub.gate.metrics_public = self.metrics_public;
        hub.identity.mfa_required = self.mfa.unwrap_or(default_mfa) == Mfa::Required;
        let mut outbound = hub::outbound::OutboundPolicy::parse_allow(&self.outbound_allow)
            .map_err(|e| anyhow::anyhow!("--outbound-allow: {e}"))?;
        if self.insecure {
            outbound = outbound.with_loopback();
        }
        hub.outbound = std::sync::Arc::new(outbound);
        if let Some(issuer) = self.oidc_issuer.filter(|i| !i.trim().is_empty()) {
            let keys = match &self.oidc_jwks {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading --oidc-jwks {}", path.display()))?;
                    let jwks = hub::auth::jwt::Jwks::from_json(&text)
                        .map_err(|e| anyhow::anyhow!("--oidc-jwks {}: {e}", path.display()))?;
                    hub::auth::oidc::KeySource::fixed(jwks)
                }
                None => {
                    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
                        bail!("--oidc-issuer must be an http(s) URL");
                    }
                    hub::auth::oidc::KeySource::discovered(issuer.trim())
                }
            };
            hub.identity.oidc.push(hub::auth::identity::OidcIssuer {
                issuer: issuer.trim().to_string(),
                audiences: self.oidc_audience.clone(),
                keys: std::sync::Arc::new(keys),
                role_claim: self.oidc_role_claim.clone(),
                tenants_claim: self.oidc_tenants_claim.clone(),
            });
        } else if self.oidc_jwks.is_some() {
            bail!("--oidc-jwks needs --oidc-issuer");
        }
        Ok(Config {
            listen,
            store: self.store,
            log_format: self.log_format,
            hub,
            mqtt,
            mqtt_client_id: self.mqtt_client_id,
            smtp,
            web,
            admin_key: self.admin_key,
        })
    }
}

/// A public base URL: http(s), a host, perhaps a path; no query, fragment or user
/// information. Without its trailing slash.
fn check_public_url(text: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(text).map_err(|e| anyhow::anyhow!("--public-url {text:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        bail!("--public-url {text:?} must be an http(s) base URL like https://hub.example.gov.vn");
    }
    Ok(text.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn serve(args: &[&str]) -> ServeArgs {
        let mut all = vec!["dothi", "serve"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all) {
            Ok(Cli {
                command: Command::Serve(s),
                ..
            }) => s,
            _ => panic!("not a serve command: {args:?}"),
        }
    }

    #[test]
    fn the_public_url_is_an_http_base_url() {
        let hub = |args: &[&str]| serve(args).validate().map(|c| c.hub.public_url);
        assert_eq!(hub(&[]).expect("valid"), None);
        assert_eq!(
            hub(&["--public-url", "https://hub.example.gov.vn/"]).expect("valid"),
            Some("https://hub.example.gov.vn".to_string())
        );
        assert_eq!(
            hub(&["--public-url", "http://10.0.0.2:8080/dothi"]).expect("valid"),
            Some("http://10.0.0.2:8080/dothi".to_string())
        );
        for bad in [
            "hub.example.gov.vn",
            "ftp://h",
            "https://h/?a=1",
            "https://u:p@h",
        ] {
            assert!(hub(&["--public-url", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_temporal_page_is_configurable_within_bounds() {
        let page = |args: &[&str]| {
            serve(args)
                .validate()
                .map(|c| c.hub.http.temporal_page_instances)
        };
        assert_eq!(page(&[]).expect("valid"), hub::temporal::MAX_INSTANCES);
        assert_eq!(
            page(&["--temporal-page-instances", "10"]).expect("valid"),
            10
        );
        for bad in ["0", "10001", "many"] {
            assert!(
                Cli::try_parse_from(["dothi", "serve", "--temporal-page-instances", bad]).is_err()
                    || page(&["--temporal-page-instances", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_smtp_relay_takes_its_port_from_the_security_unless_given() {
        let r = serve(&["--smtp-relay", "smtp.quangtri.gov.vn"])
            .smtp_relay()
            .expect("valid")
            .expect("a relay");
        assert_eq!((r.host.as_str(), r.port), ("smtp.quangtri.gov.vn", 587));
        assert_eq!(r.security, alerts::SmtpSecurity::StartTls);
        let r = serve(&["--smtp-relay", "127.0.0.1:2525", "--smtp-security", "none"])
            .smtp_relay()
            .expect("valid")
            .expect("a relay");
        assert_eq!((r.port, r.security), (2525, alerts::SmtpSecurity::None));
        assert!(serve(&[]).smtp_relay().expect("valid").is_none());
        for bad in [
            &["--smtp-relay", "h:port"][..],
            &["--smtp-relay", "h", "--smtp-security", "ssl"],
            &["--smtp-relay", ":25"],
            &["--smtp-relay", "h", "--smtp-user", "u"],
        ] {
            assert!(serve(bad).smtp_relay().is_err(), "{bad:?}");
        }
    }
}
