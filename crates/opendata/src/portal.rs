//! The portal: datasets and organisations kept as entities of the hub's default
//! tenant, read and written through [`hub::Hub`] only.

use std::sync::{Arc, Mutex, PoisonError};

use hub::auth::Access;
use hub::{ChangeKind, EntityChange, Hub, Scope};
use ngsi::entity::Reader;
use ngsi::query::ast::TypeExpr;
use ngsi::render::{Format, RenderOptions, render_entity};
use ngsi::{Context, Entity, Error, ErrorKind};
use serde_json::Value;
use store::EntityQuery;
use tokio::sync::broadcast;

use crate::model::{DATASET_TYPE, Dataset, Invalid, ORGANIZATION_TYPE, Organization};

/// The tenant of the catalogue itself (the default tenant).
pub const CATALOGUE_TENANT: &str = "";
/// Entities read from the hub at a time.
const PAGE: usize = 1_000;

/// Why a portal operation failed.
#[derive(Debug)]
pub enum Fault {
    /// A field is wrong (CKAN's Validation Error).
    Invalid(Invalid),
    /// Anything the hub says (not found, forbidden, unavailable...).
    Hub(Error),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Invalid(i) => write!(f, "{}", i.message()),
            Fault::Hub(e) => write!(f, "{}", e.detail),
        }
    }
}

impl std::error::Error for Fault {}

impl From<Error> for Fault {
    fn from(e: Error) -> Self {
        Fault::Hub(e)
    }
}

impl From<Invalid> for Fault {
    fn from(i: Invalid) -> Self {
        Fault::Invalid(i)
    }
}

/// The open data portal over a hub.
#[derive(Clone)]
pub struct Portal {
    hub: Arc<Hub>,
    cache: Arc<Cache>,
}

/// The catalogue as last read, kept until the hub's change feed tells of a change to
/// a dataset or an organisation (or that changes were missed). Every read looks at
/// the feed first, so a write is seen by the next read of whoever made it.
struct Cache {
    feed: Mutex<broadcast::Receiver<Arc<EntityChange>>>,
    datasets: Listing<Dataset>,
    organizations: Listing<Organization>,
    /// The expanded types whose changes matter.
    watched: [String; 2],
}

impl Cache {
    fn new(hub: &Hub) -> Cache {
        let ctx = Context::core();
        Cache {
            feed: Mutex::new(hub.subscribe_changes()),
            datasets: Listing::new(DATASET_TYPE, Dataset::from_key_values, |d| &d.name),
            organizations: Listing::new(ORGANIZATION_TYPE, Organization::from_key_values, |o| {
                &o.name
            }),
            watched: [ctx.expand(DATASET_TYPE), ctx.expand(ORGANIZATION_TYPE)],
        }
    }

    /// Drops what the changes since the last look make stale.
    fn take_feed(&self) {
        use broadcast::error::TryRecvError;
        let mut feed = self.feed.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stale = false;
        loop {
            match feed.try_recv() {
                Ok(change) => {
                    stale |= change.kind == ChangeKind::Missed
                        || (change.tenant == CATALOGUE_TENANT
                            && change.types.iter().any(|t| self.watched.contains(t)));
                }
                // Changes were lost: anything may have changed.
                Err(TryRecvError::Lagged(_)) => stale = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        if stale {
            self.datasets.set(None);
            self.organizations.set(None);
        }
    }
}

/// The catalogue entities of one type as last read (None: to read again), and how to
/// read them: a reader of their key-values and the name they are sorted by.
struct Listing<T> {
    entity_type: &'static str,
    read: fn(&Value) -> Option<T>,
    name: fn(&T) -> &String,
    all: Mutex<Option<Arc<Vec<T>>>>,
}

impl<T> Listing<T> {
    fn new(
        entity_type: &'static str,
        read: fn(&Value) -> Option<T>,
        name: fn(&T) -> &String,
    ) -> Self {
        Listing {
            entity_type,
            read,
            name,
            all: Mutex::new(None),
        }
    }

    fn get(&self) -> Option<Arc<Vec<T>>> {
        self.all
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, all: Option<Arc<Vec<T>>>) {
        *self.all.lock().unwrap_or_else(PoisonError::into_inner) = all;
    }
}

fn key_values(e: &Entity) -> Value {
    let ctx = Context::core();
    let opts = RenderOptions {
        format: Format::KeyValues,
        ..RenderOptions::new(&ctx)
    };
    Value::Object(render_entity(e, &opts))
}

impl Portal {
    pub fn new(hub: Arc<Hub>) -> Portal {
        let cache = Arc::new(Cache::new(&hub));
        Portal { hub, cache }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The portal's own reads: the catalogue is public.
    fn reader() -> Scope {
        Scope::system("opendata", CATALOGUE_TENANT)
    }

    async fn all_of(&self, entity_type: &str) -> Result<Vec<Value>, Error> {
        let scope = Portal::reader();
        let query = EntityQuery {
            types: Some(TypeExpr::Type(scope.ctx.expand(entity_type))),
            ..EntityQuery::default()
        };
        let all = self.hub.query_all(&scope, query, PAGE).await?;
        Ok(all.iter().map(key_values).collect())
    }

    /// Every dataset, by name (from the cache while no dataset changed).
    pub async fn datasets(&self) -> Result<Arc<Vec<Dataset>>, Error> {
        self.listed(&self.cache.datasets).await
    }

    /// Every organisation, by name (from the cache while none changed).
    pub async fn organizations(&self) -> Result<Arc<Vec<Organization>>, Error> {
        self.listed(&self.cache.organizations).await
    }

    /// Every entity of a listing, by name: from the cache while none changed, else
    /// read and kept there.
    async fn listed<T>(&self, listing: &Listing<T>) -> Result<Arc<Vec<T>>, Error> {
        self.cache.take_feed();
        if let Some(all) = listing.get() {
            return Ok(all);
        }
        let mut all: Vec<T> = self
            .all_of(listing.entity_type)
            .await?
            .iter()
            .filter_map(listing.read)
            .collect();
        all.sort_by(|a, b| (listing.name)(a).cmp((listing.name)(b)));
        let all = Arc::new(all);
        listing.set(Some(all.clone()));
        Ok(all)
    }

    async fn read(&self, id: &str) -> Result<Option<Value>, Error> {
        match self.hub.get_entity(&Portal::reader(), id).await {
            Ok(e) => Ok(Some(key_values(&e))),
            Err(e) if e.kind == ErrorKind::ResourceNotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The record of a name, or of an entity id (CKAN's `id`).
    async fn record(
        &self,
        name_or_id: &str,
        id_of: fn(&str) -> String,
    ) -> Result<Option<Value>, Error> {
        if name_or_id.starts_with("urn:") {
            self.read(name_or_id).await
        } else if crate::model::is_name(name_or_id) {
            self.read(&id_of(name_or_id)).await
        } else {
            Ok(None)
        }
    }

    /// A dataset by name (or by its entity id).
    pub async fn dataset(&self, name_or_id: &str) -> Result<Option<Dataset>, Error> {
        let v = self.record(name_or_id, Dataset::entity_id).await?;
        Ok(v.as_ref().and_then(Dataset::from_key_values))
    }

    pub async fn organization(&self, name_or_id: &str) -> Result<Option<Organization>, Error> {
        let v = self.record(name_or_id, Organization::entity_id).await?;
        Ok(v.as_ref().and_then(Organization::from_key_values))
    }

    /// Writes an entity with the caller's rights (audited as theirs).
    async fn write(&self, scope: &Scope, body: Value, create: bool) -> Result<(), Error> {
        let reader = Reader {
            ctx: &scope.ctx,
            now: ngsi::entity::now(),
        };
        let entity = reader.entity(&body, None)?;
        if create {
            self.hub.create_entity(scope, entity).await
        } else {
            self.hub.replace_entity(scope, entity).await
        }
    }

    /// Publishes a dataset (`create`: a new one; else it replaces the one of its
    /// name). The caller needs write access to the catalogue and read access to the
    /// tenant the view reads; the organisation must exist.
    pub async fn put_dataset(
        &self,
        caller: &Scope,
        mut d: Dataset,
        create: bool,
    ) -> Result<Dataset, Fault> {
        d.check()?;
        caller.caller.check(&d.view.tenant, Access::Read)?;
        if self.organization(&d.organization).await?.is_none() {
            return Err(Invalid::field(
                "owner_org",
                format!("no organisation named {}", d.organization),
            )
            .into());
        }
        let now = ngsi::entity::format_time(&ngsi::entity::now());
        let old = self.dataset(&d.name).await?;
        match (&old, create) {
            (Some(_), true) => {
                return Err(Invalid::field("name", "that URL is already in use").into());
            }
            (None, false) => {
                return Err(Error::not_found(format!("no dataset named {}", d.name)).into());
            }
            _ => {}
        }
        if d.issued.is_empty() {
            d.issued = old.map_or_else(|| now.clone(), |o| o.issued);
        }
        d.modified = now;
        let scope = Scope::new(CATALOGUE_TENANT, Context::core(), caller.caller.clone());
        self.write(&scope, d.to_entity(), create).await?;
        Ok(d)
    }

    pub async fn delete_dataset(&self, caller: &Scope, name_or_id: &str) -> Result<(), Fault> {
        let Some(d) = self.dataset(name_or_id).await? else {
            return Err(Error::not_found(format!("no dataset {name_or_id}")).into());
        };
        let scope = Scope::new(CATALOGUE_TENANT, Context::core(), caller.caller.clone());
        self.hub
            .delete_entity(&scope, &Dataset::entity_id(&d.name))
            .await?;
        Ok(())
    }

    /// Creates or replaces an organisation.
    pub async fn put_organization(&self, caller: &Scope, o: Organization) -> Result<(), Fault> {
        o.check()?;
        let exists = self.organization(&o.name).await?.is_some();
        let scope = Scope::new(CATALOGUE_TENANT, Context::core(), caller.caller.clone());
        self.write(&scope, o.to_entity(), !exists).await?;
        Ok(())
    }
}
