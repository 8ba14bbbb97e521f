//! Accounts and keys: the first-start bootstrap and the `account` / `key` commands.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use palisade_model::{AccessKey, Account};
use std::sync::Arc;

use palisade_store::{SqliteStore, Store, StoreError, StoreResult, Tx};
use rand::Rng;

pub const DEFAULT_ACCOUNT_ID: u64 = 1234567890123456;
pub const DEFAULT_ACCOUNT_NAME: &str = "test@aliyun.com";

/// The store a command works on: PostgreSQL when a database URL is given, else the
/// SQLite file in the data directory.
pub fn open_store(data_dir: &Path, database_url: Option<&str>) -> Result<Arc<dyn Store>, String> {
    if let Some(url) = database_url.filter(|u| !u.is_empty()) {
        return open_postgres(url);
    }
    open_sqlite(data_dir).map(|s| Arc::new(s) as Arc<dyn Store>)
}

fn open_postgres(url: &str) -> Result<Arc<dyn Store>, String> {
    palisade_store::PgStore::open(url)
        .map(|s| Arc::new(s) as Arc<dyn Store>)
        .map_err(|e| format!("cannot open the PostgreSQL database: {e}"))
}

/// Runs `f` in one committed transaction and hands back what it returned.
pub fn write<T>(
    store: &dyn Store,
    mut f: impl FnMut(&mut dyn Tx) -> StoreResult<T>,
) -> StoreResult<T> {
    let mut out = None;
    store.write_sync(&mut |tx| {
        out = Some(f(tx)?);
        Ok(())
    })?;
    out.ok_or_else(|| StoreError::Backend("transaction produced nothing".into()))
}

fn open_sqlite(data_dir: &Path) -> Result<SqliteStore, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    // Keys live here: owner only.
    let _ = std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700));
    let db = data_dir.join("palisade.db");
    SqliteStore::open(&db).map_err(|e| format!("cannot open {}: {e}", db.display()))
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

pub fn new_access_key_id() -> String {
    format!(
        "LTAI{}",
        random_string(
            20,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        )
    )
}

pub fn new_secret() -> String {
    random_string(
        30,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    )
}

fn now() -> String {
    palisade_api::service::now_iso()
}

/// On an empty database: the default account and its key, from the environment if set
/// (`PALISADE_ACCESS_KEY_ID` / `PALISADE_ACCESS_KEY_SECRET`), else generated and written to
/// `<data-dir>/default-credentials` (mode 0600), which the log names.
pub fn bootstrap(store: &dyn Store, data_dir: &Path) -> Result<(), StoreError> {
    let env_id = std::env::var("PALISADE_ACCESS_KEY_ID")
        .ok()
        .filter(|s| !s.is_empty());
    let env_secret = std::env::var("PALISADE_ACCESS_KEY_SECRET")
        .ok()
        .filter(|s| !s.is_empty());
    let account_id = std::env::var("PALISADE_ACCOUNT_ID")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_ACCOUNT_ID);
    let account_name = std::env::var("PALISADE_ACCOUNT_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_ACCOUNT_NAME.to_string());
    let generated = env_id.is_none() || env_secret.is_none();
    let key = AccessKey {
        id: env_id.unwrap_or_else(new_access_key_id),
        secret: env_secret.unwrap_or_else(new_secret),
        account_id,
        enabled: true,
        created_at: now(),
    };
    let created = write(store, |tx| {
        if !tx.accounts()?.is_empty() {
            return Ok(false);
        }
        tx.insert_account(&Account {
            id: account_id,
            name: account_name.clone(),
            created_at: now(),
        })?;
        tx.insert_access_key(&key)?;
        Ok(true)
    })?;
    if created {
        eprintln!(
            "palisade: created account {account_name} ({account_id}) with AccessKeyId {}",
            key.id
        );
        if generated {
            let path = data_dir.join("default-credentials");
            let text = format!(
                "AccountId={account_id}\nAccountName={account_name}\nAccessKeyId={}\nAccessKeySecret={}\n",
                key.id, key.secret
            );
            match write_private(&path, &text) {
                Ok(()) => eprintln!("palisade: its secret is in {}", path.display()),
                Err(e) => eprintln!("palisade: could not write {}: {e}", path.display()),
            }
        }
    }
    Ok(())
}

fn write_private(path: &PathBuf, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Create an account with one AccessKey pair; prints it as JSON.
    Add {
        #[command(flatten)]
        data: crate::DataDir,
        /// Login name, e.g. bob@example.com.
        #[arg(long)]
        name: String,
        /// Numeric owner id; random if absent.
        #[arg(long)]
        id: Option<u64>,
        #[arg(long)]
        access_key_id: Option<String>,
        #[arg(long)]
        access_key_secret: Option<String>,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        data: crate::DataDir,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Add an AccessKey pair to an account (by name or id); prints it as JSON.
    Add {
        #[command(flatten)]
        data: crate::DataDir,
        #[arg(long)]
        account: String,
        #[arg(long)]
        access_key_id: Option<String>,
        #[arg(long)]
        access_key_secret: Option<String>,
    },
}

fn key_json(a: &Account, k: &AccessKey) -> String {
    serde_json::json!({
        "AccountId": a.id,
        "AccountName": a.name,
        "AccessKeyId": k.id,
        "AccessKeySecret": k.secret,
    })
    .to_string()
}

pub fn account(cmd: AccountCommand) -> i32 {
    match cmd {
        AccountCommand::Add {
            data,
            name,
            id,
            access_key_id,
            access_key_secret,
        } => {
            let store = match open_store(&data.data_dir, data.database_url.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            let account = Account {
                id: id.unwrap_or_else(|| {
                    rand::thread_rng().gen_range(1_000_000_000_000_000..9_999_999_999_999_999)
                }),
                name: name.clone(),
                created_at: now(),
            };
            let key = AccessKey {
                id: access_key_id.unwrap_or_else(new_access_key_id),
                secret: access_key_secret.unwrap_or_else(new_secret),
                account_id: account.id,
                enabled: true,
                created_at: now(),
            };
            let r = write(&*store, |tx| {
                if tx.account_by_name(&account.name)?.is_some()
                    || tx.account_by_id(account.id)?.is_some()
                {
                    return Ok(false);
                }
                tx.insert_account(&account)?;
                tx.insert_access_key(&key)?;
                Ok(true)
            });
            match r {
                Ok(true) => {
                    println!("{}", key_json(&account, &key));
                    0
                }
                Ok(false) => fail(&format!(
                    "an account named {name} or with that id already exists"
                )),
                Err(e) => fail(&e.to_string()),
            }
        }
        AccountCommand::List { data } => {
            let store = match open_store(&data.data_dir, data.database_url.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            match write(&*store, |tx| tx.accounts()) {
                Ok(list) => {
                    for a in list {
                        println!("{}\t{}", a.id, a.name);
                    }
                    0
                }
                Err(e) => fail(&e.to_string()),
            }
        }
    }
}

pub fn key(cmd: KeyCommand) -> i32 {
    match cmd {
        KeyCommand::Add {
            data,
            account,
            access_key_id,
            access_key_secret,
        } => {
            let store = match open_store(&data.data_dir, data.database_url.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            let r = write(&*store, |tx| {
                let found = match tx.account_by_name(&account)? {
                    Some(a) => Some(a),
                    None => match account.parse::<u64>() {
                        Ok(id) => tx.account_by_id(id)?,
                        Err(_) => None,
                    },
                };
                let Some(a) = found else { return Ok(None) };
                let key = AccessKey {
                    id: access_key_id.clone().unwrap_or_else(new_access_key_id),
                    secret: access_key_secret.clone().unwrap_or_else(new_secret),
                    account_id: a.id,
                    enabled: true,
                    created_at: now(),
                };
                tx.insert_access_key(&key)?;
                Ok(Some((a, key)))
            });
            match r {
                Ok(Some((a, k))) => {
                    println!("{}", key_json(&a, &k));
                    0
                }
                Ok(None) => fail(&format!("no account {account}")),
                Err(e) => fail(&e.to_string()),
            }
        }
    }
}

fn fail(msg: &str) -> i32 {
    eprintln!("palisade: {msg}");
    1
}
