//! Durable storage behind a narrow trait. The service layer runs its logic inside a
//! transaction through [`Tx`]; backends decide how transactions commit (SQLite: one
//! writer thread that group-commits several jobs per fsync).

mod sqlite;

pub use sqlite::SqliteStore;
mod postgres;
pub use postgres::PgStore;

use palisade_model::{
    AccessKey, Account, Instance, NetworkInterface, Permission, SecurityGroup, Vpc,
};

/// What can go wrong below the API. The API maps every variant to `InternalError`
/// except where it asks on purpose (e.g. a unique-constraint race).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Backend(String),
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("store is shut down")]
    Closed,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// An idempotency record for `ClientToken`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTokenRecord {
    pub fingerprint: String,
    pub response: String,
}

/// The operations the service needs, inside one transaction.
pub trait Tx {
    fn account_by_access_key(
        &mut self,
        access_key_id: &str,
    ) -> StoreResult<Option<(AccessKey, Account)>>;
    fn account_by_id(&mut self, id: u64) -> StoreResult<Option<Account>>;
    fn account_by_name(&mut self, name: &str) -> StoreResult<Option<Account>>;
    fn accounts(&mut self) -> StoreResult<Vec<Account>>;
    fn insert_account(&mut self, account: &Account) -> StoreResult<()>;
    fn insert_access_key(&mut self, key: &AccessKey) -> StoreResult<()>;

    fn insert_vpc(&mut self, vpc: &Vpc) -> StoreResult<()>;
    fn vpc(&mut self, id: &str) -> StoreResult<Option<Vpc>>;
    fn vpcs(&mut self, account_id: u64, region_id: &str) -> StoreResult<Vec<Vpc>>;
    fn delete_vpc(&mut self, id: &str) -> StoreResult<()>;
    fn count_groups_in_vpc(&mut self, vpc_id: &str) -> StoreResult<u64>;

    fn insert_group(&mut self, group: &SecurityGroup) -> StoreResult<()>;
    /// Any account's group: the service checks ownership (cross-account references need it).
    fn group(&mut self, id: &str) -> StoreResult<Option<SecurityGroup>>;
    /// Takes the group's row lock where the backend has row locks, so quota checks serialize.
    fn lock_group(&mut self, id: &str) -> StoreResult<()>;
    /// Serializes the account's writes where several writers run at once, so account-wide
    /// checks (group quota, free private addresses, ClientToken) hold across servers.
    fn lock_account(&mut self, account_id: u64) -> StoreResult<()>;
    /// The account's groups in a region, in creation order.
    fn groups(&mut self, account_id: u64, region_id: &str) -> StoreResult<Vec<SecurityGroup>>;
    fn update_group(&mut self, group: &SecurityGroup) -> StoreResult<()>;
    /// Deletes the group and its rules.
    fn delete_group(&mut self, id: &str) -> StoreResult<()>;

    /// The group's rules in creation order.
    fn permissions(&mut self, group_id: &str) -> StoreResult<Vec<Permission>>;
    fn count_permissions(&mut self, group_id: &str) -> StoreResult<u64>;
    /// The id of the group's rule with this identity ([`Permission::identity`]), if any.
    fn permission_by_identity(
        &mut self,
        group_id: &str,
        identity: &str,
    ) -> StoreResult<Option<String>>;
    fn insert_permission(&mut self, p: &Permission) -> StoreResult<()>;
    fn update_permission(&mut self, p: &Permission) -> StoreResult<()>;
    fn delete_permission(&mut self, id: &str) -> StoreResult<()>;
    /// Groups other than `group_id` with a rule naming `group_id`: (group id, owner account id).
    fn referencing_groups(&mut self, group_id: &str) -> StoreResult<Vec<(String, u64)>>;

    fn insert_instance(&mut self, instance: &Instance) -> StoreResult<()>;
    fn instance(&mut self, id: &str) -> StoreResult<Option<Instance>>;
    fn instances(&mut self, account_id: u64, region_id: &str) -> StoreResult<Vec<Instance>>;
    /// Deletes the instance, its primary interface and its memberships.
    fn delete_instance(&mut self, id: &str) -> StoreResult<()>;
    fn insert_nic(&mut self, nic: &NetworkInterface) -> StoreResult<()>;
    fn nic(&mut self, id: &str) -> StoreResult<Option<NetworkInterface>>;
    fn primary_nic(&mut self, instance_id: &str) -> StoreResult<Option<NetworkInterface>>;
    fn nics(&mut self, account_id: u64, region_id: &str) -> StoreResult<Vec<NetworkInterface>>;
    /// How many interfaces of the network (a VPC, or the classic network when `None`) use `ip`.
    fn nics_with_ip(&mut self, vpc_id: Option<&str>, region_id: &str, ip: &str)
        -> StoreResult<u64>;
    fn delete_nic(&mut self, id: &str) -> StoreResult<()>;
    /// The interface's groups in join order.
    fn nic_groups(&mut self, nic_id: &str) -> StoreResult<Vec<String>>;
    fn set_nic_groups(&mut self, nic_id: &str, groups: &[String]) -> StoreResult<()>;
    /// The interfaces that are members of the group.
    fn group_members(&mut self, group_id: &str) -> StoreResult<Vec<NetworkInterface>>;

    /// The change counter: every acknowledged write raises it by one.
    fn revision(&mut self) -> StoreResult<u64>;
    fn bump_revision(&mut self) -> StoreResult<u64>;

    fn client_token(
        &mut self,
        account_id: u64,
        token: &str,
    ) -> StoreResult<Option<ClientTokenRecord>>;
    fn put_client_token(
        &mut self,
        account_id: u64,
        token: &str,
        rec: &ClientTokenRecord,
    ) -> StoreResult<()>;
}

/// A unit of work for the writer. `run` executes inside the transaction and says whether
/// its changes should stay; `finish` learns whether the commit made them durable.
pub trait WriteJob: Send {
    fn run(&mut self, tx: &mut dyn Tx) -> StoreResult<bool>;
    fn finish(self: Box<Self>, committed: StoreResult<()>);
}

pub trait Store: Send + Sync + 'static {
    /// Runs `f` on a read snapshot.
    fn read(&self, f: &mut dyn FnMut(&mut dyn Tx) -> StoreResult<()>) -> StoreResult<()>;
    /// Queues a write job; its `finish` is called after the commit (or failure).
    fn submit(&self, job: Box<dyn WriteJob>);
    /// Runs `f` in its own write transaction on the calling thread and commits it
    /// (administration from the command line and first-start bootstrap).
    fn write_sync(&self, f: &mut dyn FnMut(&mut dyn Tx) -> StoreResult<()>) -> StoreResult<()>;
    /// Records a request nonce where every server sharing this database sees it; `None`
    /// when the backend leaves replay protection to the process (a single server).
    fn use_nonce(
        &self,
        _access_key_id: &str,
        _nonce: &str,
        _ttl_secs: u64,
    ) -> StoreResult<Option<bool>> {
        Ok(None)
    }
}
