//! Registry records committed with an entity (`Hub::create_entity_with_records`):
//! the caller's rights are the create's, its audit record is kept, and the records
//! stand or fall with the entity. On SQLite, or on PostgreSQL with
//! `DOTHI_TEST_STORE=postgres`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use hub::auth::{Caller, Role};
use hub::test_support::TestStore;
use hub::{HubConfig, Scope};
use ngsi::entity::Reader;
use ngsi::{Context, Entity, ErrorKind};
use serde_json::{Value, json};
use store::{RegistryPut, RegistryWrite};

const TENANT: &str = "records";

fn report(n: u32) -> Entity {
    let body = json!({
        "id": format!("urn:ngsi-ld:ServiceRequest:{n}"),
        "type": "ServiceRequest",
        "status": {"type": "Property", "value": "open"},
    });
    Reader {
        ctx: &Context::core(),
        now: ngsi::entity::now(),
    }
    .entity(&body, None)
    .unwrap()
}

fn private(key: &str) -> RegistryPut {
    RegistryPut::new(
        "test.private",
        TENANT,
        vec![(key.to_string(), json!({"for": key}))],
        RegistryWrite::Create,
    )
}

/// A caller holding `role` in the tests' tenant.
fn member(role: Role) -> Caller {
    Caller {
        role: Some(role),
        tenants: BTreeSet::from([TENANT.to_string()]),
        ..Caller::system("test")
    }
}

fn scope(caller: Caller) -> Scope {
    Scope::new(TENANT, Context::core(), Arc::new(caller))
}

#[tokio::test]
async fn records_commit_with_the_entity_under_the_rights_of_the_create() {
    let test_store = TestStore::fresh("records").await;
    let store = store::open(&test_store.url).await.unwrap();
    let hub = hub::state(store.clone(), &HubConfig::default())
        .unwrap()
        .hub;
    let record = async |key: &str| {
        store
            .registry_get("test.private", TENANT, key)
            .await
            .unwrap()
    };
    let exists = async |n: u32| {
        store
            .get(TENANT, &format!("urn:ngsi-ld:ServiceRequest:{n}"))
            .await
            .unwrap()
            .is_some()
    };

    // A viewer may not create: neither the entity nor its record is written.
    let e = hub
        .create_entity_with_records(&scope(member(Role::Viewer)), report(1), vec![private("a")])
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Forbidden);
    assert!(!exists(1).await);
    assert_eq!(record("a").await, None);

    // A caller limited to other types may not create this one.
    let limited = Caller {
        types: Some(BTreeSet::from([Context::core().expand("Streetlight")])),
        ..member(Role::Operator)
    };
    let e = hub
        .create_entity_with_records(&scope(limited), report(1), vec![private("a")])
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Forbidden);
    assert_eq!(record("a").await, None);

    // Granted: both are written, and the audit log names the entity.
    hub.create_entity_with_records(
        &scope(Caller::system("records-test")),
        report(1),
        vec![private("a")],
    )
    .await
    .unwrap();
    assert!(exists(1).await);
    assert_eq!(record("a").await, Some(json!({"for": "a"})));
    let audit = store
        .audit_list(store::AuditFilter {
            actor: Some("system:records-test".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    let text: Value = serde_json::from_str(&audit[0].text).unwrap();
    assert_eq!(text["targets"], json!(["urn:ngsi-ld:ServiceRequest:1"]));

    // The entity exists: its new record is not written. The record's key is taken:
    // the new entity is not written.
    let system = scope(Caller::system("test"));
    let e = hub
        .create_entity_with_records(&system, report(1), vec![private("b")])
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AlreadyExists);
    assert_eq!(record("b").await, None);
    let e = hub
        .create_entity_with_records(&system, report(2), vec![private("a")])
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AlreadyExists);
    assert!(!exists(2).await);
    assert_eq!(record("a").await, Some(json!({"for": "a"})));
}
