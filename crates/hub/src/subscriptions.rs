//! Subscription operations of the [`Hub`] (clause 5.8): create, retrieve, query,
//! update and delete. Which change fires which subscription is decided by the store
//! when the change commits (its notifications go to the outbox in the same
//! transaction); [`crate::notifier`] delivers them.

use ngsi::Error;
use ngsi::subscription::{Subscription, SubscriptionStatus};
use serde_json::Value;
use store::{StoredSubscription, SubscriptionPage, SubscriptionWrite};

use crate::auth::{Caller, Role};
use crate::service::{Hub, Scope, store_error};

/// A new subscription id.
pub fn new_subscription_id() -> String {
    format!("urn:ngsi-ld:Subscription:{}", uuid::Uuid::new_v4())
}

/// The status a GET shows: the subscription's state now, and its deliveries.
pub fn status(stored: &StoredSubscription) -> SubscriptionStatus {
    let d = &stored.delivery;
    SubscriptionStatus {
        status: stored.subscription.status(ngsi::entity::now()),
        times_sent: d.times_sent,
        times_failed: d.times_failed,
        last_notification: d.last_notification,
        last_success: d.last_success,
        last_failure: d.last_failure,
    }
}

fn sub_not_found(id: &str) -> Error {
    Error::not_found(format!("subscription {id} not found"))
}

impl Hub {
    /// Resolves the @context that notifications are compacted with, so that it is
    /// cached (the store builds it from its cache when the change commits).
    async fn check_notification_context(&self, sub: &Subscription) -> Result<(), Error> {
        self.contexts
            .resolve(&sub.notification_context())
            .await
            .map(|_| ())
    }

    /// POST /subscriptions: returns the id. A subscription whose @context is more
    /// than one URL gets an implicitly created context (clause 5.13.1), under
    /// `origin` (the hub's, [`crate::contexts::ContextResolver::origin`]), which its
    /// `jsonldContext` names.
    pub async fn create_subscription(
        &self,
        scope: &Scope,
        body: &Value,
        origin: &str,
    ) -> Result<String, Error> {
        self.require_unlimited_write(scope)?;
        let mut sub =
            Subscription::parse(body, &scope.ctx, new_subscription_id, ngsi::entity::now())?;
        self.check_notification_context(&sub).await?;
        if sub.jsonld_context.is_none() && crate::hosted_contexts::wants_implicit(&sub.context) {
            sub.jsonld_context = self
                .contexts
                .add_implicit(&sub.notification_context(), origin, &scope.tenant, &sub.id)
                .await?;
        }
        let id = sub.id.clone();
        let implicit = sub.jsonld_context.clone();
        let stored = self
            .put_subscription(scope, sub, SubscriptionWrite::Create)
            .await;
        if let (Err(_), Some(url)) = (&stored, &implicit) {
            self.contexts.drop_implicit(url, &scope.tenant, &id).await?;
        }
        stored?;
        Ok(id)
    }

    /// GET /subscriptions/{id}. A subscription may name any entity and type, so a
    /// caller limited to some types reads none.
    pub async fn get_subscription(
        &self,
        scope: &Scope,
        id: &str,
    ) -> Result<StoredSubscription, Error> {
        self.require_tenant(scope).await?;
        scope.check_unlimited_types()?;
        let mut stored = self
            .store()
            .subscription_get(&scope.tenant, id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| sub_not_found(id))?;
        redact_for(&scope.caller, &mut stored);
        Ok(stored)
    }

    /// GET /subscriptions.
    pub async fn list_subscriptions(
        &self,
        scope: &Scope,
        offset: u64,
        limit: u64,
    ) -> Result<SubscriptionPage, Error> {
        self.require_tenant(scope).await?;
        scope.check_unlimited_types()?;
        let mut page = self
            .store()
            .subscription_list(&scope.tenant, offset, limit)
            .await
            .map_err(store_error)?;
        for stored in &mut page.subscriptions {
            redact_for(&scope.caller, stored);
        }
        Ok(page)
    }

    /// PATCH /subscriptions/{id}: changed as stored, secrets included.
    pub async fn update_subscription(
        &self,
        scope: &Scope,
        id: &str,
        body: &Value,
    ) -> Result<(), Error> {
        self.require_unlimited_write(scope)?;
        self.require_tenant(scope).await?;
        let mut sub = self
            .store()
            .subscription_get(&scope.tenant, id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| sub_not_found(id))?
            .subscription;
        sub.apply_patch(body, &scope.ctx, ngsi::entity::now())?;
        self.check_notification_context(&sub).await?;
        self.put_subscription(scope, sub, SubscriptionWrite::Replace)
            .await
    }

    /// Writes `sub` in the caller's tenant, with the audit record naming it.
    async fn put_subscription(
        &self,
        scope: &Scope,
        sub: Subscription,
        write: SubscriptionWrite,
    ) -> Result<(), Error> {
        let audit = self.audit_record(scope, vec![sub.id.clone()]);
        self.store()
            .subscription_put_audited(&scope.tenant, sub, write, Some(audit))
            .await
            .map_err(store_error)
    }

    /// DELETE /subscriptions/{id}.
    pub async fn delete_subscription(&self, scope: &Scope, id: &str) -> Result<(), Error> {
        self.require_unlimited_write(scope)?;
        self.require_tenant(scope).await?;
        // Its implicitly created context goes with it.
        let implicit = self
            .store()
            .subscription_get(&scope.tenant, id)
            .await
            .map_err(store_error)?
            .and_then(|s| s.subscription.jsonld_context);
        if self
            .store()
            .subscription_delete_audited(
                &scope.tenant,
                id,
                Some(self.audit_record(scope, vec![id.to_string()])),
            )
            .await
            .map_err(store_error)?
        {
            if let Some(url) = implicit {
                self.contexts.drop_implicit(&url, &scope.tenant, id).await?;
            }
            Ok(())
        } else {
            Err(sub_not_found(id))
        }
    }
}

/// What a caller who may not manage subscriptions (a viewer) must not see of one: the
/// receiver's credentials (`receiverInfo` values, user information in the endpoint).
fn redact_for(caller: &Caller, stored: &mut StoredSubscription) {
    if matches!(caller.role, Some(Role::Admin | Role::Operator)) {
        return;
    }
    let endpoint = &mut stored.subscription.notification.endpoint;
    for (_, value) in &mut endpoint.receiver_info {
        *value = HIDDEN.to_string();
    }
    if let Ok(mut url) = url::Url::parse(&endpoint.uri)
        && (!url.username().is_empty() || url.password().is_some())
    {
        let _ = url.set_username("");
        let _ = url.set_password(None);
        endpoint.uri = url.to_string();
    }
}

/// What stands in for a hidden secret.
const HIDDEN: &str = "(hidden)";
