//! Which attributes' values the value index (`attr_values`) leaves out.
//!
//! Every scalar of every attribute is a row of the value index, so that `q` compares
//! it without reading entities. A service whose entities carry attributes that no
//! query compares (a citizen report's description, deadlines, links) declares them
//! ([`crate::EntityStore::leave_out_of_value_index`]), and each write of such an entity
//! puts fewer rows in the index. A `q` on a left-out attribute is still answered: the
//! planners leave its comparison to the model, which tests each candidate the other
//! conditions select.
//!
//! The names are kept in the database (`unindexed_values`) and read at open, so that
//! every node and every later start plan alike. A name once left out stays left out:
//! putting its values back would mean reading every entity again.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

/// The names (expanded) left out, shared by a store's writers and planners.
#[derive(Debug, Default)]
pub(crate) struct ValueIndexPolicy {
    left_out: RwLock<Arc<BTreeSet<String>>>,
}

impl ValueIndexPolicy {
    pub fn new(names: impl IntoIterator<Item = String>) -> ValueIndexPolicy {
        ValueIndexPolicy {
            left_out: RwLock::new(Arc::new(names.into_iter().collect())),
        }
    }

    /// The names left out now.
    pub fn left_out(&self) -> Arc<BTreeSet<String>> {
        match self.left_out.read() {
            Ok(set) => set.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Takes a declaration: checks `names`, leaves out from now on those not left out
    /// yet, and returns them, for the backend to keep in the database. They are left
    /// out before they are kept: a planner that knows a name too early only reads
    /// more entities, while one that learnt it late would trust an index that misses
    /// rows.
    pub fn declare(&self, names: &[String]) -> crate::StoreResult<Vec<String>> {
        check(names)?;
        let mut guard = match self.left_out.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut new: Vec<String> = names
            .iter()
            .filter(|n| !guard.contains(*n))
            .cloned()
            .collect();
        new.sort();
        new.dedup();
        if !new.is_empty() {
            let mut set = BTreeSet::clone(&guard);
            set.extend(new.iter().cloned());
            *guard = Arc::new(set);
        }
        Ok(new)
    }
}

/// The most names one declaration may hold, and the longest name: a declaration
/// comes from code, but it is kept in the database for good.
pub(crate) const MAX_NAMES: usize = 200;
pub(crate) const MAX_NAME_BYTES: usize = 1000;

/// Checks a declaration's names.
fn check(names: &[String]) -> crate::StoreResult<()> {
    if names.len() > MAX_NAMES {
        return Err(ngsi::Error::bad_data(format!(
            "at most {MAX_NAMES} attributes can be left out of the value index at once"
        ))
        .into());
    }
    if let Some(n) = names
        .iter()
        .find(|n| n.is_empty() || n.len() > MAX_NAME_BYTES || n.contains(' '))
    {
        return Err(ngsi::Error::bad_data(format!("not an expanded attribute name: {n:?}")).into());
    }
    Ok(())
}
