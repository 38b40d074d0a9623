//! Outbound HTTP: the one policy that every request the hub makes on a caller's
//! behalf obeys (remote @context documents, subscription notifications, webhooks,
//! media URLs), and the client that enforces it. Those URLs are chosen by API
//! clients, so unguarded they would let anyone use the server to reach the
//! province's internal network or a cloud metadata service (server-side request
//! forgery). The policy is applied to the addresses actually connected to: host
//! names go through a resolver that drops every refused address, so a name cannot
//! change its answer between the check and the connection; literal IPs, which
//! never reach a resolver, are checked before sending; every redirect hop is
//! checked again. Link-local and cloud metadata addresses are refused whatever the
//! configuration says; loopback and private ranges only pass when `--outbound-allow`
//! names them (or `--insecure`, for loopback); public addresses always pass.

use std::collections::BTreeSet;
use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

/// Redirect hops followed at most; each is checked against the policy.
pub const MAX_REDIRECTS: usize = 5;

/// Cloud metadata host names, lowercase and without a final dot.
const METADATA_HOSTS: [&str; 2] = ["metadata.google.internal", "metadata"];
/// Cloud metadata addresses (AWS/GCP/Azure/OpenStack; Alibaba).
const METADATA_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(100, 100, 100, 200),
];
/// The IPv6 endpoint of the AWS instance metadata service.
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)];

/// What an address is, as far as the policy cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressKind {
    Public,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16; IPv6 site-local fec0::/10 and local-use
    /// NAT64 64:ff9b:1::/48.
    Private,
    /// 100.64.0.0/10, carrier-grade NAT.
    SharedCgnat,
    /// fc00::/7.
    UniqueLocal,
    /// 198.18.0.0/15.
    Benchmarking,
    /// 240.0.0.0/4 but the broadcast address (some clouds route it privately).
    Reserved,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// A cloud metadata service.
    Metadata,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
}

impl AddressKind {
    /// The kind of an address; an IPv6 address carrying an IPv4 one (mapped,
    /// compatible, translated, NAT64, 6to4) is of the kind of the IPv4 address.
    pub fn of(ip: IpAddr) -> AddressKind {
        match effective(ip) {
            IpAddr::V4(v4) => kind_v4(v4),
            IpAddr::V6(v6) => kind_v6(v6),
        }
    }

    /// Refused whatever the configuration allows.
    pub fn never_allowed(self) -> bool {
        matches!(
            self,
            AddressKind::LinkLocal
                | AddressKind::Metadata
                | AddressKind::Unspecified
                | AddressKind::Multicast
                | AddressKind::Broadcast
        )
    }
}

impl fmt::Display for AddressKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressKind::Public => "public",
            AddressKind::Loopback => "loopback",
            AddressKind::Private => "private",
            AddressKind::SharedCgnat => "shared address space (CGNAT)",
            AddressKind::UniqueLocal => "unique-local",
            AddressKind::Benchmarking => "benchmarking",
            AddressKind::Reserved => "reserved",
            AddressKind::LinkLocal => "link-local",
            AddressKind::Metadata => "cloud metadata",
            AddressKind::Unspecified => "unspecified",
            AddressKind::Multicast => "multicast",
            AddressKind::Broadcast => "broadcast",
        })
    }
}

fn kind_v4(ip: Ipv4Addr) -> AddressKind {
    let [a, b, ..] = ip.octets();
    if METADATA_V4.contains(&ip) {
        AddressKind::Metadata
    } else if a == 0 {
        AddressKind::Unspecified
    } else if ip.is_broadcast() {
        AddressKind::Broadcast
    } else if ip.is_link_local() {
        AddressKind::LinkLocal
    } else if ip.is_multicast() {
        AddressKind::Multicast
    } else if ip.is_loopback() {
        AddressKind::Loopback
    } else if ip.is_private() {
        AddressKind::Private
    } else if a == 100 && b & 0xc0 == 64 {
        AddressKind::SharedCgnat
    } else if a == 198 && b & 0xfe == 18 {
        AddressKind::Benchmarking
    } else if a >= 240 {
        AddressKind::Reserved
    } else {
        AddressKind::Public
    }
}

fn kind_v6(ip: Ipv6Addr) -> AddressKind {
    let s = ip.segments();
    if METADATA_V6.contains(&ip) {
        AddressKind::Metadata
    } else if ip.is_unspecified() {
        AddressKind::Unspecified
    } else if ip.is_loopback() {
        AddressKind::Loopback
    } else if s[0] & 0xffc0 == 0xfe80 {
        AddressKind::LinkLocal
    } else if ip.is_multicast() {
        AddressKind::Multicast
    } else if s[0] & 0xfe00 == 0xfc00 {
        AddressKind::UniqueLocal
    } else if s[0] & 0xffc0 == 0xfec0 || s[..3] == [0x64, 0xff9b, 1] {
        AddressKind::Private
    } else {
        AddressKind::Public
    }
}

/// The IPv4 address an IPv6 address carries, in the forms that reach it.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let [.., w, x, y, z] = ip.octets();
    let tail = Ipv4Addr::new(w, x, y, z);
    match ip.segments() {
        // IPv4-mapped ::ffff:a.b.c.d and IPv4-translated ::ffff:0:a.b.c.d.
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => Some(tail),
        // NAT64, well-known prefix.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        // IPv4-compatible ::a.b.c.d (deprecated); :: and ::1 are IPv6's own.
        [0, 0, 0, 0, 0, 0, _, _] if !ip.is_unspecified() && !ip.is_loopback() => Some(tail),
        // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
        [0x2002, high, low, ..] => Some(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low))),
        _ => None,
    }
}

/// The address the policy judges: the IPv4 one an IPv6 address carries, if any.
fn effective(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// An allowed network, `address/prefix`, its host bits cleared.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn new(addr: IpAddr, prefix: u8) -> Result<Net, String> {
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return Err(format!("the prefix length is longer than {bits}"));
        }
        let addr = match addr {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(mask_v4(u32::from(v4), prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask_v6(u128::from(v6), prefix))),
        };
        Ok(Net { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask_v4(value: u32, prefix: u8) -> u32 {
    value & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(value: u128, prefix: u8) -> u128 {
    value & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// A host name as compared: lowercase, without a final dot.
fn normalize_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

fn valid_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Why an outbound request is refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("invalid --outbound-allow entry {entry:?}: {why}")]
    AllowEntry { entry: String, why: String },
    #[error("not a valid URL: {0}")]
    Url(#[from] url::ParseError),
    #[error("the URL scheme {0:?} is not allowed for outbound requests (only http and https)")]
    Scheme(String),
    #[error(
        "the URL to {host} holds a user name or password, which outbound requests do not allow"
    )]
    UserInfo { host: String },
    #[error("the URL has no host")]
    NoHost,
    #[error("the address {ip} is not allowed for outbound requests: {}", address_why(*.ip, *.kind))]
    Address { ip: IpAddr, kind: AddressKind },
    #[error(
        "the host {host} is not allowed for outbound requests: it is a cloud metadata host, never allowed"
    )]
    MetadataHost { host: String },
    #[error(
        "the host {host} resolves only to addresses not allowed for outbound requests: {}",
        address_list(.refused)
    )]
    NoAllowedAddress { host: String, refused: Vec<IpAddr> },
    #[error("the host {host} has no address")]
    NoAddress { host: String },
    #[error("cannot resolve the host {host}: {source}")]
    Lookup {
        host: String,
        source: std::io::Error,
    },
    #[error("the redirect to {to} is refused: {source}")]
    Redirect {
        to: String,
        source: Box<OutboundError>,
    },
    #[error("too many redirects (more than {0})")]
    TooManyRedirects(usize),
    #[error("cannot build the outbound HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

impl OutboundError {
    /// Whether the policy refused the request (rather than a name failing to
    /// resolve, say).
    pub fn is_refusal(&self) -> bool {
        match self {
            OutboundError::Scheme(_)
            | OutboundError::UserInfo { .. }
            | OutboundError::Address { .. }
            | OutboundError::MetadataHost { .. }
            | OutboundError::NoAllowedAddress { .. }
            | OutboundError::TooManyRedirects(_) => true,
            OutboundError::Redirect { source, .. } => source.is_refusal(),
            _ => false,
        }
    }

    /// The `OutboundError` in an error or its chain of sources: a failed
    /// request's `reqwest::Error` holds it when the resolver or the redirect
    /// policy refused.
    pub fn find<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a OutboundError> {
        let mut current = Some(error);
        while let Some(e) = current {
            if let Some(found) = e.downcast_ref::<OutboundError>() {
                return Some(found);
            }
            current = e.source();
        }
        None
    }
}

fn address_why(ip: IpAddr, kind: AddressKind) -> String {
    let rule = if kind.never_allowed() {
        "never allowed"
    } else {
        "allowed only when --outbound-allow lists it"
    };
    match effective(ip) {
        carried if carried != ip => {
            format!("it carries the IPv4 address {carried}, which is {kind}, {rule}")
        }
        _ => format!("it is {kind}, {rule}"),
    }
}

fn address_list(ips: &[IpAddr]) -> String {
    let listed: Vec<String> = ips
        .iter()
        .map(|ip| format!("{ip} ({})", AddressKind::of(*ip)))
        .collect();
    listed.join(", ")
}

/// A failed request described for a log or an error message: the policy's reason
/// when it refused, else the error with its sources (reqwest's own message does
/// not say what went wrong underneath).
pub fn describe(error: &(dyn StdError + 'static)) -> String {
    if let Some(outbound) = OutboundError::find(error) {
        return outbound.to_string();
    }
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

/// Which addresses outbound requests may reach beyond public ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    networks: Vec<Net>,
    /// Allowed by name, normalized; they may resolve to private addresses.
    hosts: BTreeSet<String>,
    allow_loopback: bool,
}

impl OutboundPolicy {
    /// Public addresses only.
    pub fn strict() -> Self {
        OutboundPolicy::default()
    }

    /// The policy `--outbound-allow` asks for: CIDR networks (`10.1.2.0/24`), bare
    /// addresses (a network of one) and host names (matched exactly, ignoring
    /// case). An item may hold several, separated by commas or spaces.
    pub fn parse_allow(items: &[String]) -> Result<Self, OutboundError> {
        let mut policy = OutboundPolicy::strict();
        let entries = items
            .iter()
            .flat_map(|item| item.split(|c: char| c == ',' || c.is_whitespace()))
            .filter(|entry| !entry.is_empty());
        for entry in entries {
            let bad = |why: String| OutboundError::AllowEntry {
                entry: entry.to_string(),
                why,
            };
            if let Some((addr, prefix)) = entry.split_once('/') {
                let addr: IpAddr = addr
                    .parse()
                    .map_err(|_| bad(format!("{addr:?} is not an IP address")))?;
                let prefix: u8 = prefix
                    .parse()
                    .map_err(|_| bad(format!("{prefix:?} is not a prefix length")))?;
                let net = Net::new(addr, prefix).map_err(bad)?;
                policy.networks.push(net);
                continue;
            }
            let bare = entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .unwrap_or(entry);
            if let Ok(addr) = bare.parse::<IpAddr>() {
                let prefix = if addr.is_ipv4() { 32 } else { 128 };
                policy.networks.push(Net::new(addr, prefix).map_err(bad)?);
                continue;
            }
            let host = normalize_host(entry);
            if !valid_host_name(&host) {
                return Err(bad(
                    "neither a network (address/prefix), an address nor a host name".into(),
                ));
            }
            if METADATA_HOSTS.contains(&host.as_str()) {
                return Err(bad("a cloud metadata host is never allowed".into()));
            }
            policy.hosts.insert(host);
        }
        policy.networks.sort();
        policy.networks.dedup();
        Ok(policy)
    }

    /// Loopback allowed too (what `--insecure` adds).
    pub fn with_loopback(mut self) -> Self {
        self.allow_loopback = true;
        self
    }

    /// Whether a connection to `ip` is allowed. `host_allowed_by_name`: the
    /// address is one the URL's host, allowed by name, resolved to; such a host
    /// may reach private addresses, but never the always-refused ones.
    pub fn check_ip(&self, ip: IpAddr, host_allowed_by_name: bool) -> Result<(), OutboundError> {
        let judged = effective(ip);
        let kind = AddressKind::of(judged);
        let allowed = match kind {
            AddressKind::Public => true,
            never if never.never_allowed() => false,
            _ => {
                host_allowed_by_name
                    || (self.allow_loopback && kind == AddressKind::Loopback)
                    || self.networks.iter().any(|net| net.contains(judged))
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(OutboundError::Address { ip, kind })
        }
    }

    /// What can be judged of a URL before connecting: its scheme, the absence of
    /// user info, a literal IP host (which no resolver sees), a metadata host name.
    /// Other host names are judged by the resolver, address by address.
    pub fn check_url(&self, url: &Url) -> Result<(), OutboundError> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(OutboundError::Scheme(other.to_string())),
        }
        let host = url.host().ok_or(OutboundError::NoHost)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OutboundError::UserInfo {
                host: host.to_string(),
            });
        }
        match host {
            Host::Ipv4(v4) => self.check_ip(IpAddr::V4(v4), false),
            Host::Ipv6(v6) => self.check_ip(IpAddr::V6(v6), false),
            Host::Domain(name) => self.check_host_name(name).map(|_| ()),
        }
    }

    /// Refuses a metadata host name; else whether the name is allowed by name.
    fn check_host_name(&self, name: &str) -> Result<bool, OutboundError> {
        let host = normalize_host(name);
        if METADATA_HOSTS.contains(&host.as_str()) {
            return Err(OutboundError::MetadataHost { host });
        }
        Ok(self.hosts.contains(&host))
    }

    /// The addresses of `host` the policy allows, with `port`. Also usable by
    /// clients of other protocols that connect to the addresses returned.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, OutboundError> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            self.check_ip(ip, false)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let by_name = self.check_host_name(bare)?;
        let found = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|source| OutboundError::Lookup {
                host: bare.to_string(),
                source,
            })?;
        let mut allowed = Vec::new();
        let mut refused = Vec::new();
        for addr in found {
            if self.check_ip(addr.ip(), by_name).is_ok() {
                if !allowed.contains(&addr) {
                    allowed.push(addr);
                }
            } else if !refused.contains(&addr.ip()) {
                refused.push(addr.ip());
            }
        }
        if !allowed.is_empty() {
            Ok(allowed)
        } else if refused.is_empty() {
            Err(OutboundError::NoAddress {
                host: bare.to_string(),
            })
        } else {
            Err(OutboundError::NoAllowedAddress {
                host: bare.to_string(),
                refused,
            })
        }
    }

    /// The first address of `host` the policy allows, with `port`, for a client that
    /// connects to one (an MQTT notification's broker); why not, as text.
    pub async fn first_address(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        self.resolve(host, port)
            .await
            .map_err(|e| e.to_string())?
            .first()
            .copied()
            .ok_or_else(|| format!("{host} has no address"))
    }

    /// A client builder that enforces the policy at connection time: names go
    /// through the checking resolver, redirects are checked at every hop (at most
    /// `MAX_REDIRECTS`), and proxies from the environment are off (a proxy would
    /// resolve and connect in our stead, out of the policy's sight). Callers add
    /// timeouts, and may replace the redirect policy by `Policy::none()`; they must
    /// not set another resolver or a proxy. Literal IP hosts bypass resolvers, so
    /// each URL must still pass `check_url` before sending: `OutboundClient` does
    /// that. Header names go out in title case (`Link`, `Content-Type`): HTTP says
    /// they are case-insensitive, but some receivers of notifications look them up
    /// as written.
    pub fn client_builder(self: &Arc<Self>) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .http1_title_case_headers()
            .no_proxy()
            .dns_resolver(Arc::new(CheckingResolver(Arc::clone(self))))
            .redirect(self.redirect_policy())
    }

    fn redirect_policy(self: &Arc<Self>) -> reqwest::redirect::Policy {
        let policy = Arc::clone(self);
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(OutboundError::TooManyRedirects(MAX_REDIRECTS));
            }
            let checked = policy.check_url(attempt.url());
            match checked {
                Ok(()) => attempt.follow(),
                Err(refused) => {
                    let to = without_userinfo(attempt.url());
                    attempt.error(OutboundError::Redirect {
                        to,
                        source: Box::new(refused),
                    })
                }
            }
        })
    }
}

/// A URL for messages, its user name and password left out.
fn without_userinfo(url: &Url) -> String {
    let mut shown = url.clone();
    // Either fails only for URLs that cannot hold user info anyway.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

impl fmt::Display for OutboundPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut extra: Vec<String> = Vec::new();
        if self.allow_loopback {
            extra.push("loopback".into());
        }
        extra.extend(self.networks.iter().map(Net::to_string));
        extra.extend(self.hosts.iter().map(|h| format!("host {h}")));
        if extra.is_empty() {
            f.write_str("public addresses only")?;
        } else {
            write!(f, "public addresses and {}", extra.join(", "))?;
        }
        f.write_str(" (never link-local or cloud metadata)")
    }
}

/// Resolves with the system resolver, keeping the addresses the policy allows.
struct CheckingResolver(Arc<OutboundPolicy>);

impl reqwest::dns::Resolve for CheckingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.0);
        let host = name.as_str().to_string();
        Box::pin(async move {
            // Port 0: the connector puts in the URL's port.
            let addrs = policy.resolve(&host, 0).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok::<_, Box<dyn StdError + Send + Sync>>(addrs)
        })
    }
}

/// An HTTP client bound to a policy: requests are only made to URLs that pass
/// `check_url`, through a client from `client_builder`.
#[derive(Clone, Debug)]
pub struct OutboundClient {
    http: reqwest::Client,
    policy: Arc<OutboundPolicy>,
}

impl OutboundClient {
    /// A client for `policy`; `configure` adds timeouts and the like (see
    /// `OutboundPolicy::client_builder` for what it must leave alone).
    pub fn new(
        policy: &Arc<OutboundPolicy>,
        configure: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> Result<Self, OutboundError> {
        let http = configure(policy.client_builder())
            .build()
            .map_err(OutboundError::Client)?;
        Ok(OutboundClient {
            http,
            policy: Arc::clone(policy),
        })
    }

    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// A request to `url`, refused at once if the URL fails `check_url`.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, OutboundError> {
        let url = Url::parse(url)?;
        self.policy.check_url(&url)?;
        Ok(self.http.request(method, url))
    }

    pub fn get(&self, url: &str) -> Result<reqwest::RequestBuilder, OutboundError> {
        self.request(reqwest::Method::GET, url)
    }

    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, OutboundError> {
        self.request(reqwest::Method::POST, url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("a test address")
    }

    fn allow(items: &[&str]) -> OutboundPolicy {
        let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
        OutboundPolicy::parse_allow(&items).expect("a valid allow list")
    }

    /// Every range the policy knows of, allowed.
    fn allow_everything() -> OutboundPolicy {
        allow(&[
            "0.0.0.0/0",
            "::/0",
            "169.254.0.0/16",
            "fe80::/10",
            "fd00:ec2::/32",
        ])
        .with_loopback()
    }

    #[test]
    fn check_ip_over_every_range() {
        use AddressKind::*;
        // (address, its kind, allowed under strict, allowed when everything is
        // allowed by network and the host by name)
        let table: &[(&str, AddressKind, bool, bool)] = &[
            ("8.8.8.8", Public, true, true),
            ("11.0.0.1", Public, true, true),
            ("172.15.255.255", Public, true, true),
            ("172.32.0.1", Public, true, true),
            ("192.169.0.1", Public, true, true),
            ("100.63.255.255", Public, true, true),
            ("100.128.0.1", Public, true, true),
            ("198.17.255.255", Public, true, true),
            ("198.20.0.1", Public, true, true),
            ("2606:4700::1111", Public, true, true),
            ("::ffff:8.8.8.8", Public, true, true),
            ("64:ff9b::808:808", Public, true, true),
            ("2002:808:808::1", Public, true, true),
            ("127.0.0.1", Loopback, false, true),
            ("127.255.255.254", Loopback, false, true),
            ("::1", Loopback, false, true),
            ("10.0.0.1", Private, false, true),
            ("10.255.255.255", Private, false, true),
            ("172.16.0.1", Private, false, true),
            ("172.31.255.255", Private, false, true),
            ("192.168.1.1", Private, false, true),
            ("fec0::1", Private, false, true),
            ("64:ff9b:1::a00:1", Private, false, true),
            ("100.64.0.1", SharedCgnat, false, true),
            ("100.127.255.255", SharedCgnat, false, true),
            ("198.18.0.1", Benchmarking, false, true),
            ("198.19.255.255", Benchmarking, false, true),
            ("fc00::1", UniqueLocal, false, true),
            ("fd12:3456::1", UniqueLocal, false, true),
            ("240.0.0.1", Reserved, false, true),
            ("255.255.255.254", Reserved, false, true),
            ("169.254.0.1", LinkLocal, false, false),
            ("169.254.255.255", LinkLocal, false, false),
            ("fe80::1", LinkLocal, false, false),
            ("febf::1", LinkLocal, false, false),
            ("169.254.169.254", Metadata, false, false),
            ("100.100.100.200", Metadata, false, false),
            ("fd00:ec2::254", Metadata, false, false),
            ("0.0.0.0", Unspecified, false, false),
            ("0.1.2.3", Unspecified, false, false),
            ("::", Unspecified, false, false),
            ("224.0.0.1", Multicast, false, false),
            ("239.255.255.255", Multicast, false, false),
            ("ff02::1", Multicast, false, false),
            ("ff0e::1", Multicast, false, false),
            ("255.255.255.255", Broadcast, false, false),
            // IPv6 forms carrying an IPv4 address are judged by it.
            ("::ffff:127.0.0.1", Loopback, false, true),
            ("::ffff:10.0.0.1", Private, false, true),
            ("::ffff:0:10.0.0.1", Private, false, true),
            ("::127.0.0.1", Loopback, false, true),
            ("::10.0.0.1", Private, false, true),
            ("64:ff9b::10.0.0.1", Private, false, true),
            ("64:ff9b::127.0.0.1", Loopback, false, true),
            ("2002:a00:1::1", Private, false, true),
            ("::ffff:169.254.169.254", Metadata, false, false),
            ("64:ff9b::169.254.169.254", Metadata, false, false),
            ("::ffff:169.254.1.1", LinkLocal, false, false),
            ("::ffff:0.0.0.0", Unspecified, false, false),
            ("::ffff:224.0.0.1", Multicast, false, false),
            ("::ffff:255.255.255.255", Broadcast, false, false),
        ];
        let strict = OutboundPolicy::strict();
        let everything = allow_everything();
        for &(text, kind, strict_ok, everything_ok) in table {
            let addr = ip(text);
            assert_eq!(AddressKind::of(addr), kind, "{text}");
            assert_eq!(kind.never_allowed(), !everything_ok, "{text}");
            for by_name in [false, true] {
                assert_eq!(
                    strict.check_ip(addr, by_name).is_ok(),
                    strict_ok || by_name && everything_ok,
                    "{text} under strict, by name: {by_name}"
                );
                assert_eq!(
                    everything.check_ip(addr, by_name).is_ok(),
                    everything_ok,
                    "{text} with everything allowed, by name: {by_name}"
                );
            }
            match strict.check_ip(addr, false) {
                Err(OutboundError::Address {
                    ip: refused,
                    kind: k,
                }) => {
                    assert_eq!((refused, k), (addr, kind), "{text}");
                }
                Err(other) => panic!("{text}: unexpected {other}"),
                Ok(()) => assert!(strict_ok, "{text}"),
            }
        }
    }

    #[test]
    fn allowances_are_narrow() {
        // A policy, the addresses it lets through, and some it still refuses.
        let cases: [(OutboundPolicy, &[&str], &[&str]); 5] = [
            (
                OutboundPolicy::strict().with_loopback(),
                &["127.0.0.1", "::1", "::ffff:127.0.0.1"],
                &["10.0.0.1", "169.254.169.254"],
            ),
            (
                allow(&["127.0.0.1/32"]),
                &["127.0.0.1"],
                &["127.0.0.2", "::1"],
            ),
            (allow(&["::1/128"]), &["::1"], &["127.0.0.1"]),
            (
                allow(&["10.1.2.0/24"]),
                &["10.1.2.3", "::ffff:10.1.2.3"],
                &["10.1.3.1", "127.0.0.1"],
            ),
            // A v6 allowance does not reach the IPv4 addresses mapped into it.
            (allow(&["::ffff:0:0/96"]), &[], &["::ffff:10.0.0.1"]),
        ];
        for (policy, allowed, refused) in cases {
            for text in allowed {
                assert!(policy.check_ip(ip(text), false).is_ok(), "{text}");
            }
            for text in refused {
                assert!(policy.check_ip(ip(text), false).is_err(), "{text}");
            }
        }

        // Link-local allowed by network: metadata and the rest stay refused.
        let link = allow(&["169.254.0.0/16", "fe80::/10"]);
        for refused in ["169.254.169.254", "169.254.1.1", "fe80::1", "fd00:ec2::254"] {
            assert!(link.check_ip(ip(refused), false).is_err(), "{refused}");
            assert!(link.check_ip(ip(refused), true).is_err(), "{refused}");
        }
    }

    #[test]
    fn refusals_say_what_and_why() {
        let strict = OutboundPolicy::strict();
        let message = |text: &str| {
            strict
                .check_ip(ip(text), false)
                .map_err(|e| e.to_string())
                .expect_err("refused")
        };
        assert_eq!(
            message("10.0.0.1"),
            "the address 10.0.0.1 is not allowed for outbound requests: it is private, \
             allowed only when --outbound-allow lists it"
        );
        assert_eq!(
            message("169.254.169.254"),
            "the address 169.254.169.254 is not allowed for outbound requests: it is cloud \
             metadata, never allowed"
        );
        assert_eq!(
            message("::ffff:127.0.0.1"),
            "the address ::ffff:127.0.0.1 is not allowed for outbound requests: it carries the \
             IPv4 address 127.0.0.1, which is loopback, allowed only when --outbound-allow \
             lists it"
        );
    }

    #[test]
    fn parse_allow_entries() {
        let policy = allow(&[
            "10.1.2.3/24, ::1/128",
            "NGSI-Contexts.Internal.",
            "192.168.7.7",
            "[fd00::1]",
        ]);
        assert!(policy.check_ip(ip("10.1.2.200"), false).is_ok());
        assert!(policy.check_ip(ip("192.168.7.7"), false).is_ok());
        assert!(policy.check_ip(ip("192.168.7.8"), false).is_err());
        assert!(policy.check_ip(ip("fd00::1"), false).is_ok());
        assert_eq!(
            policy.check_host_name("ngsi-contexts.internal").ok(),
            Some(true)
        );
        assert_eq!(
            policy.check_host_name("NGSI-CONTEXTS.internal.").ok(),
            Some(true)
        );
        assert_eq!(
            policy.check_host_name("contexts.internal").ok(),
            Some(false)
        );
        assert_eq!(
            policy.to_string(),
            "public addresses and 10.1.2.0/24, 192.168.7.7/32, ::1/128, fd00::1/128, \
             host ngsi-contexts.internal (never link-local or cloud metadata)"
        );
        assert_eq!(
            OutboundPolicy::strict().to_string(),
            "public addresses only (never link-local or cloud metadata)"
        );
        assert_eq!(
            OutboundPolicy::strict().with_loopback().to_string(),
            "public addresses and loopback (never link-local or cloud metadata)"
        );
        assert_eq!(
            OutboundPolicy::parse_allow(&[]).ok(),
            Some(OutboundPolicy::strict())
        );
        assert_eq!(allow(&["", " , "]), OutboundPolicy::strict());

        for bad in [
            "10.0.0.0/33",
            "::1/129",
            "10.0.0/8",
            "10.0.0.0/x",
            "bad_host!",
            "two..dots",
            "metadata.google.internal",
            "Metadata",
        ] {
            match OutboundPolicy::parse_allow(&[bad.to_string()]) {
                Err(OutboundError::AllowEntry { entry, .. }) => assert_eq!(entry, bad),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn check_url_rules() {
        let strict = OutboundPolicy::strict();
        let check = |policy: &OutboundPolicy, text: &str| {
            policy.check_url(&Url::parse(text).expect("a test URL"))
        };
        for good in [
            "https://example.com/context.jsonld",
            "http://example.com:8080/notify",
            "http://8.8.8.8/",
            "http://[2606:4700::1111]/",
            // Names are judged by the resolver, at connection time.
            "http://localhost/",
        ] {
            assert!(check(&strict, good).is_ok(), "{good}");
        }
        for (bad, scheme) in [
            ("ftp://example.com/", "ftp"),
            ("file:///etc/passwd", "file"),
            ("gopher://example.com/", "gopher"),
            ("data:application/json,{}", "data"),
            ("mqtt://broker:1883/topic", "mqtt"),
        ] {
            match check(&strict, bad) {
                Err(OutboundError::Scheme(s)) => assert_eq!(s, scheme),
                other => panic!("{bad}: {other:?}"),
            }
        }
        for bad in [
            "http://user:s3cret@example.com/",
            "https://user@example.com/",
            "http://:s3cret@example.com/",
        ] {
            match check(&strict, bad) {
                Err(e @ OutboundError::UserInfo { .. }) => {
                    assert!(!e.to_string().contains("s3cret"), "{e}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        for (bad, refused) in [
            ("http://127.0.0.1:8080/", "127.0.0.1"),
            ("http://[::1]/", "::1"),
            // The URL parser reads these as 127.0.0.1.
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://2130706433/", "127.0.0.1"),
            ("http://10.0.0.1/", "10.0.0.1"),
            ("http://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1"),
            (
                "http://169.254.169.254/latest/meta-data/",
                "169.254.169.254",
            ),
            ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
            ("http://0.0.0.0:80/", "0.0.0.0"),
        ] {
            match check(&strict, bad) {
                Err(OutboundError::Address { ip: got, .. }) => assert_eq!(got, ip(refused)),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let everything = allow_everything();
        assert!(check(&everything, "http://127.0.0.1:8080/").is_ok());
        assert!(check(&everything, "http://169.254.169.254/").is_err());
        assert!(check(&everything, "http://169.254.1.1/").is_err());
        for bad in [
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.GOOGLE.INTERNAL./",
            "http://metadata/",
            "https://Metadata./",
        ] {
            for policy in [&strict, &everything] {
                match check(policy, bad) {
                    Err(OutboundError::MetadataHost { .. }) => {}
                    other => panic!("{bad}: {other:?}"),
                }
            }
        }
    }

    #[tokio::test]
    async fn resolver_keeps_allowed_addresses() {
        let strict = OutboundPolicy::strict();
        match strict.resolve("localhost", 80).await {
            Err(OutboundError::NoAllowedAddress { host, refused }) => {
                assert_eq!(host, "localhost");
                assert!(refused.iter().all(|r| r.is_loopback()), "{refused:?}");
            }
            other => panic!("{other:?}"),
        }
        let loopback = OutboundPolicy::strict().with_loopback();
        let found = loopback.resolve("localhost", 8080).await.expect("allowed");
        assert!(!found.is_empty());
        assert!(
            found
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8080)
        );
        let by_name = allow(&["LocalHost"]);
        assert!(by_name.resolve("localhost", 80).await.is_ok());
        // Refused before any lookup.
        match allow_everything()
            .resolve("metadata.google.internal", 80)
            .await
        {
            Err(OutboundError::MetadataHost { .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(strict.resolve("127.0.0.1", 80).await.is_err());
        assert!(strict.resolve("[::1]", 80).await.is_err());
    }

    fn ok_response() -> String {
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\
         connection: close\r\n\r\nok"
            .to_string()
    }

    fn redirect_response(location: &str) -> String {
        format!(
            "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\n\
             connection: close\r\n\r\n"
        )
    }

    fn route(path: &str, port: u16) -> String {
        if let Some(left) = path.strip_prefix("/chain/") {
            return match left.parse::<u32>() {
                Ok(n) if n > 0 => redirect_response(&format!("/chain/{}", n - 1)),
                _ => ok_response(),
            };
        }
        match path {
            "/to-v6" => redirect_response(&format!("http://[::1]:{port}/")),
            "/to-metadata" => redirect_response("http://169.254.169.254/latest/meta-data/"),
            "/to-userinfo" => redirect_response(&format!("http://user:secret@127.0.0.1:{port}/")),
            "/to-localhost" => redirect_response(&format!("http://localhost:{port}/")),
            "/to-ftp" => redirect_response("ftp://127.0.0.1/"),
            _ => ok_response(),
        }
    }

    /// A tiny HTTP server on 127.0.0.1 answering `route`; its port.
    async fn serve() -> u16 {
        serve_on("127.0.0.1").await.expect("a server on 127.0.0.1")
    }

    /// A tiny HTTP server on a loopback address answering `route`; its port.
    async fn serve_on(loopback: &str) -> Option<u16> {
        assert!(ip(loopback).is_loopback());
        let listener = TcpListener::bind((loopback, 0)).await.ok()?;
        let port = listener.local_addr().ok()?.port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                        if head.len() > 16_384 {
                            return;
                        }
                    }
                    let text = String::from_utf8_lossy(&head);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let _ = socket.write_all(route(&path, port).as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Some(port)
    }

    fn client(policy: OutboundPolicy) -> OutboundClient {
        OutboundClient::new(&Arc::new(policy), |b| {
            b.timeout(Duration::from_secs(5))
                .connect_timeout(Duration::from_secs(2))
        })
        .expect("a client")
    }

    type AnyError = Box<dyn StdError + Send + Sync>;

    async fn get(client: &OutboundClient, url: &str) -> Result<String, AnyError> {
        let response = client.get(url)?.send().await?.error_for_status()?;
        Ok(response.text().await?)
    }

    /// The error of a GET of `url` under the strict policy, which must refuse it.
    async fn refused_under_strict(url: &str) -> AnyError {
        get(&client(OutboundPolicy::strict()), url)
            .await
            .expect_err("refused under strict")
    }

    /// The policy error a failed request carries.
    fn outbound(error: &AnyError) -> &OutboundError {
        let error: &(dyn StdError + 'static) = &**error;
        OutboundError::find(error)
            .unwrap_or_else(|| panic!("no policy error in: {}", describe(error)))
    }

    #[tokio::test]
    async fn literal_loopback_needs_an_allowance() {
        let port = serve().await;
        let url = format!("http://127.0.0.1:{port}/");
        let refused = refused_under_strict(&url).await;
        assert!(
            matches!(
                outbound(&refused),
                OutboundError::Address {
                    kind: AddressKind::Loopback,
                    ..
                }
            ),
            "{refused}"
        );
        let body = get(&client(allow(&["127.0.0.0/8"])), &url)
            .await
            .expect("allowed");
        assert_eq!(body, "ok");
    }

    #[tokio::test]
    async fn resolved_loopback_needs_an_allowance() {
        let port = serve().await;
        let url = format!("http://localhost:{port}/");
        // The URL passes; the resolver drops the loopback addresses.
        let refused = refused_under_strict(&url).await;
        let error = outbound(&refused);
        assert!(
            matches!(error, OutboundError::NoAllowedAddress { host, .. } if host == "localhost"),
            "{error}"
        );
        assert!(error.is_refusal());
        let as_text: &(dyn StdError + 'static) = &*refused;
        assert!(describe(as_text).starts_with("the host localhost resolves only to"));

        for policy in [
            OutboundPolicy::strict().with_loopback(),
            allow(&["localhost"]),
            // Only the allowed one of localhost's addresses is kept.
            allow(&["127.0.0.1/32"]),
        ] {
            let shown = policy.to_string();
            let body = get(&client(policy), &url)
                .await
                .unwrap_or_else(|e| panic!("{shown}: {}", describe(&*e)));
            assert_eq!(body, "ok");
        }
        // Allowed by name, the host reaches loopback; the literal address does not.
        let by_name = client(allow(&["localhost"]));
        assert!(
            get(&by_name, &format!("http://127.0.0.1:{port}/"))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn redirects_are_checked_at_every_hop() {
        let port = serve().await;
        let allowed = client(allow(&["127.0.0.1/32"]));
        let base = format!("http://127.0.0.1:{port}");
        assert_eq!(
            get(&allowed, &format!("{base}/chain/1"))
                .await
                .expect("an allowed hop"),
            "ok"
        );
        for (path, expect_to) in [
            ("/to-v6", format!("http://[::1]:{port}/")),
            (
                "/to-metadata",
                "http://169.254.169.254/latest/meta-data/".to_string(),
            ),
            ("/to-userinfo", format!("http://127.0.0.1:{port}/")),
            ("/to-ftp", "ftp://127.0.0.1/".to_string()),
        ] {
            let refused = get(&allowed, &format!("{base}{path}"))
                .await
                .expect_err("the hop is refused");
            match outbound(&refused) {
                OutboundError::Redirect { to, source } => {
                    assert_eq!(to, &expect_to, "{path}");
                    assert!(source.is_refusal(), "{path}: {source}");
                }
                other => panic!("{path}: {other}"),
            }
        }
        // A redirect to a name goes through the resolver, which keeps 127.0.0.1.
        let body = get(&allowed, &format!("{base}/to-localhost")).await;
        assert_eq!(body.expect("localhost resolves to 127.0.0.1"), "ok");
    }

    #[tokio::test]
    async fn redirect_to_a_name_resolving_to_a_refused_address() {
        // A server on 127.0.0.2, the only address allowed; it redirects to
        // localhost, which resolves to other loopback addresses: the resolver
        // refuses the hop.
        let Some(port) = serve_on("127.0.0.2").await else {
            eprintln!("cannot listen on 127.0.0.2 here; skipped");
            return;
        };
        let policy = allow(&["127.0.0.2/32"]);
        let refused = get(
            &client(policy),
            &format!("http://127.0.0.2:{port}/to-localhost"),
        )
        .await
        .expect_err("the hop is refused");
        assert!(
            matches!(
                outbound(&refused),
                OutboundError::NoAllowedAddress { host, .. } if host == "localhost"
            ),
            "{}",
            describe(&*refused)
        );
    }

    #[tokio::test]
    async fn at_most_five_redirects() {
        let port = serve().await;
        let allowed = client(allow(&["127.0.0.1/32"]));
        let five = get(&allowed, &format!("http://127.0.0.1:{port}/chain/5")).await;
        assert_eq!(five.expect("five hops are followed"), "ok");
        let six = get(&allowed, &format!("http://127.0.0.1:{port}/chain/6"))
            .await
            .expect_err("six hops are too many");
        assert!(
            matches!(
                outbound(&six),
                OutboundError::TooManyRedirects(MAX_REDIRECTS)
            ),
            "{}",
            describe(&*six)
        );
    }
}
