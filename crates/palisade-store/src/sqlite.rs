//! SQLite backend: WAL mode, one writer thread that commits a batch of queued jobs per
//! transaction (each job in its own savepoint, so one job's failure leaves the others
//! intact), a syncer thread that makes each commit durable before its jobs are
//! acknowledged, and a small pool of reader connections.
//!
//! Durability: the writer commits with `synchronous=NORMAL` (the WAL is written, not yet
//! synced), hands the batch to the syncer, and goes on with the next batch; the syncer
//! fsyncs the WAL file and only then calls each job's `finish`. One fsync covers every
//! commit written before it began, so an acknowledged change is on disk exactly as with
//! `synchronous=FULL`, while the writer never waits for the disk. Checkpoints still sync
//! the WAL before copying it into the database, as SQLite does in NORMAL mode. Another
//! connection may read a committed batch a moment before it is durable; a crash in that
//! window loses only changes that were never acknowledged.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;

use palisade_model::*;
use rusqlite::{params, Connection, OptionalExtension};

use crate::{ClientTokenRecord, Store, StoreError, StoreResult, Tx, WriteJob};

/// Versioned migrations; index + 1 is the schema version. Never edit a released entry.
const MIGRATIONS: &[&str] = &[
    // 1: accounts, keys, VPCs, groups, rules, idempotency tokens.
    r#"
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );
    CREATE TABLE access_keys (
        id TEXT PRIMARY KEY,
        secret TEXT NOT NULL,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL
    );
    CREATE TABLE vpcs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        region_id TEXT NOT NULL,
        cidr_block TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE security_groups (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        region_id TEXT NOT NULL,
        vpc_id TEXT REFERENCES vpcs(id),
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        group_type TEXT NOT NULL,
        inner_access_policy TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX security_groups_owner ON security_groups(account_id, region_id);
    CREATE TABLE permissions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        group_id TEXT NOT NULL REFERENCES security_groups(id) ON DELETE CASCADE,
        direction TEXT NOT NULL,
        ip_protocol TEXT NOT NULL,
        port_range TEXT NOT NULL,
        source_port_range TEXT,
        nic_type TEXT NOT NULL,
        policy TEXT NOT NULL,
        priority INTEGER NOT NULL,
        peer_cidr TEXT,
        peer_group_id TEXT,
        peer_owner_id INTEGER,
        local_cidr TEXT,
        description TEXT NOT NULL,
        created_at TEXT NOT NULL,
        identity TEXT NOT NULL,
        -- The duplicate check holds even if two writers raced past the service's own check.
        UNIQUE (group_id, identity)
    );
    CREATE INDEX permissions_group ON permissions(group_id);
    CREATE INDEX permissions_peer_group ON permissions(peer_group_id);
    CREATE TABLE client_tokens (
        account_id INTEGER NOT NULL,
        token TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        response TEXT NOT NULL,
        PRIMARY KEY (account_id, token)
    );
    "#,
    // 2: instances, network interfaces and their group memberships.
    r#"
    CREATE TABLE instances (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        region_id TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE network_interfaces (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        region_id TEXT NOT NULL,
        vpc_id TEXT,
        vswitch_id TEXT NOT NULL,
        instance_id TEXT REFERENCES instances(id),
        name TEXT NOT NULL,
        private_ip TEXT NOT NULL,
        public_ip TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX network_interfaces_owner ON network_interfaces(account_id, region_id);
    CREATE INDEX network_interfaces_instance ON network_interfaces(instance_id);
    CREATE TABLE nic_security_groups (
        nic_id TEXT NOT NULL REFERENCES network_interfaces(id) ON DELETE CASCADE,
        group_id TEXT NOT NULL REFERENCES security_groups(id),
        position INTEGER NOT NULL,
        PRIMARY KEY (nic_id, group_id)
    );
    CREATE INDEX nic_security_groups_group ON nic_security_groups(group_id);
    "#,
    // 3: the change revision agents follow.
    r#"
    CREATE TABLE revision (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        value INTEGER NOT NULL
    );
    INSERT INTO revision (id, value) VALUES (1, 0);
    "#,
    // 4: (group_id, identity) already indexes rules by group; a second index on group_id
    // cost one more page write per Authorize.
    r#"
    DROP INDEX IF EXISTS permissions_group;
    "#,
];

fn backend(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        if f.code == rusqlite::ErrorCode::ConstraintViolation {
            return StoreError::Conflict(msg.clone().unwrap_or_default());
        }
    }
    StoreError::Backend(e.to_string())
}

fn open(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(backend)?;
    // The default 16 is fewer statements than one authorize runs; evictions meant re-parsing.
    conn.set_prepared_statement_cache_capacity(128);
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(backend)?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        .map_err(backend)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .map_err(backend)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if current as usize > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "database schema version {current} is newer than this binary ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql).map_err(backend)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, datetime('now'))",
            params![i as i64 + 1],
        )
        .map_err(backend)?;
    }
    tx.commit().map_err(backend)
}

pub struct SqliteStore {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<mpsc::Sender<Box<dyn WriteJob>>>,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database file at `path`.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        let mut conn = open(path)?;
        migrate(&mut conn)?;
        // The syncer makes commits durable (see the module comment); the checkpointer,
        // not the writer, copies the WAL into the database, so a checkpoint never stalls
        // the commits queued behind it.
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0")
            .map_err(backend)?;
        let checkpoint_conn = open(path)?;
        let dirty = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Box<dyn WriteJob>>();
        let (sync_tx, sync_rx) = mpsc::channel::<Committed>();
        let wal = wal_path(path);
        let flag = dirty.clone();
        std::thread::Builder::new()
            .name("palisade-sqlite-sync".into())
            .spawn(move || syncer_loop(&wal, sync_rx, flag))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        std::thread::Builder::new()
            .name("palisade-sqlite-ckpt".into())
            .spawn(move || checkpoint_loop(checkpoint_conn, &dirty))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        std::thread::Builder::new()
            .name("palisade-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, sync_tx))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            readers: Mutex::new(Vec::new()),
            writer: Mutex::new(tx),
        })
    }

    /// A one-off synchronous write, for the command line (account and key admin).
    pub fn write_now<T>(&self, f: impl FnOnce(&mut dyn Tx) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = open(&self.path)?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        let out = f(&mut SqliteTx { conn: &tx })?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }
}

const MAX_BATCH: usize = 512;

/// A committed (or failed) batch on its way to the syncer.
type Committed = (Vec<Box<dyn WriteJob>>, Result<(), String>);

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Box<dyn WriteJob>>,
    sync: mpsc::Sender<Committed>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let result = run_batch(&conn, &mut batch).map_err(|e| e.to_string());
        if let Err(mpsc::SendError((batch, _))) = sync.send((batch, result)) {
            for job in batch {
                job.finish(Err(StoreError::Closed));
            }
        }
    }
}

/// Acknowledges batches in commit order, after an fsync of the WAL that began after
/// their commit; commits that queue up meanwhile share the next fsync.
fn syncer_loop(wal: &Path, rx: mpsc::Receiver<Committed>, dirty: std::sync::Arc<AtomicBool>) {
    let mut file: Option<std::fs::File> = None;
    let mut dir_synced = false;
    while let Ok(first) = rx.recv() {
        let mut pending = vec![first];
        while let Ok(more) = rx.try_recv() {
            pending.push(more);
        }
        let synced = if pending.iter().any(|(_, r)| r.is_ok()) {
            dirty.store(true, Ordering::Relaxed);
            sync_wal(wal, &mut file, &mut dir_synced)
        } else {
            Ok(())
        };
        for (batch, result) in pending {
            let outcome = match (&result, &synced) {
                (Err(e), _) => Err(StoreError::Backend(e.clone())),
                (Ok(()), Err(e)) => Err(StoreError::Backend(format!("fsync of the WAL: {e}"))),
                (Ok(()), Ok(())) => Ok(()),
            };
            for job in batch {
                let r = match &outcome {
                    Ok(()) => Ok(()),
                    Err(e) => Err(StoreError::Backend(e.to_string())),
                };
                job.finish(r);
            }
        }
    }
}

/// How often the checkpointer looks for new commits to copy into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Copies committed WAL frames into the database (a PASSIVE checkpoint: it never blocks
/// the writer or readers). SQLite syncs the WAL before and the database after; once a
/// checkpoint has caught up, the writer starts the WAL over instead of growing it.
fn checkpoint_loop(conn: Connection, dirty: &std::sync::Arc<AtomicBool>) {
    loop {
        std::thread::sleep(CHECKPOINT_EVERY);
        // The syncer holds the other reference until the store shuts down; then one last
        // checkpoint, and stop.
        let last = std::sync::Arc::strong_count(dirty) == 1;
        if dirty.swap(false, Ordering::Relaxed) {
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                eprintln!("palisade: WAL checkpoint failed (will retry): {e}");
                dirty.store(true, Ordering::Relaxed);
            }
        }
        if last {
            return;
        }
    }
}

fn sync_wal(
    wal: &Path,
    file: &mut Option<std::fs::File>,
    dir_synced: &mut bool,
) -> std::io::Result<()> {
    if file.is_none() {
        *file = Some(std::fs::File::open(wal)?);
    }
    if let Some(f) = file {
        f.sync_data()?;
    }
    // The WAL file is created by the first commit; its directory entry must be durable too.
    if !*dir_synced {
        if let Some(dir) = wal.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::File::open(dir)?.sync_all()?;
        }
        *dir_synced = true;
    }
    Ok(())
}

/// Runs one fixed statement through the statement cache: the writer issues these several
/// times per job, and parsing them each time showed up in its profile.
fn exec(conn: &Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.execute([]))
        .map(drop)
        .map_err(backend)
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn WriteJob>]) -> StoreResult<()> {
    exec(conn, "BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        let step = (|| -> StoreResult<()> {
            exec(conn, "SAVEPOINT job")?;
            let keep = job.run(&mut SqliteTx { conn });
            match keep {
                Ok(true) => exec(conn, "RELEASE job"),
                // The job refused (a validation error) or failed: undo only its changes.
                Ok(false) | Err(_) => {
                    exec(conn, "ROLLBACK TO job")?;
                    exec(conn, "RELEASE job")
                }
            }
        })();
        if let Err(e) = step {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    if let Err(e) = exec(conn, "COMMIT") {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(e);
    }
    Ok(())
}

impl Store for SqliteStore {
    fn read(&self, f: &mut dyn FnMut(&mut dyn Tx) -> StoreResult<()>) -> StoreResult<()> {
        let conn = match self.readers.lock().map_err(|_| StoreError::Closed)?.pop() {
            Some(c) => c,
            None => {
                let c = open(&self.path)?;
                // Readers share the OS page cache; a small private cache keeps memory flat.
                c.execute_batch("PRAGMA cache_size=-512").map_err(backend)?;
                c
            }
        };
        let result = (|| {
            conn.execute_batch("BEGIN").map_err(backend)?;
            let r = f(&mut SqliteTx { conn: &conn });
            let _ = conn.execute_batch("COMMIT");
            r
        })();
        if let Ok(mut pool) = self.readers.lock() {
            if pool.len() < 16 {
                pool.push(conn);
            }
        }
        result
    }

    fn write_sync(&self, f: &mut dyn FnMut(&mut dyn Tx) -> StoreResult<()>) -> StoreResult<()> {
        self.write_now(f)
    }

    fn submit(&self, job: Box<dyn WriteJob>) {
        let sent = match self.writer.lock() {
            Ok(w) => w.send(job),
            Err(_) => return,
        };
        if let Err(mpsc::SendError(job)) = sent {
            job.finish(Err(StoreError::Closed));
        }
    }
}

struct SqliteTx<'a> {
    conn: &'a Connection,
}

const GROUP_COLS: &str = "id, account_id, region_id, vpc_id, name, description, group_type, inner_access_policy, created_at";
const PERM_COLS: &str = "id, group_id, direction, ip_protocol, port_range, source_port_range, nic_type, policy, priority, peer_cidr, peer_group_id, peer_owner_id, local_cidr, description, created_at";

fn corrupt(what: &str, v: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("bad {what}: {v}").into(),
    )
}

fn row_group(r: &rusqlite::Row) -> rusqlite::Result<SecurityGroup> {
    let gt: String = r.get(6)?;
    let iap: String = r.get(7)?;
    Ok(SecurityGroup {
        id: r.get(0)?,
        account_id: r.get::<_, i64>(1)? as u64,
        region_id: r.get(2)?,
        vpc_id: r.get(3)?,
        name: r.get(4)?,
        description: r.get(5)?,
        group_type: SecurityGroupType::parse(&gt).ok_or_else(|| corrupt("group type", &gt))?,
        inner_access_policy: InnerAccessPolicy::parse(&iap)
            .ok_or_else(|| corrupt("inner access policy", &iap))?,
        created_at: r.get(8)?,
    })
}

fn row_permission(r: &rusqlite::Row) -> rusqlite::Result<Permission> {
    let dir: String = r.get(2)?;
    let proto: String = r.get(3)?;
    let pr: String = r.get(4)?;
    let spr: Option<String> = r.get(5)?;
    let nic: String = r.get(6)?;
    let pol: String = r.get(7)?;
    let peer_cidr: Option<String> = r.get(9)?;
    let peer_group: Option<String> = r.get(10)?;
    let owner: Option<i64> = r.get(11)?;
    let peer = match (peer_cidr, peer_group) {
        (Some(c), _) => Peer::Cidr(c),
        (None, Some(g)) => Peer::Group {
            group_id: g,
            owner_id: owner.unwrap_or(0) as u64,
        },
        (None, None) => return Err(corrupt("peer", "none")),
    };
    Ok(Permission {
        id: r.get(0)?,
        group_id: r.get(1)?,
        direction: Direction::parse(&dir).ok_or_else(|| corrupt("direction", &dir))?,
        ip_protocol: IpProtocol::parse(&proto).ok_or_else(|| corrupt("protocol", &proto))?,
        port_range: pr.parse().map_err(|_| corrupt("port range", &pr))?,
        source_port_range: match spr {
            Some(s) => Some(s.parse().map_err(|_| corrupt("port range", &s))?),
            None => None,
        },
        nic_type: NicType::parse(&nic).ok_or_else(|| corrupt("nic type", &nic))?,
        policy: Policy::parse(&pol).ok_or_else(|| corrupt("policy", &pol))?,
        priority: r.get::<_, i64>(8)? as u8,
        peer,
        local_cidr: r.get(12)?,
        description: r.get(13)?,
        created_at: r.get(14)?,
    })
}

fn row_vpc(r: &rusqlite::Row) -> rusqlite::Result<Vpc> {
    Ok(Vpc {
        id: r.get(0)?,
        account_id: r.get::<_, i64>(1)? as u64,
        region_id: r.get(2)?,
        cidr_block: r.get(3)?,
        name: r.get(4)?,
        description: r.get(5)?,
        created_at: r.get(6)?,
    })
}

fn row_account(r: &rusqlite::Row) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get::<_, i64>(0)? as u64,
        name: r.get(1)?,
        created_at: r.get(2)?,
    })
}

const NIC_COLS: &str = "id, account_id, region_id, vpc_id, vswitch_id, instance_id, name, private_ip, public_ip, created_at";

fn row_nic(r: &rusqlite::Row) -> rusqlite::Result<NetworkInterface> {
    Ok(NetworkInterface {
        id: r.get(0)?,
        account_id: r.get::<_, i64>(1)? as u64,
        region_id: r.get(2)?,
        vpc_id: r.get(3)?,
        vswitch_id: r.get(4)?,
        instance_id: r.get(5)?,
        name: r.get(6)?,
        private_ip: r.get(7)?,
        public_ip: r.get(8)?,
        created_at: r.get(9)?,
    })
}

fn row_instance(r: &rusqlite::Row) -> rusqlite::Result<Instance> {
    Ok(Instance {
        id: r.get(0)?,
        account_id: r.get::<_, i64>(1)? as u64,
        region_id: r.get(2)?,
        name: r.get(3)?,
        created_at: r.get(4)?,
    })
}

const VPC_COLS: &str = "id, account_id, region_id, cidr_block, name, description, created_at";

impl Tx for SqliteTx<'_> {
    fn account_by_access_key(&mut self, ak: &str) -> StoreResult<Option<(AccessKey, Account)>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT k.id, k.secret, k.account_id, k.enabled, k.created_at, a.id, a.name, a.created_at
                 FROM access_keys k JOIN accounts a ON a.id = k.account_id WHERE k.id = ?1",
            )
            .map_err(backend)?;
        st.query_row(params![ak], |r| {
            Ok((
                AccessKey {
                    id: r.get(0)?,
                    secret: r.get(1)?,
                    account_id: r.get::<_, i64>(2)? as u64,
                    enabled: r.get::<_, i64>(3)? != 0,
                    created_at: r.get(4)?,
                },
                Account {
                    id: r.get::<_, i64>(5)? as u64,
                    name: r.get(6)?,
                    created_at: r.get(7)?,
                },
            ))
        })
        .optional()
        .map_err(backend)
    }

    fn account_by_id(&mut self, id: u64) -> StoreResult<Option<Account>> {
        self.conn
            .prepare_cached("SELECT id, name, created_at FROM accounts WHERE id = ?1")
            .map_err(backend)?
            .query_row(params![id as i64], row_account)
            .optional()
            .map_err(backend)
    }

    fn account_by_name(&mut self, name: &str) -> StoreResult<Option<Account>> {
        self.conn
            .prepare_cached("SELECT id, name, created_at FROM accounts WHERE name = ?1")
            .map_err(backend)?
            .query_row(params![name], row_account)
            .optional()
            .map_err(backend)
    }

    fn accounts(&mut self) -> StoreResult<Vec<Account>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, name, created_at FROM accounts ORDER BY id")
            .map_err(backend)?;
        let rows = st.query_map([], row_account).map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn insert_account(&mut self, a: &Account) -> StoreResult<()> {
        self.conn
            .prepare_cached("INSERT INTO accounts (id, name, created_at) VALUES (?1, ?2, ?3)")
            .map_err(backend)?
            .execute(params![a.id as i64, a.name, a.created_at])
            .map_err(backend)?;
        Ok(())
    }

    fn insert_access_key(&mut self, k: &AccessKey) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO access_keys (id, secret, account_id, enabled, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(backend)?
            .execute(params![k.id, k.secret, k.account_id as i64, k.enabled as i64, k.created_at])
            .map_err(backend)?;
        Ok(())
    }

    fn insert_vpc(&mut self, v: &Vpc) -> StoreResult<()> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO vpcs ({VPC_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))
            .map_err(backend)?
            .execute(params![
                v.id,
                v.account_id as i64,
                v.region_id,
                v.cidr_block,
                v.name,
                v.description,
                v.created_at
            ])
            .map_err(backend)?;
        Ok(())
    }

    fn vpc(&mut self, id: &str) -> StoreResult<Option<Vpc>> {
        self.conn
            .prepare_cached(&format!("SELECT {VPC_COLS} FROM vpcs WHERE id = ?1"))
            .map_err(backend)?
            .query_row(params![id], row_vpc)
            .optional()
            .map_err(backend)
    }

    fn vpcs(&mut self, account_id: u64, region_id: &str) -> StoreResult<Vec<Vpc>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {VPC_COLS} FROM vpcs WHERE account_id = ?1 AND region_id = ?2 ORDER BY seq"
            ))
            .map_err(backend)?;
        let rows = st
            .query_map(params![account_id as i64, region_id], row_vpc)
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn delete_vpc(&mut self, id: &str) -> StoreResult<()> {
        self.conn
            .prepare_cached("DELETE FROM vpcs WHERE id = ?1")
            .map_err(backend)?
            .execute(params![id])
            .map_err(backend)?;
        Ok(())
    }

    fn count_groups_in_vpc(&mut self, vpc_id: &str) -> StoreResult<u64> {
        self.conn
            .prepare_cached("SELECT COUNT(*) FROM security_groups WHERE vpc_id = ?1")
            .map_err(backend)?
            .query_row(params![vpc_id], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(backend)
    }

    fn insert_group(&mut self, g: &SecurityGroup) -> StoreResult<()> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO security_groups ({GROUP_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))
            .map_err(backend)?
            .execute(params![
                g.id,
                g.account_id as i64,
                g.region_id,
                g.vpc_id,
                g.name,
                g.description,
                g.group_type.as_str(),
                g.inner_access_policy.as_str(),
                g.created_at
            ])
            .map_err(backend)?;
        Ok(())
    }

    fn group(&mut self, id: &str) -> StoreResult<Option<SecurityGroup>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {GROUP_COLS} FROM security_groups WHERE id = ?1"
            ))
            .map_err(backend)?
            .query_row(params![id], row_group)
            .optional()
            .map_err(backend)
    }

    fn lock_account(&mut self, _account_id: u64) -> StoreResult<()> {
        // One writer at a time already.
        Ok(())
    }

    fn lock_group(&mut self, _id: &str) -> StoreResult<()> {
        // SQLite has one writer at a time: the write transaction already serializes.
        Ok(())
    }

    fn groups(&mut self, account_id: u64, region_id: &str) -> StoreResult<Vec<SecurityGroup>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {GROUP_COLS} FROM security_groups WHERE account_id = ?1 AND region_id = ?2 ORDER BY seq"
            ))
            .map_err(backend)?;
        let rows = st
            .query_map(params![account_id as i64, region_id], row_group)
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn update_group(&mut self, g: &SecurityGroup) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE security_groups SET name = ?2, description = ?3, inner_access_policy = ?4 WHERE id = ?1",
            )
            .map_err(backend)?
            .execute(params![g.id, g.name, g.description, g.inner_access_policy.as_str()])
            .map_err(backend)?;
        Ok(())
    }

    fn delete_group(&mut self, id: &str) -> StoreResult<()> {
        self.conn
            .prepare_cached("DELETE FROM permissions WHERE group_id = ?1")
            .map_err(backend)?
            .execute(params![id])
            .map_err(backend)?;
        self.conn
            .prepare_cached("DELETE FROM security_groups WHERE id = ?1")
            .map_err(backend)?
            .execute(params![id])
            .map_err(backend)?;
        Ok(())
    }

    fn permissions(&mut self, group_id: &str) -> StoreResult<Vec<Permission>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {PERM_COLS} FROM permissions WHERE group_id = ?1 ORDER BY seq"
            ))
            .map_err(backend)?;
        let rows = st
            .query_map(params![group_id], row_permission)
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn count_permissions(&mut self, group_id: &str) -> StoreResult<u64> {
        self.conn
            .prepare_cached("SELECT COUNT(*) FROM permissions WHERE group_id = ?1")
            .map_err(backend)?
            .query_row(params![group_id], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(backend)
    }

    fn permission_by_identity(
        &mut self,
        group_id: &str,
        identity: &str,
    ) -> StoreResult<Option<String>> {
        self.conn
            .prepare_cached("SELECT id FROM permissions WHERE group_id = ?1 AND identity = ?2")
            .map_err(backend)?
            .query_row(params![group_id, identity], |r| r.get(0))
            .optional()
            .map_err(backend)
    }

    fn insert_permission(&mut self, p: &Permission) -> StoreResult<()> {
        let (cidr, group, owner) = match &p.peer {
            Peer::Cidr(c) => (Some(c.as_str()), None, None),
            Peer::Group { group_id, owner_id } => {
                (None, Some(group_id.as_str()), Some(*owner_id as i64))
            }
        };
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO permissions ({PERM_COLS}, identity) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ))
            .map_err(backend)?
            .execute(params![
                p.id,
                p.group_id,
                p.direction.as_str(),
                p.ip_protocol.as_str(),
                p.port_range.to_string(),
                p.source_port_range.map(|s| s.to_string()),
                p.nic_type.as_str(),
                p.policy.as_str(),
                p.priority as i64,
                cidr,
                group,
                owner,
                p.local_cidr,
                p.description,
                p.created_at,
                p.identity()
            ])
            .map_err(backend)?;
        Ok(())
    }

    fn update_permission(&mut self, p: &Permission) -> StoreResult<()> {
        let (cidr, group, owner) = match &p.peer {
            Peer::Cidr(c) => (Some(c.as_str()), None, None),
            Peer::Group { group_id, owner_id } => {
                (None, Some(group_id.as_str()), Some(*owner_id as i64))
            }
        };
        self.conn
            .prepare_cached(
                "UPDATE permissions SET ip_protocol = ?2, port_range = ?3, source_port_range = ?4, nic_type = ?5,
                 policy = ?6, priority = ?7, peer_cidr = ?8, peer_group_id = ?9, peer_owner_id = ?10,
                 local_cidr = ?11, description = ?12, identity = ?13 WHERE id = ?1",
            )
            .map_err(backend)?
            .execute(params![
                p.id,
                p.ip_protocol.as_str(),
                p.port_range.to_string(),
                p.source_port_range.map(|s| s.to_string()),
                p.nic_type.as_str(),
                p.policy.as_str(),
                p.priority as i64,
                cidr,
                group,
                owner,
                p.local_cidr,
                p.description,
                p.identity()
            ])
            .map_err(backend)?;
        Ok(())
    }

    fn delete_permission(&mut self, id: &str) -> StoreResult<()> {
        self.conn
            .prepare_cached("DELETE FROM permissions WHERE id = ?1")
            .map_err(backend)?
            .execute(params![id])
            .map_err(backend)?;
        Ok(())
    }

    fn referencing_groups(&mut self, group_id: &str) -> StoreResult<Vec<(String, u64)>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT g.id, g.account_id FROM permissions p JOIN security_groups g ON g.id = p.group_id
                 WHERE p.peer_group_id = ?1 AND p.group_id <> ?1 ORDER BY g.seq",
            )
            .map_err(backend)?;
        let rows = st
            .query_map(params![group_id], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn insert_instance(&mut self, i: &Instance) -> StoreResult<()> {
        self.conn
            .prepare_cached("INSERT INTO instances (id, account_id, region_id, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
            .map_err(backend)?
            .execute(params![i.id, i.account_id as i64, i.region_id, i.name, i.created_at])
            .map_err(backend)?;
        Ok(())
    }

    fn instance(&mut self, id: &str) -> StoreResult<Option<Instance>> {
        self.conn
            .prepare_cached(
                "SELECT id, account_id, region_id, name, created_at FROM instances WHERE id = ?1",
            )
            .map_err(backend)?
            .query_row(params![id], row_instance)
            .optional()
            .map_err(backend)
    }

    fn instances(&mut self, account_id: u64, region_id: &str) -> StoreResult<Vec<Instance>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, account_id, region_id, name, created_at FROM instances WHERE account_id = ?1 AND region_id = ?2 ORDER BY seq")
            .map_err(backend)?;
        let rows = st
            .query_map(params![account_id as i64, region_id], row_instance)
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn delete_instance(&mut self, id: &str) -> StoreResult<()> {
        for sql in [
            "DELETE FROM nic_security_groups WHERE nic_id IN (SELECT id FROM network_interfaces WHERE instance_id = ?1)",
            "DELETE FROM network_interfaces WHERE instance_id = ?1",
            "DELETE FROM instances WHERE id = ?1",
        ] {
            self.conn
                .prepare_cached(sql)
                .map_err(backend)?
                .execute(params![id])
                .map_err(backend)?;
        }
        Ok(())
    }

    fn insert_nic(&mut self, n: &NetworkInterface) -> StoreResult<()> {
        self.conn
            .prepare_cached(&format!("INSERT INTO network_interfaces ({NIC_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"))
            .map_err(backend)?
            .execute(params![n.id, n.account_id as i64, n.region_id, n.vpc_id, n.vswitch_id, n.instance_id, n.name, n.private_ip, n.public_ip, n.created_at])
            .map_err(backend)?;
        Ok(())
    }

    fn nic(&mut self, id: &str) -> StoreResult<Option<NetworkInterface>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {NIC_COLS} FROM network_interfaces WHERE id = ?1"
            ))
            .map_err(backend)?
            .query_row(params![id], row_nic)
            .optional()
            .map_err(backend)
    }

    fn primary_nic(&mut self, instance_id: &str) -> StoreResult<Option<NetworkInterface>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {NIC_COLS} FROM network_interfaces WHERE instance_id = ?1"
            ))
            .map_err(backend)?
            .query_row(params![instance_id], row_nic)
            .optional()
            .map_err(backend)
    }

    fn nics(&mut self, account_id: u64, region_id: &str) -> StoreResult<Vec<NetworkInterface>> {
        let mut st = self
            .conn
            .prepare_cached(&format!("SELECT {NIC_COLS} FROM network_interfaces WHERE account_id = ?1 AND region_id = ?2 ORDER BY seq"))
            .map_err(backend)?;
        let rows = st
            .query_map(params![account_id as i64, region_id], row_nic)
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn nics_with_ip(
        &mut self,
        vpc_id: Option<&str>,
        region_id: &str,
        ip: &str,
    ) -> StoreResult<u64> {
        self.conn
            .prepare_cached("SELECT COUNT(*) FROM network_interfaces WHERE vpc_id IS ?1 AND region_id = ?2 AND private_ip = ?3")
            .map_err(backend)?
            .query_row(params![vpc_id, region_id, ip], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(backend)
    }

    fn delete_nic(&mut self, id: &str) -> StoreResult<()> {
        for sql in [
            "DELETE FROM nic_security_groups WHERE nic_id = ?1",
            "DELETE FROM network_interfaces WHERE id = ?1",
        ] {
            self.conn
                .prepare_cached(sql)
                .map_err(backend)?
                .execute(params![id])
                .map_err(backend)?;
        }
        Ok(())
    }

    fn nic_groups(&mut self, nic_id: &str) -> StoreResult<Vec<String>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT group_id FROM nic_security_groups WHERE nic_id = ?1 ORDER BY position",
            )
            .map_err(backend)?;
        let rows = st
            .query_map(params![nic_id], |r| r.get(0))
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn set_nic_groups(&mut self, nic_id: &str, groups: &[String]) -> StoreResult<()> {
        self.conn
            .prepare_cached("DELETE FROM nic_security_groups WHERE nic_id = ?1")
            .map_err(backend)?
            .execute(params![nic_id])
            .map_err(backend)?;
        for (i, g) in groups.iter().enumerate() {
            self.conn
                .prepare_cached("INSERT INTO nic_security_groups (nic_id, group_id, position) VALUES (?1, ?2, ?3)")
                .map_err(backend)?
                .execute(params![nic_id, g, i as i64])
                .map_err(backend)?;
        }
        Ok(())
    }

    fn group_members(&mut self, group_id: &str) -> StoreResult<Vec<NetworkInterface>> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {NIC_COLS} FROM network_interfaces WHERE id IN (SELECT nic_id FROM nic_security_groups WHERE group_id = ?1) ORDER BY seq"
            ))
            .map_err(backend)?;
        let rows = st.query_map(params![group_id], row_nic).map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn revision(&mut self) -> StoreResult<u64> {
        self.conn
            .prepare_cached("SELECT value FROM revision WHERE id = 1")
            .map_err(backend)?
            .query_row([], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(backend)
    }

    fn bump_revision(&mut self) -> StoreResult<u64> {
        // UPDATE then SELECT: `RETURNING` goes through an ephemeral table, about three times
        // the instructions of both statements together (callgrind).
        exec(
            self.conn,
            "UPDATE revision SET value = value + 1 WHERE id = 1",
        )?;
        self.revision()
    }

    fn client_token(
        &mut self,
        account_id: u64,
        token: &str,
    ) -> StoreResult<Option<ClientTokenRecord>> {
        self.conn
            .prepare_cached("SELECT fingerprint, response FROM client_tokens WHERE account_id = ?1 AND token = ?2")
            .map_err(backend)?
            .query_row(params![account_id as i64, token], |r| {
                Ok(ClientTokenRecord {
                    fingerprint: r.get(0)?,
                    response: r.get(1)?,
                })
            })
            .optional()
            .map_err(backend)
    }

    fn put_client_token(
        &mut self,
        account_id: u64,
        token: &str,
        rec: &ClientTokenRecord,
    ) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO client_tokens (account_id, token, fingerprint, response) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(backend)?
            .execute(params![account_id as i64, token, rec.fingerprint, rec.response])
            .map_err(backend)?;
        Ok(())
    }
}
