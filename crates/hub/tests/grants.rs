//! Agency grants (`hub::grants`): only admins grant, the right's bounds are checked
//! before anything is written, a grant reads back per tenant, the list pages by actor,
//! granting no agency takes the right back, and each grant is audited under the right's
//! action. On SQLite, or on PostgreSQL with `DOTHI_TEST_STORE=postgres`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use hub::HubConfig;
use hub::auth::{Caller, Role};
use hub::grants::AgencyGrant;
use hub::test_support::TestStore;
use ngsi::{Error, ErrorKind};
use serde_json::json;

const INSPECT: AgencyGrant = AgencyGrant {
    collection: "test.inspect",
    audit_action: "grant inspection",
    admins_only: "inspection is granted by admins",
    check: |actor, agencies| {
        if actor.is_empty() || agencies.len() > 2 {
            return Err(Error::bad_data("an actor and at most 2 agencies"));
        }
        Ok(())
    },
    store_error: hub::service::store_error,
};

#[tokio::test]
async fn grants_are_bounded_per_tenant_listed_taken_back_and_audited() {
    let test_store = TestStore::fresh("grants").await;
    let store = store::open(&test_store.url).await.unwrap();
    let state = hub::state(store.clone(), &HubConfig::default()).unwrap();
    let records = state.hub.records();
    let admin = Caller::system("test");
    let operator = Caller {
        role: Some(Role::Operator),
        tenants: BTreeSet::from(["a".to_string()]),
        ..Caller::system("test")
    };
    let grant = async |caller: &Caller, actor: &str, names: &[&str]| {
        let names = names.iter().map(|n| n.to_string()).collect();
        INSPECT
            .set(
                &records,
                Some(state.identity.as_ref()),
                caller,
                "a",
                actor,
                names,
            )
            .await
    };
    let held =
        async |tenant: &str, actor: &str| INSPECT.agencies(&records, tenant, actor).await.unwrap();

    let refused = grant(&operator, "user:lan", &["x"]).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Forbidden);
    assert_eq!(refused.detail, "inspection is granted by admins");
    let too_many = grant(&admin, "user:lan", &["x", "y", "z"]).await;
    assert_eq!(too_many.unwrap_err().kind, ErrorKind::BadRequestData);
    assert!(held("a", "user:lan").await.is_empty());

    grant(&admin, "user:lan", &["x", "y"]).await.unwrap();
    grant(&admin, "key:7", &["z"]).await.unwrap();
    assert_eq!(held("a", "user:lan").await, ["x", "y"]);
    // Another tenant holds nothing of it.
    assert!(held("b", "user:lan").await.is_empty());
    let (listed, total) = INSPECT.list(&records, "a", 1).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(listed, vec![("key:7".to_string(), json!(["z"]))]);

    // No agency takes the right back: the record is gone.
    grant(&admin, "user:lan", &[]).await.unwrap();
    let kept = store.registry_get("test.inspect", "a", "user:lan").await;
    assert_eq!(kept.unwrap(), None);
    assert_eq!(INSPECT.list(&records, "a", 10).await.unwrap().1, 1);

    let filter = store::AuditFilter {
        limit: 100,
        ..Default::default()
    };
    let logged = store.audit_list(filter).await.unwrap();
    let grants: Vec<store::AuditRecord> = logged
        .iter()
        .filter_map(|a| a.record())
        .filter(|a| a.action.starts_with("grant inspection"))
        .collect();
    assert_eq!(
        grants.len(),
        3,
        "three grants made, none refused: {grants:?}"
    );
    assert!(grants.iter().all(|g| g.tenant.as_deref() == Some("a")
        && g.action == "grant inspection (test)"
        && g.actor == "system:test"));
    let targets: BTreeSet<&str> = grants.iter().map(|g| g.targets[0].as_str()).collect();
    assert_eq!(targets, BTreeSet::from(["user:lan", "key:7"]));
}
