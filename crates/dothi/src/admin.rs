//! `dothi admin` and `dothi audit`: users, API keys and the audit log straight on the
//! store, with the server running or not; and the credentials a server ensures at
//! start (`--admin-key`, the first admin, the demo's login link).

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use hub::auth::identity::{NewKey, NewUser, UserChange};
use hub::auth::{Caller, Identity, Role, secrets};

use crate::config::DEFAULT_STORE;

#[derive(Args)]
pub struct AdminArgs {
    /// Where data lives (as for `serve`).
    #[arg(long, env = "DOTHI_STORE", default_value = DEFAULT_STORE, global = true)]
    pub store: String,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Users of the web app.
    #[command(subcommand)]
    User(UserCommand),
    /// API keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Creates a user; prints a generated password unless one is given.
    Create {
        name: String,
        #[command(flatten)]
        grant: Grant,
        /// The password (12 characters or more); generated when left out.
        #[arg(long, env = "DOTHI_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Sets a new password (generated unless given) and lifts a lockout.
    Password {
        name: String,
        #[arg(long, env = "DOTHI_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Enrols the user in a TOTP second factor; prints the secret and its URI.
    Totp { name: String },
    /// Lists the users.
    List,
    /// Deletes a user and ends their sessions.
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Creates a key and prints it (shown once: only its digest is kept).
    Create {
        name: String,
        #[command(flatten)]
        grant: Grant,
        /// Entity types the key is limited to (repeatable).
        #[arg(long = "type")]
        types: Vec<String>,
        /// When the key stops working (ISO 8601 date-time).
        #[arg(long)]
        expires: Option<String>,
    },
    /// Revokes a key by its id.
    Revoke { id: String },
    /// Lists the keys (never the secrets).
    List,
}

/// The role and the tenants a new user or key is granted.
#[derive(Args)]
pub struct Grant {
    #[arg(long, default_value = "viewer")]
    role: String,
    /// A tenant granted (repeatable; `default` for the default tenant, `*` for all).
    #[arg(long = "tenant")]
    tenants: Vec<String>,
}

impl Grant {
    fn role(&self) -> anyhow::Result<Role> {
        Role::parse(&self.role).map_err(|e| anyhow::anyhow!(e.detail))
    }

    /// The tenants as the store names them (the default tenant is "").
    fn tenants(self) -> Vec<String> {
        self.tenants
            .into_iter()
            .map(|t| if t == "default" { String::new() } else { t })
            .collect()
    }
}

#[derive(Args)]
pub struct AuditArgs {
    #[arg(long, env = "DOTHI_STORE", default_value = DEFAULT_STORE, global = true)]
    pub store: String,
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Checks the hash chain; names the first record where it breaks (exit 3).
    Verify,
    /// Writes the audit records as JSON Lines, oldest first.
    Export {
        /// Where to write (standard output by default).
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
}

/// A password a person can type: 20 characters of URL-safe base64.
pub fn generated_password() -> anyhow::Result<String> {
    secrets::random_token(15).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn identity(store_url: &str) -> anyhow::Result<(Arc<dyn store::Store>, Identity)> {
    let store = store::open(store_url)
        .await
        .with_context(|| format!("opening the store {store_url}"))?;
    let identity = Identity::new(store.clone(), hub::auth::IdentityConfig::default());
    Ok((store, identity))
}

/// Records a change made here in the audit log (the actor is the command line).
async fn audited(identity: &Identity, action: &str, target: String) {
    let mut caller = Caller::system("cli");
    caller.request.action = action.to_string();
    identity.audit(vec![caller.audit(None, vec![target])]).await;
}

pub async fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let (_store, identity) = identity(&args.store).await?;
    let e = |e: ngsi::Error| anyhow::anyhow!(e.detail);
    match args.command {
        AdminCommand::User(UserCommand::Create {
            name,
            grant,
            password,
        }) => {
            let generated = password.is_none();
            let password = match password {
                Some(p) => p,
                None => generated_password()?,
            };
            let user = identity
                .create_user(NewUser {
                    username: name,
                    password: password.clone(),
                    role: grant.role()?,
                    tenants: grant.tenants(),
                    types: None,
                })
                .await
                .map_err(e)?;
            audited(
                &identity,
                "admin.user-create",
                format!("user:{}", user.username),
            )
            .await;
            println!("user {} ({}) created", user.username, user.role.as_str());
            if generated {
                println!("password: {password}");
            }
        }
        AdminCommand::User(UserCommand::Password { name, password }) => {
            let generated = password.is_none();
            let password = match password {
                Some(p) => p,
                None => generated_password()?,
            };
            identity
                .update_user(
                    &name,
                    UserChange {
                        password: Some(password.clone()),
                        unlock: true,
                        ..UserChange::default()
                    },
                )
                .await
                .map_err(e)?;
            audited(&identity, "admin.user-password", format!("user:{name}")).await;
            println!("password of {name} set; the account is unlocked and its sessions ended");
            if generated {
                println!("password: {password}");
            }
        }
        AdminCommand::User(UserCommand::Totp { name }) => {
            let secret = identity.enrol_totp(&name).await.map_err(e)?;
            audited(&identity, "admin.user-totp", format!("user:{name}")).await;
            println!("secret: {secret}");
            println!(
                "uri:    {}",
                hub::auth::totp::otpauth_uri("dothi", &name, &secret)
            );
        }
        AdminCommand::User(UserCommand::List) => {
            for u in identity.list_users().await.map_err(e)? {
                println!("{}", serde_json::to_string(&u)?);
            }
        }
        AdminCommand::User(UserCommand::Delete { name }) => {
            identity.delete_user(&name).await.map_err(e)?;
            audited(&identity, "admin.user-delete", format!("user:{name}")).await;
            println!("user {name} deleted");
        }
        AdminCommand::Key(KeyCommand::Create {
            name,
            grant,
            types,
            expires,
        }) => {
            let expires = expires
                .map(|x| {
                    chrono::DateTime::parse_from_rfc3339(&x)
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .with_context(|| format!("--expires {x:?} is not an ISO 8601 date-time"))
                })
                .transpose()?;
            let (view, key) = identity
                .create_key(
                    NewKey {
                        name,
                        role: grant.role()?,
                        tenants: grant.tenants(),
                        types: (!types.is_empty()).then_some(types),
                        expires,
                    },
                    "system:cli",
                )
                .await
                .map_err(e)?;
            audited(&identity, "admin.key-create", format!("key:{}", view.id)).await;
            println!("key {} ({}) created; it is shown once:", view.id, view.name);
            println!("{key}");
        }
        AdminCommand::Key(KeyCommand::Revoke { id }) => {
            if !identity.revoke_key(&id).await.map_err(e)? {
                bail!("no key {id}");
            }
            audited(&identity, "admin.key-revoke", format!("key:{id}")).await;
            println!("key {id} revoked");
        }
        AdminCommand::Key(KeyCommand::List) => {
            for k in identity.list_keys().await.map_err(e)? {
                println!("{}", serde_json::to_string(&k)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let store = store::open(&args.store)
        .await
        .with_context(|| format!("opening the store {}", args.store))?;
    match args.command {
        AuditCommand::Verify => {
            // What is waiting is sealed first, so that the check covers it.
            store.audit_seal(1_000_000).await?;
            let verified = hub::audit::verify(store.as_ref()).await?;
            match verified.broken {
                None => {
                    println!(
                        "the audit chain holds: {} records checked",
                        verified.records
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some(b) => {
                    println!(
                        "the audit chain is broken at record {} (sequence {}): {}",
                        b.id, b.seq, b.reason
                    );
                    Ok(ExitCode::from(3))
                }
            }
        }
        AuditCommand::Export { output } => {
            let mut out: Box<dyn std::io::Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut after = i64::MIN;
            let mut n = 0u64;
            loop {
                let page = store.audit_chain(after, 10_000).await?;
                let Some(last) = page.records.last() else {
                    break;
                };
                after = last.seq.unwrap_or(i64::MAX);
                for r in &page.records {
                    let mut v: serde_json::Value = serde_json::from_str(&r.text)?;
                    v["id"] = r.id.into();
                    v["seq"] = r.seq.into();
                    v["hash"] = r.hash.clone().into();
                    writeln!(out, "{v}")?;
                    n += 1;
                }
            }
            out.flush()?;
            eprintln!("{n} sealed audit records written");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The credentials a server ensures at start: the `--admin-key`; on a store with no
/// admin yet and no such key, when `first_admin` says so, a first admin user and key,
/// printed once.
pub async fn ensure_admin(
    identity: &Identity,
    admin_key: Option<&str>,
    first_admin: bool,
) -> anyhow::Result<()> {
    let e = |e: ngsi::Error| anyhow::anyhow!(e.detail);
    if let Some(key) = admin_key {
        identity
            .ensure_key(
                key,
                NewKey {
                    name: "admin-key".into(),
                    role: Role::Admin,
                    tenants: every_tenant(),
                    types: None,
                    expires: None,
                },
                "system:start",
            )
            .await
            .map_err(e)?;
        return Ok(());
    }
    if !first_admin || identity.has_admin().await.map_err(e)? {
        return Ok(());
    }
    let password = generated_password()?;
    create_admin_user(identity, &password).await?;
    let key = create_admin_key(identity, "admin", "system:start").await?;
    audited(identity, "admin.first-start", "user:admin".into()).await;
    println!("First start: an admin was created. These are shown once; keep them safe.");
    println!("  user:     admin");
    println!("  password: {password}");
    println!("  API key:  {key}");
    Ok(())
}

/// The demo's credentials at every start: the admin user (made on the first), a
/// fresh admin key named `demo` (the previous one revoked) and a one-time login link.
pub async fn demo_credentials(identity: &Identity) -> anyhow::Result<(String, String)> {
    let e = |e: ngsi::Error| anyhow::anyhow!(e.detail);
    if identity.get_user("admin").await.is_err() {
        create_admin_user(identity, &generated_password()?).await?;
    }
    for k in identity.list_keys().await.map_err(e)? {
        if k.name == "demo" {
            identity.revoke_key(&k.id).await.map_err(e)?;
        }
    }
    let key = create_admin_key(identity, "demo", "system:demo").await?;
    let link = identity
        .login_link("admin", std::time::Duration::from_secs(24 * 3600))
        .await
        .map_err(e)?;
    Ok((key, link))
}

/// Every tenant, as an admin's grant.
fn every_tenant() -> Vec<String> {
    vec![hub::auth::ALL_TENANTS.into()]
}

/// The user `admin`, of every tenant, with this password.
async fn create_admin_user(identity: &Identity, password: &str) -> anyhow::Result<()> {
    identity
        .create_user(NewUser {
            username: "admin".into(),
            password: password.to_string(),
            role: Role::Admin,
            tenants: every_tenant(),
            types: None,
        })
        .await
        .map_err(|e| anyhow::anyhow!(e.detail))?;
    Ok(())
}

/// A new admin key of every tenant; the key itself (shown once).
async fn create_admin_key(identity: &Identity, name: &str, by: &str) -> anyhow::Result<String> {
    let (_, key) = identity
        .create_key(
            NewKey {
                name: name.into(),
                role: Role::Admin,
                tenants: every_tenant(),
                types: None,
                expires: None,
            },
            by,
        )
        .await
        .map_err(|e| anyhow::anyhow!(e.detail))?;
    Ok(key)
}
