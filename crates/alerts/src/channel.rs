//! Sending one message on one channel: a webhook (JSON POST under the hub's
//! outbound policy, bounded timeout), an e-mail through the node's SMTP relay, or an
//! MQTT publish (the broker's address also under the outbound policy). A failure is
//! returned, and the outbox tries again later.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use crate::policy::Channel;

/// How long one attempt may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How the SMTP relay is reached (node configuration, not tenant data).
#[derive(Debug, Clone)]
pub struct SmtpRelay {
    pub host: String,
    pub port: u16,
    /// The sender, e.g. `dothi <canh-bao@quangtri.gov.vn>`.
    pub from: String,
    pub credentials: Option<(String, String)>,
    /// `none` (loopback or a trusted network), `starttls` or `tls`.
    pub security: SmtpSecurity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    None,
    StartTls,
    Tls,
}

struct Broker {
    client: AsyncClient,
    connected: Arc<AtomicBool>,
    events: tokio::task::JoinHandle<()>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.events.abort();
    }
}

/// What sends: the outbound HTTP client, the SMTP transport, MQTT connections.
pub struct Senders {
    outbound: Arc<hub::outbound::OutboundPolicy>,
    http: Option<hub::outbound::OutboundClient>,
    smtp: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>,
    brokers: std::sync::Mutex<HashMap<(String, u16), Broker>>,
}

impl Senders {
    /// Senders without e-mail.
    pub fn new(outbound: Arc<hub::outbound::OutboundPolicy>) -> Senders {
        let http = hub::outbound::OutboundClient::new(&outbound, |b| {
            b.timeout(TIMEOUT).connect_timeout(Duration::from_secs(5))
        })
        .map_err(|e| tracing::warn!(error = %e, "alerts: no HTTP client; webhooks fail"))
        .ok();
        Senders {
            outbound,
            http,
            smtp: None,
            brokers: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The same, sending e-mail through `relay`.
    pub fn with_smtp(mut self, r: &SmtpRelay) -> Result<Senders, String> {
        let builder = match r.security {
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&r.host),
            SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&r.host)
                .map_err(|e| e.to_string())?,
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&r.host).map_err(|e| e.to_string())?
            }
        };
        let mut builder = builder.port(r.port).timeout(Some(TIMEOUT));
        if let Some((user, password)) = &r.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let from: Mailbox = r
            .from
            .parse()
            .map_err(|e| format!("the SMTP sender {:?}: {e}", r.from))?;
        self.smtp = Some((builder.build(), from));
        Ok(self)
    }

    /// Whether e-mail can be sent (an SMTP relay is configured).
    pub fn has_smtp(&self) -> bool {
        self.smtp.is_some()
    }

    /// Sends `payload` (see [`crate::delivery::payload`]) on `channel`.
    pub async fn send(&self, channel: &Channel, payload: &Value) -> Result<(), String> {
        match channel {
            Channel::Webhook { url, .. } => self.post(url, payload).await,
            Channel::Email { to, .. } => self.mail(to, payload).await,
            Channel::Mqtt { url, qos, .. } => self.publish(url, qos.unwrap_or(1), payload).await,
        }
    }

    async fn post(&self, url: &str, payload: &Value) -> Result<(), String> {
        let http = self.http.as_ref().ok_or("no HTTP client")?;
        let response = http
            .post(url)
            .map_err(|e| e.to_string())?
            .json(payload)
            .send()
            .await
            .map_err(|e| hub::outbound::describe(&e.without_url()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", response.status()))
        }
    }

    async fn mail(&self, to: &[String], payload: &Value) -> Result<(), String> {
        let (transport, from) = self.smtp.as_ref().ok_or("no SMTP relay is configured")?;
        let joined = |member: &str, sep: &str| -> String {
            payload[member]
                .as_object()
                .map(|m| {
                    m.values()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(sep)
                })
                .unwrap_or_default()
        };
        let mut message = Message::builder()
            .from(from.clone())
            .subject(joined("title", " / "));
        for address in to {
            message = message.to(address
                .parse::<Mailbox>()
                .map_err(|e| format!("{address:?}: {e}"))?);
        }
        let message = message
            .header(ContentType::TEXT_PLAIN)
            .body(joined("text", "\n————\n\n"))
            .map_err(|e| e.to_string())?;
        transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP: {e}"))
    }

    async fn publish(&self, url: &str, qos: u8, payload: &Value) -> Result<(), String> {
        let target = Channel::mqtt_topic(url)?;
        let address = self
            .outbound
            .first_address(&target.host, target.port)
            .await?;
        let (client, connected) = self.broker(&target.host, target.port, address)?;
        hub::notifier::wait_connected(&connected, 50, &target.host, target.port).await?;
        let qos = if qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        let message = payload.to_string();
        hub::notifier::publish_within(&client, target.topic, qos, message, TIMEOUT).await
    }

    /// The connection to a broker, made the first time (to `address`, as the
    /// outbound policy resolved and allowed it).
    fn broker(
        &self,
        host: &str,
        port: u16,
        address: SocketAddr,
    ) -> Result<(AsyncClient, Arc<AtomicBool>), String> {
        let mut brokers = self
            .brokers
            .lock()
            .map_err(|_| "MQTT clients poisoned".to_string())?;
        if let Some(b) = brokers.get(&(host.to_string(), port)) {
            return Ok((b.client.clone(), b.connected.clone()));
        }
        // Unique per connection: a broker drops a client whose id another takes.
        static CONNECTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let id = format!(
            "dothi-alerts-{}-{}",
            std::process::id(),
            CONNECTIONS.fetch_add(1, Ordering::Relaxed)
        );
        let mut options = MqttOptions::new(id, address.ip().to_string(), address.port());
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = AsyncClient::new(options, 64);
        let connected = Arc::new(AtomicBool::new(false));
        let flag = connected.clone();
        let events = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => flag.store(true, Ordering::Relaxed),
                    Ok(_) => {}
                    Err(e) => {
                        flag.store(false, Ordering::Relaxed);
                        tracing::debug!(error = %e, "alerts: MQTT connection lost; reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        brokers.insert(
            (host.to_string(), port),
            Broker {
                client: client.clone(),
                connected: connected.clone(),
                events,
            },
        );
        Ok((client, connected))
    }
}
